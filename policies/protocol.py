"""The batched policy protocol and the conventions a policy declares about its actions.

A policy states how it expresses rotation and gripper commands; the harness converts to what
the simulator's controller expects in one place (`refinevla_bench.harness.actions`), so no
adapter ever hand-converts and a convention mismatch cannot pass silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

RotationFormat = Literal["axis_angle", "roll_pitch_yaw", "euler_xyz"]
GripperMode = Literal["absolute", "relative"]

ACTION_DIM = 7  # dx, dy, dz, 3 rotation numbers, gripper


@dataclass(frozen=True)
class ActionConventions:
    """How a policy's 7-number actions are meant.

    rotation: `axis_angle` (rotation vector, radians), `roll_pitch_yaw` (static x-y-z axes,
    R = Rz Ry Rx) or `euler_xyz` (intrinsic X-Y-Z, R = Rx Ry Rz).
    gripper: `absolute` (+1 open, -1 closed) or `relative` (+1 close, -1 open, change only).
    image_size: (height, width) the policy wants, or None for the camera's native size.
    """

    rotation: RotationFormat = "axis_angle"
    gripper: GripperMode = "absolute"
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class ObservationBatch:
    """What a policy sees at one control step, one row per parallel episode."""

    images: npt.NDArray[np.uint8]  # (batch, height, width, 3) RGB after green-screen
    instructions: tuple[str, ...]

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])


@runtime_checkable
class Policy(Protocol):
    """A batched policy: one `reset` per group of episodes, one `act` per control step."""

    conventions: ClassVar[ActionConventions]

    def reset(self, instructions: Sequence[str]) -> None: ...

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        """Return actions of shape (batch, 7) in the policy's declared conventions."""
        ...
