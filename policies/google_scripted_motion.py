"""How the Google Robot expert turns a wanted end-effector pose into one delta action.

The Google Robot's controller adds each delta to the MEASURED end-effector pose and a
jerk-limited planner moves the joints towards that target, so a control step covers only about
a third of a big delta and finishes a small one. The expert therefore recomputes the delta from
the measured pose at every step and commands twice the remaining error, clipped: large clipped
deltas move the arm at a steady pace, the doubled gain removes the last centimetres in a few
steps without overshooting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.actions import matrix_to_axis_angle
from refinevla_bench.harness.backends.google_robot_control import config
from refinevla_bench.policies.pose_math import clip_norm, quaternion_to_matrix

FloatArray = npt.NDArray[np.float64]
Row = Mapping[str, FloatArray]  # one env row of the privileged state

GAIN = 2.0  # delta commanded per metre (or radian) of remaining error
MAX_TRANSLATION = 0.1  # metres per control step: the arm then moves about 3 cm per step (1/3 s)
MAX_ROTATION = 0.6  # radians per control step: about 0.17 rad per step actually turned
GRIPPER_CLOSE = 1.0  # relative gripper: +1 drives the fingers fully closed
GRIPPER_OPEN = -1.0  # -1 drives them fully open
# closure (0 open .. 1 closed) one unit of relative gripper action adds to the finger target
GRIPPER_ACTION_CLOSURE = config.GRIPPER_ACTION_SCALE / (
    config.GRIPPER_JOINT_UPPER - config.GRIPPER_JOINT_LOWER
)
# closure (about 0.02 rad) the finger target is kept beyond the measured fingers while holding
HOLD_SQUEEZE = 0.015
# from open, this relative command leaves the fingertips 2 cm apart: a blunt tool for pushing and
# hooking (fully closed fingers press on each other and the arm then tracks its targets
# erratically, seen in the simulator)
HOOK_GRIP = 0.75
UP = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Pose:
    """A pose in the robot-base frame: position and rotation matrix (columns: x, y, z axes)."""

    position: FloatArray
    rotation: FloatArray

    @classmethod
    def of(cls, pose: FloatArray) -> Pose:
        """From the privileged state's 7 numbers: xyz and a wxyz quaternion."""
        return cls(np.asarray(pose[:3], dtype=np.float64), quaternion_to_matrix(pose[3:7]))

    def moved(self, offset: FloatArray) -> Pose:
        return Pose(self.position + offset, self.rotation)


def pose_of(row: Row, key: str) -> Pose:
    return Pose.of(row[key])


def rotation_between(current: FloatArray, wanted: FloatArray) -> FloatArray:
    """Axis-angle vector (base frame) of the turn that takes `current` to `wanted`."""
    turn: FloatArray = matrix_to_axis_angle((wanted @ current.T)[None])[0]
    return turn


def rotation_error(current: FloatArray, wanted: FloatArray) -> float:
    return float(np.linalg.norm(rotation_between(current, wanted)))


def position_error(tcp: Pose, goal: Pose) -> float:
    return float(np.linalg.norm(goal.position - tcp.position))


def servo(
    tcp: Pose,
    goal: Pose,
    max_translation: float = MAX_TRANSLATION,
    max_rotation: float = MAX_ROTATION,
) -> FloatArray:
    """The arm part (6,) of the action that moves the measured `tcp` towards `goal`."""
    translation = clip_norm(GAIN * (goal.position - tcp.position), max_translation)
    turn = clip_norm(GAIN * rotation_between(tcp.rotation, goal.rotation), max_rotation)
    return np.concatenate([translation, turn])


def grip_command(steps: int) -> float:
    """The gripper part while shaping the tool, `steps` control steps in: open fully, then
    close to the hook grip; keep it after that."""
    if steps == 0:
        return GRIPPER_OPEN
    return HOOK_GRIP if steps == 1 else 0.0


def holding_grip(row: Row) -> float:
    """The relative gripper action that puts the finger target HOLD_SQUEEZE beyond the measured
    fingers (the row's `gripper_drive` is the target the action is added to).

    The controller re-plans the fingers from their measured position and velocity at every
    control step. Squeezing towards the fully closed target, the fingers on an object report
    a spurious closing-against velocity (-1 to -2 rad/s while standing still, seen in the
    simulator), so each new plan first backs the target off: the fingers open for a tenth of a
    second at every step and a can held by friction drops out. A target just beyond the
    fingers keeps that velocity near zero and the can in the hand."""
    closure = 1.0 - float(row["gripper_opening"])
    change = closure + HOLD_SQUEEZE - float(row["gripper_drive"])
    return float(np.clip(change / GRIPPER_ACTION_CLOSURE, -1.0, 1.0))


def unit(vector: FloatArray) -> FloatArray:
    result: FloatArray = vector / np.linalg.norm(vector)
    return result


def frame(approach: FloatArray, closing: FloatArray) -> FloatArray:
    """The end-effector rotation whose z axis (out of the palm, between the fingers) is
    `approach` and whose y axis (the fingers' closing direction) is `closing`, made
    perpendicular to the approach."""
    z = unit(approach)
    y = unit(closing - (closing @ z) * z)
    return np.column_stack([np.cross(y, z), y, z])


@dataclass(frozen=True)
class Command:
    """What a task's phase machine wants this step: an end-effector goal (None: keep still),
    the relative gripper command, and whether to end the (sub)task."""

    goal: Pose | None
    gripper: float
    terminate: bool = False

    def action(self, tcp: Pose) -> FloatArray:
        """The 7 numbers a learned policy would send for this command."""
        arm = np.zeros(6) if self.goal is None else servo(tcp, self.goal)
        return np.concatenate([arm, [self.gripper]])
