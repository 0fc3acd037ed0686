"""How a recorded demonstration becomes a LeRobot episode: feature names, shapes, metadata.

Poses are in the robot-base frame the actions are given in (+x away from the robot, +y to its
left, +z up), positions in metres, quaternions (w, x, y, z). `observation.state` is what a real
robot would know of itself (its end-effector pose and the last gripper command); object poses,
sizes and the grasp flag are `observation.privileged.*`: simulator ground truth for a grounded
teacher, never an input to a learned policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench import __version__
from refinevla_bench.harness.collect import DemoId, Demonstration
from refinevla_bench.harness.datasets.episode import IMAGE_PREFIX, PRIVILEGED_PREFIX, STATE_KEY
from refinevla_bench.harness.datasets.features import FeatureSpec, camera_feature
from refinevla_bench.harness.datasets.lerobot_meta import EpisodeRow
from refinevla_bench.harness.datasets.lerobot_writer import EpisodeData
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.suites.spec import SuiteSpec
from refinevla_bench.policies.protocol import PRIVILEGED_STATE_KEYS, PolicyConventions

CAMERA_KEY = IMAGE_PREFIX + "image"
METADATA_KEY = "refinevla"  # our key in meta/episodes.jsonl lines and meta/info.json
POSE_NAMES = ("x", "y", "z", "qw", "qx", "qy", "qz")
XYZ = ("x", "y", "z")
GRIPPER_OPEN = 1.0  # the absolute convention's open command: the gripper state before any action

_PRIVILEGED_NAMES: dict[str, tuple[str, ...]] = {
    "tcp_pose": POSE_NAMES,
    "source_pose": POSE_NAMES,
    "target_pose": POSE_NAMES,
    "source_size": XYZ,
    "target_size": XYZ,
    "source_grasped": ("grasped",),
}
assert set(_PRIVILEGED_NAMES) == set(PRIVILEGED_STATE_KEYS)


def demonstration_features(
    suite: SuiteSpec, conventions: PolicyConventions
) -> dict[str, FeatureSpec]:
    rotation = {
        "axis_angle": ("rx", "ry", "rz"),
        "roll_pitch_yaw": ("roll", "pitch", "yaw"),
        "euler_xyz": ("ex", "ey", "ez"),
    }[conventions.rotation]
    features: dict[str, FeatureSpec] = {
        CAMERA_KEY: camera_feature(suite.camera.height, suite.camera.width),
        STATE_KEY: FeatureSpec("float32", (8,), (*POSE_NAMES, "gripper")),
        "action": FeatureSpec("float32", (7,), ("dx", "dy", "dz", *rotation, "gripper")),
    }
    for key, names in _PRIVILEGED_NAMES.items():
        features[PRIVILEGED_PREFIX + key] = FeatureSpec("float32", (len(names),), names)
    return features


def dataset_info(
    suite: SuiteSpec, policy: str, options: Mapping[str, Any], conventions: PolicyConventions
) -> dict[str, Any]:
    """Our block of meta/info.json: what a reader needs to interpret actions and state."""
    return {
        METADATA_KEY: {
            "suite": suite.name,
            "policy": policy,
            "policy_options": dict(options),
            "action_conventions": {
                "rotation": conventions.rotation,
                "gripper": conventions.gripper,
                "frame": "robot base: +x away from the robot, +y its left, +z up; metres",
            },
            "camera": suite.camera.name,
            "harness_version": __version__,
        }
    }


def check_resumable(existing: Mapping[str, Any], suite: str, policy: str) -> None:
    """A dataset grows only with episodes of the suite and policy it was started with."""
    ours = existing.get(METADATA_KEY) or {}
    for key, wanted in (("suite", suite), ("policy", policy)):
        found = ours.get(key)
        if found is not None and found != wanted:
            raise HarnessError(
                f"the dataset was collected with {key} '{found}', not '{wanted}'",
                f"use --{key} {found} to add to it, or a new --out folder",
            )


def collected_ids(rows: tuple[EpisodeRow, ...]) -> set[DemoId]:
    """(task, episode id, seed) of every episode already in the dataset (to resume)."""
    ids: set[DemoId] = set()
    for row in rows:
        meta = row.extra.get(METADATA_KEY) or {}
        if {"task", "episode_id", "seed"} <= set(meta):
            ids.add((str(meta["task"]), int(meta["episode_id"]), int(meta["seed"])))
    return ids


def episode_data(
    demo: Demonstration,
    record: EpisodeRecord,
    suite: SuiteSpec,
    policy: str,
    conventions: PolicyConventions,
) -> EpisodeData:
    task = next(task for task in suite.tasks if task.name == record.task)
    actions = np.asarray(demo.actions, dtype=np.float32)
    tcp = _series(demo, "tcp_pose")
    previous_gripper = np.concatenate([[GRIPPER_OPEN], actions[:-1, 6]]).astype(np.float32)
    columns: dict[str, npt.NDArray[Any]] = {
        STATE_KEY: np.concatenate([tcp, previous_gripper[:, None]], axis=1),
        "action": actions,
    }
    for key, names in _PRIVILEGED_NAMES.items():
        columns[PRIVILEGED_PREFIX + key] = _series(demo, key).reshape(demo.length, len(names))
    return EpisodeData(
        instruction=demo.instruction,
        frames={CAMERA_KEY: np.stack(demo.frames)},
        columns=columns,
        metadata={
            METADATA_KEY: {
                "suite": suite.name,
                "task": record.task,
                "episode_id": record.episode_id,
                "seed": record.seed,
                "policy": policy,
                "gripper_convention": conventions.gripper,
                "success": record.success,
                "grasped": record.grasped,
                "source_object": task.source_object,
                "target_object": task.target_object,
            }
        },
    )


def _series(demo: Demonstration, key: str) -> npt.NDArray[np.float32]:
    values = demo.state.get(key)
    if not values:
        raise RuntimeError(f"the environment recorded no '{key}' (privileged state missing)")
    return np.asarray(values, dtype=np.float32)
