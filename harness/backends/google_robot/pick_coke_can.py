"""SimplerEnv's pick-coke-can task (GraspSingleOpenedCokeCanInScene-v0) as a ManiSkill3 twin.

Upstream facts (ManiSkill2_real2sim envs/custom_scenes/grasp_single_in_scene.py, base_env.py;
SimplerEnv scripts/rt1_pick_coke_can_visual_matching.sh, pick_coke_can_variant_agg.sh,
tools/calc_metrics_evaluation_videos.py):
- stage `hab2_bench_assets/stages/<scene>.glb` (default google_pick_coke_can_1_v4), y-up, so
  posed with wxyz (0.707, 0.707, 0, 0), nonconvex collision, the whole stage moved by
  -(-1.6616, -3.0337, 0); table top at 0.87;
- model `opened_coke_can` from `custom/info_pick_custom_v0.json` (scale 1, density 50),
  friction 0.5 / 0.5, restitution 0, linear and angular damping 0.1;
- orientations (transforms3d `euler2quat`, wxyz): upright = (pi/2, 0, 0), laid_vertically =
  (0, 0, pi/2), lr_switch = (0, 0, pi); the suite's names: standing, vertical, horizontal;
- the can is dropped from 0.5 m above the table with x/y rotation locked while the robot is
  away, settles 0.5 s, is released (zero velocity) for another 0.5 s, and 1.5 s more if still
  moving (> 1e-3 m/s or > 1e-2 rad/s); its height then is the lift reference;
- robot at (0.35, 0.20), wxyz (0, 0, 0, 1); lighting: ambient 0.3, lights (0, 0, -1) 2.2,
  (-1, -0.5, -1) 0.7, (1, 1, -1) 0.7; overlay real_inpainting/google_coke_can_real_eval_1.png
  on every pixel that is neither a robot link nor the can.
- variant aggregation (VA): the same robot pose and 5 x 5 can grid, no overlay, upstream's
  default texture; variants (the suite's COKE_CAN_VA): scene_name ..._alt_background and
  ..._alt_background_2; `slightly_darker_lighting` (ambient 0.3, lights (1, 1, -1) 0.8,
  (0, 0, -1) 0.8) and `slightly_brighter_lighting` (ambient 0.3, (0, 0, -1) 3.6,
  (-1, -0.5, -1) 1.3, (1, 1, -1) 1.3); GraspSingleOpenedCokeCanDistractorInScene-v0 with
  `distractor_config` "less" and "more" (see distractors.py); the stages
  Baked_sc1_staging_objaverse_cabinet1_h870 / ..._cabinet2_h870 at the default stage offset
  and pose, table at 0.87; and the AltGoogleCamera / AltGoogleCamera2 envs, whose initial
  head tilt is 0.9351361 / 0.6651361 instead of 0.7851361 (run but left out of the VA mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sapien
import torch
from mani_skill.utils.registration import register_env
from mani_skill.utils.structs.actor import Actor

from refinevla_bench.harness.backends.google_robot import (
    agent,
    contacts,
    lift_success,
    objects,
    settling,
)
from refinevla_bench.harness.backends.google_robot import distractors as distractors_module
from refinevla_bench.harness.backends.google_robot.scene import GoogleRobotScene
from refinevla_bench.harness.errors import HarnessError

ENV_ID = "RefineVLAGooglePickCokeCan-v0"
MAX_EPISODE_STEPS = 80
MODEL_DB = "info_pick_custom_v0.json"
MODEL_ID = "opened_coke_can"
OVERLAY = "real_inpainting/google_coke_can_real_eval_1.png"
SCENE_NAME = "google_pick_coke_can_1_v4"
STAGE_OFFSET = (-1.6616, -3.0337, 0.0)  # upstream moves the stage by minus this
FRICTION = 0.5
DAMPING = 0.1
ROBOT_XY = (0.35, 0.20)
OBJ_XY_LOW = (-0.35, -0.02)  # upstream's draw when no obj_init_xy is given
OBJ_XY_HIGH = (-0.12, 0.42)
GRID_SIZE = 5  # visual matching: x in linspace(-0.35, -0.12, 5) x y in linspace(-0.02, 0.42, 5)
_HALF = math.sqrt(0.5)
# wxyz; upstream's keys: lr_switch, laid_vertically, upright
ORIENTATIONS: dict[str, tuple[float, float, float, float]] = {
    "horizontal": (math.cos(math.pi / 2), 0.0, 0.0, math.sin(math.pi / 2)),
    "vertical": (_HALF, 0.0, 0.0, _HALF),
    "standing": (_HALF, _HALF, 0.0, 0.0),
}
INSTRUCTION = "pick coke can"
AMBIENT_LIGHT = 0.3
# upstream's light setups: (direction, grey level) in the order added
LIGHTINGS: dict[str, tuple[tuple[tuple[float, float, float], float], ...]] = {
    "default": (((0, 0, -1), 2.2), ((-1, -0.5, -1), 0.7), ((1, 1, -1), 0.7)),
    "darker": (((1, 1, -1), 0.8), ((0, 0, -1), 0.8)),
    "brighter": (((0, 0, -1), 3.6), ((-1, -0.5, -1), 1.3), ((1, 1, -1), 1.3)),
}
HEAD_TILT_JOINT = "joint_head_tilt"
# the initial head tilt: upstream's default and its AltGoogleCamera / AltGoogleCamera2 envs
CAMERAS: dict[str, float] = {
    "default": agent.INITIAL_QPOS[agent.UPSTREAM_JOINT_ORDER.index(HEAD_TILT_JOINT)],
    "alt_1": 0.9351361,
    "alt_2": 0.6651361,
}


def orientation_quaternion(orientation: str) -> tuple[float, float, float, float]:
    if orientation not in ORIENTATIONS:
        raise HarnessError(
            f"unknown coke can orientation {orientation!r}", f"use one of {', '.join(ORIENTATIONS)}"
        )
    return ORIENTATIONS[orientation]


def grid_xy(episode_id: int) -> tuple[float, float]:
    """Visual matching's can position of an episode (x outer, y inner, as upstream loops)."""
    if not 0 <= episode_id < GRID_SIZE * GRID_SIZE:
        raise HarnessError(
            f"pick coke can has episodes 0..{GRID_SIZE * GRID_SIZE - 1}, not {episode_id}",
            "use an episode id of the grid",
        )
    xs = np.linspace(OBJ_XY_LOW[0], OBJ_XY_HIGH[0], GRID_SIZE)
    ys = np.linspace(OBJ_XY_LOW[1], OBJ_XY_HIGH[1], GRID_SIZE)
    return float(xs[episode_id // GRID_SIZE]), float(ys[episode_id % GRID_SIZE])


@register_env(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class GooglePickCokeCan(GoogleRobotScene):
    """Pick the opened coke can. Reset options (per env row where shaped (rows, k)):
    `episode_id` (the 5 x 5 visual-matching grid), `obj_init_xy` (default: upstream's uniform
    draw over [-0.35, -0.12] x [-0.02, 0.42]), `robot_init_xy` (default (0.35, 0.20)),
    `robot_init_yaw` (added to upstream's yaw pi), `orientation` (default: the constructor's).
    With `green_screen`, the overhead camera's RGB observation is the composite (needs
    obs_mode with segmentation). Variant kwargs: `lighting` (LIGHTINGS), `distractors`
    (distractors.SETS), `camera` (CAMERAS: the robot's initial head tilt)."""

    def __init__(
        self,
        *args: Any,
        orientation: str = "horizontal",
        scene_name: str = SCENE_NAME,
        overlay: str | None = OVERLAY,
        lighting: str = "default",
        distractors: str = "none",
        camera: str = "default",
        **kwargs: Any,
    ) -> None:
        orientation_quaternion(orientation)  # bad names fail here, not at the first reset
        distractors_module.model_ids(distractors)
        for kind, name, known in (("lighting", lighting, LIGHTINGS), ("camera", camera, CAMERAS)):
            if name not in known:
                raise HarnessError(
                    f"unknown coke can {kind} {name!r}", f"use one of {', '.join(known)}"
                )
        self.orientation = orientation
        self.lighting = lighting
        self.distractor_set = distractors
        self.camera = camera
        kwargs.setdefault("robot_xy", ROBOT_XY)
        kwargs.setdefault("stage_offset", tuple(-value for value in STAGE_OFFSET))
        super().__init__(*args, scene_name=scene_name, overlay=overlay, **kwargs)

    # ---- building -------------------------------------------------------------------------

    def _load_scene(self, options: dict[str, Any]) -> None:
        super()._load_scene(options)
        info = objects.model_info(self.data_dir, MODEL_DB, MODEL_ID)
        self.can_half_size = info.half_size
        self.can: Actor = objects.build_model(
            self.scene,
            self.data_dir,
            info,
            name=MODEL_ID,
            friction=FRICTION,
            damping=DAMPING,
            initial_pose=sapien.Pose(p=[0.0, 0.0, settling.drop_height()]),
        )
        self.distractors = distractors_module.build(self.scene, self.data_dir, self.distractor_set)

    def _load_lighting(self, options: dict[str, Any]) -> None:
        self.scene.set_ambient_light([AMBIENT_LIGHT] * 3)
        for direction, level in LIGHTINGS[self.lighting]:
            self.scene.add_directional_light(list(direction), [level] * 3)

    def task_actors(self) -> list[Actor]:
        """Upstream's green screen keeps every actor but the stage and the ground."""
        return [self.can, *self.distractors]

    def _after_reconfigure(self, options: dict[str, Any]) -> None:
        super()._after_reconfigure(options)
        self.lift = lift_success.LiftState.zeros(self.num_envs, self.device)
        self.settled_height = torch.zeros(self.num_envs, device=self.device)

    # ---- episodes -------------------------------------------------------------------------

    def episode_options(self, episode_id: int) -> dict[str, Any]:
        return {"obj_init_xy": grid_xy(episode_id)}

    def get_language_instruction(self) -> list[str]:
        return [INSTRUCTION] * self.num_envs

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict[str, Any]) -> None:
        row_options = self.row_options(options, len(env_idx))
        self.park_robot(env_idx)
        distractors_module.park(self.distractors, len(env_idx), self.device)
        can_xy, quaternion = self._drop_can(env_idx, row_options)
        self.settled_height[env_idx] = self.can.pose.p[env_idx, 2]
        if self.distractors:
            self._drop_distractors(env_idx, can_xy, quaternion)
        self.set_row_overlays(env_idx, row_options)
        self.place_robot(env_idx, row_options)
        self.lift.reset_rows(env_idx)

    def place_robot(self, env_idx: torch.Tensor, row_options: Sequence[dict[str, Any]]) -> None:
        """The base's placement; an alternative `camera` starts the head at its tilt (upstream's
        AltGoogleCamera envs' initial qpos)."""
        super().place_robot(env_idx, row_options)
        if self.camera == "default":
            return
        qpos = dict(zip(agent.UPSTREAM_JOINT_ORDER, agent.INITIAL_QPOS, strict=True))
        qpos[HEAD_TILT_JOINT] = CAMERAS[self.camera]
        ordered = torch.tensor(
            self.agent.from_upstream_order([qpos[name] for name in agent.UPSTREAM_JOINT_ORDER]),
            device=self.device,
        )
        self.agent.reset(ordered.expand(len(env_idx), -1))

    def _drop_can(
        self, env_idx: torch.Tensor, row_options: list[dict[str, Any]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Upstream's settling: drop with x/y rotation locked, release, wait until still.
        Returns the rows' drop xy and quaternions (the distractors' references)."""
        if all("obj_init_xy" in entry for entry in row_options):
            xy = self.stacked(row_options, "obj_init_xy", None, 2)
        else:
            drawn = self._batched_episode_rng[env_idx].uniform(OBJ_XY_LOW, OBJ_XY_HIGH, size=(2,))
            xy = torch.as_tensor(np.asarray(drawn, np.float32), device=self.device)
        quaternion = torch.tensor(
            [
                orientation_quaternion(entry.get("orientation", self.orientation))
                for entry in row_options
            ],
            device=self.device,
        )
        settling.drop_together([self.can], [xy], [quaternion], env_idx, self.settle)
        return xy, quaternion

    def _drop_distractors(
        self, env_idx: torch.Tensor, can_xy: torch.Tensor, quaternion: torch.Tensor
    ) -> None:
        """Each row's distractor xy drawn around the can's drop xy, then upstream's settling."""
        references = can_xy.cpu().double().numpy()
        drawn = [
            [
                distractors_module.draw_xy(self._batched_episode_rng[row], reference)
                for _ in self.distractors
            ]
            for row, reference in zip(env_idx.tolist(), references, strict=True)
        ]
        xy = torch.as_tensor(np.asarray(drawn, np.float32), device=self.device)
        settling.drop_one_by_one(self.distractors, xy, quaternion, env_idx, self.settle)

    # ---- success --------------------------------------------------------------------------

    def is_grasped(self) -> torch.Tensor:
        """Upstream's `check_grasp(obj, max_angle=80)`, per env row."""
        grasped = contacts.robot_grasps(self.scene, self.agent.robot.links_map, self.can)
        return grasped.to(self.device)

    def touches_other_than_robot(self) -> torch.Tensor:
        """The can pushes on the stage, the floor or a distractor (upstream: any actor that
        is not a robot link)."""
        others = [
            self.scene.actors["ground"],
            *([self.arena] if self.arena else []),
            *self.distractors,
        ]
        return contacts.touches_any(self.scene, self.can, others).to(self.device)

    def evaluate(self) -> dict[str, Any]:
        gain = self.can.pose.p[:, 2] - self.settled_height
        return lift_success.evaluate_lift(
            self.lift, self.is_grasped(), self.touches_other_than_robot(), gain
        )

    def privileged_state(self) -> dict[str, torch.Tensor]:
        can = self.in_base_frame(self.can.pose)
        state = {
            **super().privileged_state(),
            "source_pose": torch.cat([can.p, can.q], dim=-1),
            "source_grasped": self.is_grasped(),
            "source_half_size": torch.tensor(self.can_half_size, device=self.device).expand(
                self.num_envs, 3
            ),
        }
        if self.distractors:
            poses = [self.in_base_frame(actor.pose) for actor in self.distractors]
            state["distractor_poses"] = torch.stack(
                [torch.cat([pose.p, pose.q], dim=-1) for pose in poses], dim=1
            )
        return state
