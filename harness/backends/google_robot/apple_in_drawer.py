"""SimplerEnv's "put apple into closed top drawer" (PlaceIntoClosedTopDrawerCustomInScene-v0)
as a ManiSkill3 twin on the drawer tasks' cabinet scene.

Upstream facts (ManiSkill2_real2sim envs/custom_scenes/place_in_closed_drawer_in_scene.py,
the version registering PlaceIntoClosed*DrawerCustomInScene-v0 on top of
OpenDrawerInSceneEnv; base_env.py; SimplerEnv scripts/put_in_drawer_visual_matching.sh,
put_in_drawer_variant_agg.sh, simpler_env/evaluation/maniskill2_evaluator.py):
- model database `custom/info_pick_custom_baked_tex_v1.json`; visual matching places
  `baked_apple_v2`, variant aggregation `apple` (density 800, scale 1), friction 0.5 / 0.5,
  restitution 0, damping 0.1 / 0.1; contact offset 0.005 (fewer false contacts);
- the apple drops from 0.87 + 0.5 m at its world xy (wxyz 1, 0, 0, 0) with x/y rotation
  locked while the robot is away, settles 0.5 s, is released for 0.5 s, and 1.5 s more if still
  moving (> 1e-3 m/s or > 1e-2 rad/s); without a grid xy it is drawn from
  [-0.10, -0.05] x [0.00, 0.10];
- grid: apple x in linspace(-0.08, -0.02, 3) (outer) x y in linspace(-0.02, 0.08, 3) for each
  robot pose: the photo poses a0, b0, c0 (visual matching) or x 0.65, y in
  linspace(-0.2, 0.2, 3) (variant aggregation); 200 steps;
- subtask 0 "open top drawer", subtask 1 "place apple into top drawer" (the model id without
  'baked' / 'v2' ...); `step` moves to subtask 1 before applying an action once 100 steps are
  done (so the 101st action runs under subtask 1, the instruction read after step 100 is still
  the first); the evaluator advances earlier when the policy terminates in subtask 0;
- every evaluation adds 1 to `has_contact` when the apple pushes on the top drawer's third
  collision shape (its interior bottom) with a total impulse above 1e-6; success = subtask 1
  and drawer qpos >= 0.05 and has_contact >= 1; `is_drawer_open` latches qpos >= 0.15.
Known difference: on the GPU simulator contacts are known per link, not per collision shape:
there the contact counts when the apple touches the drawer link with its centre inside the
drawer (above the bottom's footprint, below the top of the walls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sapien
import torch
from mani_skill.utils import sapien_utils
from mani_skill.utils.registration import register_env
from mani_skill.utils.structs.actor import Actor
from mani_skill.utils.structs.pose import Pose
from mani_skill.utils.structs.types import SimConfig

from refinevla_bench.harness.backends.google_robot import contacts, objects, settling
from refinevla_bench.harness.backends.google_robot.drawer import (
    OPEN_SUCCESS,
    CabinetScene,
    check_episode,
    linspace,
    pose_options,
    robot_options,
    setting,
)

ENV_ID = "RefineVLAGooglePlaceAppleInClosedTopDrawer-v0"
MAX_EPISODE_STEPS = 200
FORCE_ADVANCE_STEPS = 100
MODEL_DB = "info_pick_custom_baked_tex_v1.json"
MODELS = {"overlay_poses": "baked_apple_v2", "va_grid": "apple"}
FRICTION = 0.5
DAMPING = 0.1
CONTACT_OFFSET = 0.005
APPLE_X = (-0.08, -0.02)
APPLE_Y = (-0.02, 0.08)
APPLE_XY_LOW = (-0.10, 0.00)  # upstream's draw when no obj_init_xy is given
APPLE_XY_HIGH = (-0.05, 0.10)
PHOTO_POSES = ("a0", "b0", "c0")
VA_ROBOT_X = 0.65
VA_ROBOT_Y = (-0.2, 0.2)
APPLE_GRID = 9
BOTTOM_SHAPE = 2  # the drawer link's third collision shape: its interior bottom
PLACE_SUCCESS = 0.05
NAME_DROPS = ("opened", "light", "generated", "modified", "objaverse", "bridge", "baked", "v2")


def instruction_name(model_id: str) -> str:
    """Upstream's `_get_instruction_obj_name`: the model id without its tag words."""
    return " ".join(word for word in model_id.split("_") if word not in NAME_DROPS)


def apple_grid(robot_grid: str, episode_id: int) -> dict[str, Any]:
    """Robot pose (3, outer) and apple xy (3 x 3: x outer, y inner) of an episode."""
    setting(robot_grid)
    check_episode(episode_id, len(PHOTO_POSES) * APPLE_GRID, "put apple into drawer")
    robot, apple = divmod(episode_id, APPLE_GRID)
    if robot_grid == "overlay_poses":
        options = pose_options(PHOTO_POSES[robot])
    else:
        options = robot_options(VA_ROBOT_X, linspace(VA_ROBOT_Y)[robot])
    xs, ys = linspace(APPLE_X), linspace(APPLE_Y)
    return {**options, "obj_init_xy": (xs[apple // 3], ys[apple % 3])}


def shape_impulse(scene: Any, actor: Actor, link: Any, shape: Any) -> torch.Tensor:
    """(1, 3) total impulse between `actor` and one collision shape of `link` (CPU only:
    upstream's get_pairwise_contacts with collision_shape1 and compute_total_impulse)."""
    pairs = sapien_utils.get_pairwise_contacts(
        scene.get_contacts(), actor._bodies[0].entity, link._bodies[0].entity
    )
    on_shape = [(contact, first) for contact, first in pairs if contact.shapes[int(first)] == shape]
    return torch.as_tensor(sapien_utils.compute_total_impulse(on_shape), dtype=torch.float32)[None]


@register_env(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class GooglePlaceAppleInClosedTopDrawer(CabinetScene):
    """Open the top drawer, then put the apple from the cabinet top into it. Reset options
    (per env row): `episode_id` (3 robot poses x 9 apple positions), `obj_init_xy`,
    `robot_init_xy`, `robot_init_yaw`, `overlay`. `model_id` picks the apple (default: the
    robot grid's: baked_apple_v2 for visual matching, apple for variant aggregation)."""

    def __init__(self, *args: Any, model_id: str | None = None, **kwargs: Any) -> None:
        robot_grid = kwargs.get("robot_grid", "overlay_poses")
        setting(robot_grid)
        self.model_id = model_id or MODELS[robot_grid]
        super().__init__(*args, drawer="top", **kwargs)

    @property
    def _default_sim_config(self) -> SimConfig:
        sim_config = super()._default_sim_config
        sim_config.scene_config.contact_offset = CONTACT_OFFSET
        return sim_config

    # ---- building -------------------------------------------------------------------------

    def _load_scene(self, options: dict[str, Any]) -> None:
        super()._load_scene(options)
        info = objects.model_info(self.data_dir, MODEL_DB, self.model_id)
        self.apple: Actor = objects.build_model(
            self.scene,
            self.data_dir,
            info,
            name=self.model_id,
            friction=FRICTION,
            damping=DAMPING,
            initial_pose=sapien.Pose(p=[0.0, 0.0, settling.drop_height()]),
        )

    def task_actors(self) -> Sequence[Any]:
        return [*super().task_actors(), self.apple]

    def _after_reconfigure(self, options: dict[str, Any]) -> None:
        super()._after_reconfigure(options)
        component = self.drawer_link._objs[0]
        self.bottom_shape = component.collision_shapes[BOTTOM_SHAPE]
        centre = self.bottom_shape.local_pose.p
        half = self.bottom_shape.half_size
        self.bottom_local = [float(centre[0]), float(centre[1]), float(centre[2] + half[2])]
        self.bottom_half_xy = (float(half[0]), float(half[1]))
        self.walls_top = float(  # the lowest top edge of the drawer's walls
            min(
                shape.local_pose.p[2] + shape.half_size[2]
                for index, shape in enumerate(component.collision_shapes)
                if index != BOTTOM_SHAPE
            )
        )
        n, device = self.num_envs, self.device
        self.subtask = torch.zeros(n, dtype=torch.long, device=device)
        self.has_contact = torch.zeros(n, dtype=torch.long, device=device)
        self.drawer_was_open = torch.zeros(n, dtype=torch.bool, device=device)

    # ---- episodes -------------------------------------------------------------------------

    def episode_options(self, episode_id: int) -> dict[str, Any]:
        return apple_grid(self.robot_grid, episode_id)

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict[str, Any]) -> None:
        row_options = self.row_options(options, len(env_idx))
        self.park_robot(env_idx)
        self.set_drawer(env_idx, 0.0)
        self._drop_apple(env_idx, row_options)
        self.set_row_overlays(env_idx, row_options)
        self.place_robot(env_idx, row_options)
        self.subtask[env_idx] = 0
        self.has_contact[env_idx] = 0
        self.drawer_was_open[env_idx] = False

    def _drop_apple(self, env_idx: torch.Tensor, row_options: list[dict[str, Any]]) -> None:
        """Upstream's settling: drop with x/y rotation locked, release, wait until still."""
        rows = len(env_idx)
        if all("obj_init_xy" in entry for entry in row_options):
            xy = self.stacked(row_options, "obj_init_xy", None, 2)
        else:
            drawn = self._batched_episode_rng[env_idx].uniform(
                APPLE_XY_LOW, APPLE_XY_HIGH, size=(2,)
            )
            xy = torch.as_tensor(np.asarray(drawn, np.float32), device=self.device)
        upright = torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=self.device).expand(rows, -1)
        settling.drop_together([self.apple], [xy], [upright], env_idx, self.settle)

    # ---- subtasks -------------------------------------------------------------------------

    def get_language_instruction(self) -> list[str]:
        place = f"place {instruction_name(self.model_id)} into {self.drawer} drawer"
        return [place if stage else f"open {self.drawer} drawer" for stage in self.subtask.tolist()]

    def is_final_subtask(self) -> torch.Tensor:
        return self.subtask == 1

    def advance_to_next_subtask(self, rows: torch.Tensor) -> None:
        self.subtask[rows.to(self.device)] = 1

    def step(self, action: Any) -> Any:
        self.advance_to_next_subtask(self.elapsed_steps >= FORCE_ADVANCE_STEPS)
        return super().step(action)

    # ---- success --------------------------------------------------------------------------

    def is_grasped(self) -> torch.Tensor:
        grasped = contacts.robot_grasps(self.scene, self.agent.robot.links_map, self.apple)
        return grasped.to(self.device)

    def apple_on_bottom(self) -> torch.Tensor:
        """(N,) bool: the apple pushes on the top drawer's interior bottom (> 1e-6)."""
        if not self.gpu_sim_enabled:
            impulse = shape_impulse(self.scene, self.apple, self.drawer_link, self.bottom_shape)
            pushes: torch.Tensor = impulse.norm(dim=-1) > contacts.MIN_IMPULSE
            return pushes.to(self.device)
        touching = contacts.touches_any(self.scene, self.apple, [self.drawer_link])
        local: torch.Tensor = (self.drawer_link.pose.inv() * self.apple.pose).p
        inside = (
            (local[:, 0].abs() <= self.bottom_half_xy[0])
            & (local[:, 1].abs() <= self.bottom_half_xy[1])
            & (local[:, 2] <= self.walls_top)
        )
        return touching & inside

    def evaluate(self) -> dict[str, Any]:
        qpos = self.drawer_qpos()
        self.drawer_was_open |= qpos >= OPEN_SUCCESS
        # upstream evaluates after steps only; ManiSkill3 also evaluates at reset
        stepped = self.elapsed_steps > 0
        self.has_contact += (self.apple_on_bottom() & stepped).long()
        success = (self.subtask == 1) & (qpos >= PLACE_SUCCESS) & (self.has_contact >= 1)
        return {
            "success": success,
            "is_grasped": self.is_grasped(),
            "qpos": qpos,
            "is_drawer_open": self.drawer_was_open.clone(),
            "has_contact": self.has_contact.clone(),
            "subtask": self.subtask.clone(),
        }

    def privileged_state(self) -> dict[str, torch.Tensor]:
        apple = self.in_base_frame(self.apple.pose)
        offset = torch.tensor([self.bottom_local], device=self.device)
        bottom = self.in_base_frame(self.drawer_link.pose * Pose.create_from_pq(p=offset))
        return {
            **super().privileged_state(),
            "source_pose": torch.cat([apple.p, apple.q], dim=-1),
            "source_grasped": self.is_grasped(),
            "subtask": self.subtask.clone(),
            "drawer_bottom_pose": torch.cat([bottom.p, bottom.q], dim=-1),
        }
