"""The one place where a policy's action conventions become the controller's.

Every policy action passes through `to_controller_actions`: it checks shape and finiteness and
rewrites the rotation part into the representation the simulator's controller reads. ManiSkill3's
bridge controller reads intrinsic Euler X-Y-Z (R = Rx Ry Rz), while upstream SimplerEnv (and so
the published numbers) reads an axis-angle vector; converting through the rotation matrix keeps
the commanded rotation identical.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.protocol import ACTION_DIM, PolicyConventions, Robot, RotationFormat

FloatArray = npt.NDArray[np.float64]

_GIMBAL_EPS = 1e-9


class PolicyOutputError(ValueError):
    """A policy returned something that is not a valid action batch."""


def _axis_rotations(axis: int, angles: FloatArray) -> FloatArray:
    cos, sin = np.cos(angles), np.sin(angles)
    mats = np.zeros((angles.shape[0], 3, 3))
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    mats[:, axis, axis] = 1.0
    mats[:, i, i] = cos
    mats[:, j, j] = cos
    # right-handed sign pattern: the y rotation has its sine terms mirrored
    sign = -1.0 if axis == 1 else 1.0
    mats[:, i, j] = -sign * sin
    mats[:, j, i] = sign * sin
    return mats


def axis_angle_to_matrix(vectors: FloatArray) -> FloatArray:
    """Rodrigues' formula for a batch of rotation vectors (axis times angle)."""
    angles = np.linalg.norm(vectors, axis=1)
    safe = np.where(angles > _GIMBAL_EPS, angles, 1.0)
    axes = vectors / safe[:, None]
    x, y, z = axes[:, 0], axes[:, 1], axes[:, 2]
    zero = np.zeros_like(x)
    skew = np.stack(
        [np.stack([zero, -z, y], 1), np.stack([z, zero, -x], 1), np.stack([-y, x, zero], 1)], 1
    )
    sin = np.where(angles > _GIMBAL_EPS, np.sin(angles), 0.0)[:, None, None]
    one_minus_cos = np.where(angles > _GIMBAL_EPS, 1.0 - np.cos(angles), 0.0)[:, None, None]
    identity = np.broadcast_to(np.eye(3), skew.shape)
    result: FloatArray = identity + sin * skew + one_minus_cos * (skew @ skew)
    return result


def matrix_to_axis_angle(mats: FloatArray) -> FloatArray:
    """Inverse of Rodrigues' formula, accurate near 0 and near pi."""
    trace = np.trace(mats, axis1=1, axis2=2)
    cos = np.clip((trace - 1.0) / 2.0, -1.0, 1.0)
    angles = np.arccos(cos)
    antisym = np.stack(
        [
            mats[:, 2, 1] - mats[:, 1, 2],
            mats[:, 0, 2] - mats[:, 2, 0],
            mats[:, 1, 0] - mats[:, 0, 1],
        ],
        axis=1,
    )
    result = np.zeros((mats.shape[0], 3))
    small = angles < np.pi / 2
    # away from pi the antisymmetric part is well conditioned: it equals 2 sin(angle) * axis
    scale = np.where(angles > _GIMBAL_EPS, angles / np.maximum(2.0 * np.sin(angles), 1e-300), 0.5)
    result[small] = antisym[small] * scale[small, None]
    for index in np.flatnonzero(~small):
        # near pi use the symmetric part: (R + R^T)/2 - cos I = (1 - cos) a a^T
        outer = ((mats[index] + mats[index].T) / 2.0 - cos[index] * np.eye(3)) / (1.0 - cos[index])
        column = int(np.argmax(np.diag(outer)))
        axis = outer[:, column] / np.sqrt(outer[column, column])
        if axis @ antisym[index] < 0:
            axis = -axis
        result[index] = axis * angles[index]
    return result


def euler_xyz_to_matrix(angles: FloatArray) -> FloatArray:
    """Intrinsic X-Y-Z: R = Rx(a) Ry(b) Rz(c)."""
    result: FloatArray = (
        _axis_rotations(0, angles[:, 0])
        @ _axis_rotations(1, angles[:, 1])
        @ _axis_rotations(2, angles[:, 2])
    )
    return result


def matrix_to_euler_xyz(mats: FloatArray) -> FloatArray:
    """Angles (a, b, c) with R = Rx(a) Ry(b) Rz(c); at gimbal lock c is set to 0."""
    # atan2 with the cosine from the first row stays accurate near +-pi/2, where arcsin does not
    cos_b = np.hypot(mats[:, 0, 0], mats[:, 0, 1])
    b = np.arctan2(mats[:, 0, 2], cos_b)
    locked = cos_b < _GIMBAL_EPS
    a = np.where(
        locked,
        np.arctan2(mats[:, 2, 1], mats[:, 1, 1]),
        np.arctan2(-mats[:, 1, 2], mats[:, 2, 2]),
    )
    c = np.where(locked, 0.0, np.arctan2(-mats[:, 0, 1], mats[:, 0, 0]))
    return np.stack([a, b, c], axis=1)


def roll_pitch_yaw_to_matrix(angles: FloatArray) -> FloatArray:
    """Static x-y-z axes (roll, pitch, yaw): R = Rz(yaw) Ry(pitch) Rx(roll)."""
    result: FloatArray = (
        _axis_rotations(2, angles[:, 2])
        @ _axis_rotations(1, angles[:, 1])
        @ _axis_rotations(0, angles[:, 0])
    )
    return result


_TO_MATRIX = {
    "axis_angle": axis_angle_to_matrix,
    "euler_xyz": euler_xyz_to_matrix,
    "roll_pitch_yaw": roll_pitch_yaw_to_matrix,
}
_FROM_MATRIX = {"axis_angle": matrix_to_axis_angle, "euler_xyz": matrix_to_euler_xyz}


def convert_rotation(
    rotations: FloatArray, source: RotationFormat, target: RotationFormat
) -> FloatArray:
    if source == target:
        return rotations
    if target not in _FROM_MATRIX:
        raise ValueError(f"no controller reads rotations as {target}")
    return _FROM_MATRIX[target](_TO_MATRIX[source](rotations))


def check_policy_robot(policy: PolicyConventions, robot: Robot, name: str) -> None:
    """Refuse a policy whose actions were made for another robot: its statistics, scaling and
    gripper handling would be wrong, and the numbers with them."""
    if policy.robot is not None and policy.robot != robot:
        raise HarnessError(
            f"policy '{name}' acts for the {policy.robot} robot but this suite runs {robot}",
            f"start it with --policy-arg robot={robot} (for a served policy: restart "
            f"`refinevla-bench serve` with --policy-arg robot={robot})",
        )


def validate_actions(actions: object, batch_size: int) -> FloatArray:
    """Reject what a controller must never receive: wrong shape, non-numbers, NaN or inf."""
    try:
        array = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PolicyOutputError(f"actions are not numeric: {exc}") from exc
    if array.shape != (batch_size, ACTION_DIM):
        raise PolicyOutputError(
            f"actions have shape {array.shape}, expected ({batch_size}, {ACTION_DIM})"
        )
    if not np.isfinite(array).all():
        raise PolicyOutputError("actions contain NaN or inf")
    return array


def to_controller_actions(
    actions: object,
    batch_size: int,
    policy: PolicyConventions,
    controller: PolicyConventions,
) -> npt.NDArray[np.float32]:
    """Validate a policy's action batch and express it in the controller's conventions."""
    array = validate_actions(actions, batch_size)
    if policy.gripper != controller.gripper:
        raise PolicyOutputError(
            f"policy gripper is {policy.gripper} but the controller takes {controller.gripper}"
        )
    out = array.copy()
    out[:, 3:6] = convert_rotation(array[:, 3:6], policy.rotation, controller.rotation)
    return out.astype(np.float32)
