"""The batched policy protocol and the conventions a policy declares about its actions.

A policy states how it expresses rotation and gripper commands; the harness converts to what
the simulator's controller expects in one place (`refinevla_bench.harness.actions`), so no
adapter ever hand-converts and a convention mismatch cannot pass silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

RotationFormat = Literal["axis_angle", "roll_pitch_yaw", "euler_xyz"]
GripperMode = Literal["absolute", "relative"]
ResizeMethod = Literal["bilinear", "bicubic", "lanczos", "area", "nearest"]
Robot = Literal["widowx", "google_robot"]
ROBOTS: tuple[Robot, ...] = ("widowx", "google_robot")

ACTION_DIM = 7  # dx, dy, dz, 3 rotation numbers, gripper


@dataclass(frozen=True)
class PolicyConventions:
    """How a policy's 7-number actions are meant, and what images it wants.

    rotation: `axis_angle` (rotation vector, radians), `roll_pitch_yaw` (static x-y-z axes,
    R = Rz Ry Rx) or `euler_xyz` (intrinsic X-Y-Z, R = Rx Ry Rz).
    gripper: `absolute` (+1 open, -1 closed) or `relative` (+1 close, -1 open, change only).
    image_size: (height, width) the policy wants, or None for the camera's native size; the
    harness resizes with `resize`, which an adapter sets to what its model was trained with
    (`area` averages pixels; `lanczos`, `bicubic`, `bilinear`, `nearest` as in PIL).
    robot: the embodiment the actions are for (a model's un-normalisation statistics, scaling and
    gripper handling are per robot), or None for a policy that acts on any robot; the harness
    refuses to run a policy declared for one robot on another robot's suite.
    """

    rotation: RotationFormat = "axis_angle"
    gripper: GripperMode = "absolute"
    image_size: tuple[int, int] | None = None
    resize: ResizeMethod = "bilinear"
    robot: Robot | None = None


PRIVILEGED_STATE_KEYS = (
    "tcp_pose",  # (batch, 7): end-effector position + quaternion (w, x, y, z)
    "source_pose",  # (batch, 7): the object to move
    "target_pose",  # (batch, 7): where it goes
    "source_size",  # (batch, 3): bounding-box extents along the world axes at episode start
    "target_size",  # (batch, 3)
    "source_grasped",  # (batch,): 1.0 while the gripper holds the source object
)


PROPRIO_KEYS = (
    "tcp_pose",  # (batch, 7): end-effector position + quaternion (w, x, y, z), robot-base frame
    "gripper_opening",  # (batch,): 0.0 fully closed .. 1.0 fully open, from the finger joints
)


@dataclass(frozen=True)
class EpisodeKey:
    """Which episode a batch row belongs to: lets seeded or replaying policies stay
    per-episode deterministic, so resumed runs give the same results as uninterrupted ones."""

    task: str
    episode_id: int
    seed: int


@dataclass(frozen=True)
class ObservationBatch:
    """What a policy sees at one control step, one row per parallel episode.

    `state` holds simulator ground truth (PRIVILEGED_STATE_KEYS, poses in the robot-base frame,
    the frame actions are expressed in). It is filled only for policies whose class sets
    `privileged_state = True`: a learned policy must never see it by accident.
    `proprio` is the robot's own state (PROPRIO_KEYS), what a real robot reports too: every
    policy may read it (pi0 conditions on it); it never describes the objects.
    """

    images: npt.NDArray[np.uint8]  # (batch, height, width, 3) RGB after green-screen
    instructions: tuple[str, ...]
    episodes: tuple[EpisodeKey, ...] = ()
    state: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    proprio: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])


def wants_privileged_state(policy: object) -> bool:
    """Scripted experts opt in with a class attribute `privileged_state = True`."""
    return bool(getattr(policy, "privileged_state", False))


@runtime_checkable
class ReasoningPolicy(Protocol):
    """A policy that writes its reasoning before acting (ReFineVLA with reasoning on); the runner
    stores each step's text in the episode's record."""

    def last_rationales(self) -> Sequence[str] | None:
        """One text per row of the last `act` batch; None when it did not reason."""
        ...


@runtime_checkable
class TerminatingPolicy(Protocol):
    """A policy that can ask to end an episode (RT-1's `terminate_episode`): as upstream, the
    runner executes that step's action, then ends the episode and scores it there."""

    def last_terminations(self) -> Sequence[bool] | None:
        """One flag per row of the last `act` batch; None when it asked nothing."""
        ...


@runtime_checkable
class Policy(Protocol):
    """A batched policy: one `reset` per group of episodes, one `act` per control step.
    `conventions` is a class attribute (what `policies list` shows), which an instance may
    replace once it knows its robot."""

    @property
    def conventions(self) -> PolicyConventions: ...

    def reset(self, instructions: Sequence[str]) -> None: ...

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        """Return actions of shape (batch, 7) in the policy's declared conventions."""
        ...
