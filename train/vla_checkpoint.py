"""What a fine-tuned checkpoint records beyond the HF files: `refinevla.json` (family, token
layout, image size, the action conventions of the training data, versions) and
`action_stats.json` (the bins' ranges). Reading them needs neither torch nor transformers, so
the policy can declare its conventions before loading any weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from refinevla_bench.harness.datasets.lerobot_meta import load_info
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.protocol import GripperMode, RotationFormat
from refinevla_bench.train.action_tokens import ActionStats

INFO_FILE = "refinevla.json"
STATS_FILE = "action_stats.json"
FORMAT_VERSION = 1
_DATASET_KEY = "refinevla"  # our block in a LeRobot dataset's meta/info.json


@dataclass(frozen=True)
class ActionConventions:
    """How the training data's actions express rotation and gripper (the policy declares
    the same, so the harness converts them for the controller)."""

    rotation: RotationFormat
    gripper: GripperMode

    def __post_init__(self) -> None:
        if self.rotation not in get_args(RotationFormat):
            raise ValueError(f"unknown rotation convention '{self.rotation}'")
        if self.gripper not in get_args(GripperMode):
            raise ValueError(f"unknown gripper convention '{self.gripper}'")

    def to_json(self) -> dict[str, str]:
        return {"rotation": self.rotation, "gripper": self.gripper}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> ActionConventions:
        return cls(rotation=payload["rotation"], gripper=payload["gripper"])

    @classmethod
    def from_dataset(cls, root: Path) -> ActionConventions:
        """The conventions `collect` recorded in a dataset's meta/info.json."""
        block = load_info(root).get(_DATASET_KEY, {}).get("action_conventions")
        if not isinstance(block, Mapping):
            raise HarnessError(
                f"{root} does not record its action conventions (meta/info.json "
                f"{_DATASET_KEY}.action_conventions)",
                "record the data with `refinevla-bench collect`, or state the conventions "
                "(rotation, gripper) of its actions explicitly",
            )
        try:
            return cls.from_json(block)
        except (KeyError, ValueError) as error:
            raise HarnessError(
                f"{root} records unusable action conventions {dict(block)}: {error}",
                "fix meta/info.json: rotation axis_angle|roll_pitch_yaw|euler_xyz, "
                "gripper absolute|relative",
            ) from error


@dataclass(frozen=True)
class CheckpointInfo:
    family: str
    n_bins: int
    action_dim: int
    image_size: tuple[int, int]  # (height, width) the model's images are resized to
    marker_token: str
    layout_token_ids: tuple[int, ...]  # the marker, then the action tokens bin 0..n_bins-1
    action_conventions: ActionConventions | None
    base: str
    versions: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "family": self.family,
            "n_bins": self.n_bins,
            "action_dim": self.action_dim,
            "image_size": list(self.image_size),
            "marker_token": self.marker_token,
            "layout_token_ids": list(self.layout_token_ids),
            "action_conventions": (
                self.action_conventions.to_json() if self.action_conventions else None
            ),
            "base": self.base,
            "versions": dict(self.versions),
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> CheckpointInfo:
        conventions = payload.get("action_conventions")
        height, width = payload["image_size"]
        return cls(
            family=str(payload["family"]),
            n_bins=int(payload["n_bins"]),
            action_dim=int(payload["action_dim"]),
            image_size=(int(height), int(width)),
            marker_token=str(payload["marker_token"]),
            layout_token_ids=tuple(int(i) for i in payload["layout_token_ids"]),
            action_conventions=ActionConventions.from_json(conventions) if conventions else None,
            base=str(payload.get("base", "")),
            versions=dict(payload.get("versions", {})),
        )


def write_checkpoint_files(path: Path, info: CheckpointInfo, stats: ActionStats) -> None:
    (path / INFO_FILE).write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8")
    (path / STATS_FILE).write_text(json.dumps(stats.to_json(), indent=2) + "\n", encoding="utf-8")


def read_checkpoint_info(path: Path) -> CheckpointInfo:
    payload = _read_json(path, INFO_FILE)
    try:
        return CheckpointInfo.from_json(payload)
    except (KeyError, TypeError, ValueError) as error:
        raise HarnessError(
            f"{path / INFO_FILE} is incomplete or invalid ({type(error).__name__}: {error})",
            "point at a checkpoint written by `VLAModel.save` of this version",
        ) from error


def read_action_stats(path: Path) -> ActionStats:
    try:
        return ActionStats.from_json(_read_json(path, STATS_FILE))
    except ValueError as error:
        raise HarnessError(
            f"{path / STATS_FILE} is invalid: {error}",
            "restore action_stats.json from the training run that wrote the checkpoint",
        ) from error


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    file = folder / name
    if not file.is_file():
        raise HarnessError(
            f"{folder} is not a refinevla checkpoint (no {name})",
            "pass a folder written by the trainer (VLAModel.save), not a base model",
        )
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise HarnessError(f"{file} is not valid JSON ({error})", f"restore {name}") from error
    if not isinstance(payload, dict):
        raise HarnessError(f"{file} does not hold a JSON object", f"restore {name}")
    return payload
