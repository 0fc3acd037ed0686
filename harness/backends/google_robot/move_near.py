"""SimplerEnv's move-near task (MoveNearGoogleInScene-v0 and its baked-texture visual-matching
sibling MoveNearGoogleBakedTexInScene-v0) as a ManiSkill3 twin.

Upstream facts (ManiSkill2_real2sim mani_skill2_real2sim/envs/custom_scenes/move_near_in_scene.py
and base_env.py; SimplerEnv scripts/move_near_visual_matching.sh, move_near_variant_agg.sh):
- 5 object triplets x 6 ordered (source, target) pairs x 2 layouts = episode ids 0..59:
  triplet = id // 12, pair = id % 6 (pairs (0,1), (0,2), (1,0), (1,2), (2,0), (2,1)),
  layout = (id % 12) // 6; "no distractor" keeps only the source and the target;
- visual matching uses info_pick_custom_baked_tex_v0.json and baked models (all but the blue
  plastic bottle and the orange), variant aggregation info_pick_custom_v0.json and plain ones;
  scale 1, the database's density except apple / orange 200; friction 0.5 / 0.5, restitution 0,
  damping 0.1; contact offset 0.005;
- the objects drop from 0.5 m over the 0.87 m table, with x/y rotation locked, while the robot
  waits at (-10, 0, 0): 0.5 s locked, 0.5 s free, 1.5 s more if the summed speeds exceed
  1e-3 m/s or 1e-2 rad/s; the settled poses are the rule's reference;
- robot at (0.35, 0.21), yaw pi - 0.09; stage google_pick_coke_can_1_v4 moved like the coke-can
  task; overlay real_inpainting/google_move_near_real_eval_1.png keeps the robot and every object;
- instruction "move {source} near {target}" with the model id's words minus "opened", "baked",
  etc.; success = every object kept its height, the source moved most (> 3 cm), it is near the
  target (centre distance < both settled bounding boxes' half xy diagonals + 0.10) and no
  other object is closer (1 cm slack).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sapien
import torch
from mani_skill.utils.geometry.rotation_conversions import quaternion_apply
from mani_skill.utils.registration import register_env
from mani_skill.utils.structs.actor import Actor
from mani_skill.utils.structs.pose import Pose
from mani_skill.utils.structs.types import SimConfig

from refinevla_bench.harness.backends.google_robot import contacts, objects, settling
from refinevla_bench.harness.backends.google_robot.pick_coke_can import (
    DAMPING,
    FRICTION,
    SCENE_NAME,
    STAGE_OFFSET,
)
from refinevla_bench.harness.backends.google_robot.scene import GoogleRobotScene
from refinevla_bench.harness.errors import HarnessError

ENV_ID = "RefineVLAGoogleMoveNear-v0"
MAX_EPISODE_STEPS = 80
OVERLAY = "real_inpainting/google_move_near_real_eval_1.png"
ROBOT_XY = (0.35, 0.21)
ROBOT_YAW = -0.09  # added to upstream's yaw pi
CONTACT_OFFSET = 0.005  # upstream: avoids false contacts between the close objects


@dataclass(frozen=True)
class ModelSet:
    """One upstream env's objects: its model database, triplets and density overrides."""

    database: str
    triplets: tuple[tuple[str, str, str], ...]
    densities: dict[str, float]


PLAIN = ModelSet(  # MoveNearGoogleInScene-v0 (variant aggregation)
    "info_pick_custom_v0.json",
    (
        ("blue_plastic_bottle", "opened_pepsi_can", "orange"),
        ("opened_7up_can", "apple", "sponge"),
        ("opened_coke_can", "opened_redbull_can", "apple"),
        ("sponge", "blue_plastic_bottle", "opened_7up_can"),
        ("orange", "opened_pepsi_can", "opened_redbull_can"),
    ),
    {"apple": 200.0, "orange": 200.0},  # toy fruit, as in the real evaluation
)
BAKED = ModelSet(  # MoveNearGoogleBakedTexInScene-v0 (visual matching)
    "info_pick_custom_baked_tex_v0.json",
    (
        ("blue_plastic_bottle", "baked_opened_pepsi_can", "orange"),
        ("baked_opened_7up_can", "baked_apple", "baked_sponge"),
        ("baked_opened_coke_can", "baked_opened_redbull_can", "baked_apple"),
        ("baked_sponge", "blue_plastic_bottle", "baked_opened_7up_can"),
        ("orange", "baked_opened_pepsi_can", "baked_opened_redbull_can"),
    ),
    {"baked_apple": 200.0, "orange": 200.0},
)
PAIRS = tuple((source, target) for source in range(3) for target in range(3) if source != target)
LAYOUTS = (
    ((-0.33, 0.04), (-0.33, 0.34), (-0.13, 0.19)),
    ((-0.13, 0.04), (-0.33, 0.19), (-0.13, 0.34)),
)
NUM_EPISODES = len(PLAIN.triplets) * len(PAIRS) * len(LAYOUTS)
_HALF = math.sqrt(0.5)
# wxyz of upstream's transforms3d euler2quat (static xyz), keyed by the model id minus "baked_"
ORIENTATIONS: dict[str, tuple[float, float, float, float]] = {
    "blue_plastic_bottle": (0.5, 0.5, 0.5, 0.5),  # (pi/2, 0, pi/2)
    "opened_pepsi_can": (_HALF, _HALF, 0.0, 0.0),  # (pi/2, 0, 0): standing
    "orange": (_HALF, 0.0, 0.0, _HALF),  # (0, 0, pi/2)
    "opened_7up_can": (_HALF, _HALF, 0.0, 0.0),
    "apple": (1.0, 0.0, 0.0, 0.0),
    "sponge": (_HALF, 0.0, 0.0, _HALF),
    "opened_coke_can": (_HALF, _HALF, 0.0, 0.0),
    "opened_redbull_can": (_HALF, _HALF, 0.0, 0.0),
}
_NAME_DROPS = {"opened", "light", "generated", "modified", "objaverse", "bridge", "baked", "v2"}
# ambient, then (direction, intensity) of each directional light; no shadows (upstream default)
LIGHTINGS: dict[str, tuple[float, tuple[tuple[tuple[float, float, float], float], ...]]] = {
    "default": (0.3, (((0, 0, -1), 2.2), ((-1, -0.5, -1), 0.7), ((1, 1, -1), 0.7))),
    "darker": (0.3, (((1, 1, -1), 0.8), ((0, 0, -1), 0.8))),  # slightly_darker_lighting
    "brighter": (0.3, (((0, 0, -1), 3.6), ((-1, -0.5, -1), 1.3), ((1, 1, -1), 1.3))),
}
MOVED = 0.03  # a move above 3 cm counts
OTHER_DROP = -0.02  # other objects may sink at most 2 cm
SOURCE_TARGET_DROP = -0.15  # source and target must not fall off the table
NEAR_MARGIN = 0.10
CLOSEST_SLACK = 0.01


def instruction_name(model_id: str) -> str:
    """Upstream's `_get_instruction_obj_name`: the id's words minus its bookkeeping words."""
    return " ".join(word for word in model_id.split("_") if word not in _NAME_DROPS)


def orientation(model_id: str) -> tuple[float, float, float, float]:
    return ORIENTATIONS[model_id.removeprefix("baked_")]


def grid_entry(episode_id: int) -> tuple[int, tuple[int, int], int]:
    """(triplet index, (source, target) slots of the triplet, layout index) of an episode."""
    if not 0 <= episode_id < NUM_EPISODES:
        raise HarnessError(
            f"move near has episodes 0..{NUM_EPISODES - 1}, not {episode_id}",
            "use an episode id of the grid",
        )
    per_triplet = len(PAIRS) * len(LAYOUTS)
    layout = (episode_id % per_triplet) // len(PAIRS)
    return episode_id // per_triplet, PAIRS[episode_id % len(PAIRS)], layout


def episode_layout(episode_id: int, models: ModelSet, distractors: bool) -> dict[str, Any]:
    """Reset options of one episode, named as upstream's obj_init_options: the objects in the
    scene (all three, or source and target), which is source / target, drop xy, orientation."""
    triplet, (source, target), layout = grid_entry(episode_id)
    kept = [0, 1, 2] if distractors else [source, target]
    names = [models.triplets[triplet][k] for k in kept]
    return {
        "model_ids": names,
        "source_obj_id": kept.index(source),
        "target_obj_id": kept.index(target),
        "obj_init_xys": [LAYOUTS[layout][k] for k in kept],
        "obj_init_rot_quats": [orientation(name) for name in names],
    }


def evaluate_move_near(
    positions: torch.Tensor,
    centres: torch.Tensor,
    settled: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    near_threshold: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Upstream's evaluate per env row. `positions` (N, K, 3) are the objects' origins,
    `centres` their centres of mass, `settled` the origins after settling, `source` / `target`
    (N,) slot indices, `near_threshold` (N,) the two bounding boxes' half xy diagonals."""
    rows = torch.arange(len(source), device=positions.device)
    slots = torch.arange(positions.shape[1], device=positions.device)
    is_source = slots[None] == source[:, None]
    others = ~is_source & (slots[None] != target[:, None])
    sink = positions[..., 2] - settled[..., 2]
    source_centre, target_centre = centres[rows, source], centres[rows, target]
    all_obj_keep_height = (
        torch.where(others, sink > OTHER_DROP, True).all(dim=1)
        & (source_centre[:, 2] - settled[rows, source, 2] > SOURCE_TARGET_DROP)
        & (target_centre[:, 2] - settled[rows, target, 2] > SOURCE_TARGET_DROP)
    )
    moves = (settled[..., :2] - positions[..., :2]).norm(dim=-1)
    source_move = moves[rows, source][:, None]
    moved_correct_obj = (source_move[:, 0] > MOVED) & torch.where(
        is_source, True, moves < source_move
    ).all(dim=1)
    moved_wrong_obj = torch.where(is_source, False, moves > MOVED).any(dim=1) & torch.where(
        is_source, False, moves > source_move
    ).any(dim=1)
    to_target = (source_centre[:, :2] - target_centre[:, :2]).norm(dim=-1)
    near_tgt_obj = to_target < near_threshold + NEAR_MARGIN
    to_others = (source_centre[:, None, :2] - positions[..., :2]).norm(dim=-1)
    is_closest_to_tgt = torch.where(
        is_source, True, to_target[:, None] < to_others + CLOSEST_SLACK
    ).all(dim=1)
    stats = {
        "all_obj_keep_height": all_obj_keep_height,
        "moved_correct_obj": moved_correct_obj,
        "moved_wrong_obj": moved_wrong_obj,
        "near_tgt_obj": near_tgt_obj,
        "is_closest_to_tgt": is_closest_to_tgt,
    }
    success = all_obj_keep_height & moved_correct_obj & near_tgt_obj & is_closest_to_tgt
    return {**stats, "success": success, "episode_stats": dict(stats)}


@register_env(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class GoogleMoveNear(GoogleRobotScene):
    """Move the source object near the target. Constructor: `baked_textures` (visual matching's
    models; False: variant aggregation's), `distractors` (False: upstream's no_distractor),
    `lighting` ("default", "darker", "brighter"), plus the base's (scene_name, overlay,
    urdf_version, ...). Reset options per env row: `episode_id` (0..59; without one, each row
    draws one from its seed like upstream), any key of `episode_layout` to override it,
    `robot_init_xy`, `robot_init_yaw`. Rows whose episodes need other models than the built
    ones make the reset rebuild the scene (a partial reset cannot)."""

    def __init__(
        self,
        *args: Any,
        baked_textures: bool = True,
        distractors: bool = True,
        lighting: str = "default",
        scene_name: str = SCENE_NAME,
        overlay: str | None = OVERLAY,
        **kwargs: Any,
    ) -> None:
        if lighting not in LIGHTINGS:
            raise HarnessError(
                f"unknown move-near lighting {lighting!r}", f"use one of {', '.join(LIGHTINGS)}"
            )
        self.models = BAKED if baked_textures else PLAIN
        self.distractors = distractors
        self.lighting = lighting
        self.row_models: list[tuple[str, ...]] = []  # the models built in each env row
        self._wanted_models: list[tuple[str, ...]] = []
        self._unseeded = np.random.RandomState(2022)  # ManiSkill's default main seed
        kwargs.setdefault("robot_xy", ROBOT_XY)
        kwargs.setdefault("robot_yaw", ROBOT_YAW)
        kwargs.setdefault("stage_offset", tuple(-value for value in STAGE_OFFSET))
        super().__init__(*args, scene_name=scene_name, overlay=overlay, **kwargs)

    # ---- building -------------------------------------------------------------------------

    @property
    def _default_sim_config(self) -> SimConfig:
        sim_config: SimConfig = super()._default_sim_config
        sim_config.scene_config.contact_offset = CONTACT_OFFSET
        return sim_config

    def reset(self, seed: Any = None, options: dict[str, Any] | None = None) -> Any:
        """Draws episode ids where none are given and rebuilds the scene when a row needs
        other models than it holds (ManiSkill builds objects only at reconfiguration)."""
        options = dict(options or {})
        env_idx = options.get("env_idx")
        rows = list(range(self.num_envs)) if env_idx is None else [int(i) for i in env_idx]
        if "episode_id" not in options:
            options["episode_id"] = self._drawn_episode_ids(seed, len(rows))
        wanted = list(self.row_models) or [()] * self.num_envs
        for row, entry in zip(rows, self.row_options(options, len(rows)), strict=True):
            wanted[row] = tuple(entry["model_ids"])
        if wanted != self.row_models:
            if len(rows) != self.num_envs:
                raise HarnessError(
                    "a partial reset cannot change the objects of its rows",
                    "reset all env rows together",
                )
            options["reconfigure"] = True
            self._wanted_models = wanted
        return super().reset(seed=seed, options=options)

    def _drawn_episode_ids(self, seed: Any, rows: int) -> list[int]:
        """Upstream draws `randint(60)` from the episode's seeded generator."""
        if seed is None:
            return [int(i) for i in self._unseeded.randint(NUM_EPISODES, size=rows)]
        seeds = np.broadcast_to(np.asarray(seed).reshape(-1), (rows,))
        return [int(np.random.RandomState(int(s)).randint(NUM_EPISODES)) for s in seeds]

    def _load_scene(self, options: dict[str, Any]) -> None:
        super()._load_scene(options)
        self.row_models = list(self._wanted_models)
        self.slots: list[Actor] = []
        half_sizes = []
        for slot in range(len(self.row_models[0])):
            parts = []
            for row, models in enumerate(self.row_models):
                info = objects.model_info(self.data_dir, self.models.database, models[slot])
                half_sizes.append(info.half_size)
                part = objects.build_model(
                    self.scene,
                    self.data_dir,
                    info,
                    name=f"{models[slot]}-slot{slot}-row{row}",
                    friction=FRICTION,
                    density=self.models.densities.get(models[slot]),
                    damping=DAMPING,
                    initial_pose=sapien.Pose(p=[0.0, 0.3 * slot, settling.drop_height()]),
                    scene_idxs=[row],
                )
                self.remove_from_state_dict_registry(part)
                parts.append(part)
            merged = Actor.merge(parts, name=f"object{slot}")
            self.add_to_state_dict_registry(merged)
            self.slots.append(merged)
        # (slots, rows, 3) -> (rows, slots, 3)
        self.half_sizes = (
            torch.tensor(half_sizes, device=self.device)
            .reshape(len(self.slots), self.num_envs, 3)
            .transpose(0, 1)
        )

    def _load_lighting(self, options: dict[str, Any]) -> None:
        ambient, lights = LIGHTINGS[self.lighting]
        self.scene.set_ambient_light([ambient] * 3)
        for direction, intensity in lights:
            self.scene.add_directional_light(list(direction), [intensity] * 3)

    def task_actors(self) -> list[Actor]:
        return self.slots

    def _after_reconfigure(self, options: dict[str, Any]) -> None:
        super()._after_reconfigure(options)
        rows, count = self.num_envs, len(self.slots)
        self.centre_offsets = [slot.cmass_local_pose for slot in self.slots]
        self.settled = torch.zeros(rows, count, 3, device=self.device)
        self.source_index = torch.zeros(rows, dtype=torch.long, device=self.device)
        self.target_index = torch.ones(rows, dtype=torch.long, device=self.device)
        self.near_threshold = torch.zeros(rows, device=self.device)
        self.instructions = [""] * rows

    # ---- episodes -------------------------------------------------------------------------

    def episode_options(self, episode_id: int) -> dict[str, Any]:
        return episode_layout(episode_id, self.models, self.distractors)

    def get_language_instruction(self) -> list[str]:
        return list(self.instructions)

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict[str, Any]) -> None:
        row_options = self.row_options(options, len(env_idx))
        self.park_robot(env_idx)
        self._drop_objects(env_idx, row_options)
        self.set_row_overlays(env_idx, row_options)
        self.place_robot(env_idx, row_options)
        self._remember_episode(env_idx, row_options)

    def _drop_objects(self, env_idx: torch.Tensor, row_options: Sequence[dict[str, Any]]) -> None:
        """Upstream's settling: drop with x/y rotation locked, release, wait until still."""
        xys, quaternions = [], []
        for slot in range(len(self.slots)):
            xys.append(
                torch.tensor(
                    [entry["obj_init_xys"][slot] for entry in row_options],
                    dtype=torch.float32,
                    device=self.device,
                )
            )
            quaternions.append(
                torch.tensor(
                    [entry["obj_init_rot_quats"][slot] for entry in row_options],
                    dtype=torch.float32,
                    device=self.device,
                )
            )
        settling.drop_together(self.slots, xys, quaternions, env_idx, self.settle)

    def _remember_episode(
        self, env_idx: torch.Tensor, row_options: Sequence[dict[str, Any]]
    ) -> None:
        """The rule's references: settled origins, source / target slots and the near
        threshold from the bounding boxes turned by the settled orientations."""
        source = torch.tensor([e["source_obj_id"] for e in row_options], device=self.device)
        target = torch.tensor([e["target_obj_id"] for e in row_options], device=self.device)
        self.source_index[env_idx] = source
        self.target_index[env_idx] = target
        poses = self.object_poses()[env_idx]
        self.settled[env_idx] = poses[..., :3]
        reach = torch.zeros(len(env_idx), device=self.device)
        picked = torch.arange(len(env_idx), device=self.device)
        for slots in (source, target):
            size = 2 * self.half_sizes[env_idx][picked, slots]
            turned = quaternion_apply(poses[picked, slots, 3:], size)
            reach = reach + turned[:, :2].norm(dim=-1) / 2
        self.near_threshold[env_idx] = reach
        for row, entry in zip(env_idx.tolist(), row_options, strict=True):
            names = entry["model_ids"]
            self.instructions[row] = (
                f"move {instruction_name(names[entry['source_obj_id']])} "
                f"near {instruction_name(names[entry['target_obj_id']])}"
            )

    # ---- state and success ----------------------------------------------------------------

    def object_poses(self) -> torch.Tensor:
        """(N, K, 7) origin poses (xyz, wxyz) of the objects in slot order."""
        return torch.stack([actor.pose.raw_pose for actor in self.slots], dim=1)

    def object_centres(self) -> torch.Tensor:
        """(N, K, 3) centres of mass (upstream's source_obj_pose / target_obj_pose)."""
        return torch.stack(
            [
                (actor.pose * offset).p
                for actor, offset in zip(self.slots, self.centre_offsets, strict=True)
            ],
            dim=1,
        )

    def _pick(self, values: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        return values[torch.arange(len(slots), device=values.device), slots]

    def is_grasped(self) -> torch.Tensor:
        """Upstream's `check_grasp(source, max_angle=80)`, per env row."""
        links = self.agent.robot.links_map
        grasped = torch.stack(
            [
                contacts.robot_grasps(self.scene, links, actor).to(self.device)
                for actor in self.slots
            ],
            dim=1,
        )
        return self._pick(grasped, self.source_index)

    def evaluate(self) -> dict[str, Any]:
        result = evaluate_move_near(
            self.object_poses()[..., :3],
            self.object_centres(),
            self.settled,
            self.source_index,
            self.target_index,
            self.near_threshold,
        )
        return {**result, "is_grasped": self.is_grasped()}

    def privileged_state(self) -> dict[str, torch.Tensor]:
        poses = self.object_poses()
        state = {**super().privileged_state(), "source_grasped": self.is_grasped()}
        for role, slots in (("source", self.source_index), ("target", self.target_index)):
            pose = self.in_base_frame(Pose.create(self._pick(poses, slots)))
            state[f"{role}_pose"] = torch.cat([pose.p, pose.q], dim=-1)
            state[f"{role}_half_size"] = self._pick(self.half_sizes, slots)
        return state
