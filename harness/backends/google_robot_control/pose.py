"""The arm's end-effector target for a delta-pose action in upstream's "ee_align" frame.

Upstream (controllers/pd_ee_pose.py, frame "ee_align", use_target False) starts from the
MEASURED end-effector pose in the robot-base frame, adds the translation in the base frame and
applies the axis-angle rotation in the base frame about the end-effector itself:
p' = p + dp, q' = dq * q. ManiSkill3 calls this frame
"root_translation:root_aligned_body_rotation" but reads the rotation as Euler XYZ angles.
Actions are neither normalised nor clipped (normalize_action=False).
"""

from __future__ import annotations

import torch
from torch import Tensor

_SMALL_ANGLE = 1e-4


def axis_angle_to_quaternion(rotvec: Tensor) -> Tensor:
    """(..., 3) axis-angle vectors -> (..., 4) unit quaternions, w first."""
    angle = torch.linalg.vector_norm(rotvec, dim=-1, keepdim=True)
    half = 0.5 * angle
    # sin(a/2)/a, with its Taylor series near zero where the division loses precision
    safe = torch.where(angle < _SMALL_ANGLE, torch.ones_like(angle), angle)
    scale = torch.where(angle < _SMALL_ANGLE, 0.5 - angle * angle / 48.0, torch.sin(half) / safe)
    return torch.cat([torch.cos(half), rotvec * scale], dim=-1)


def quaternion_multiply(left: Tensor, right: Tensor) -> Tensor:
    """Hamilton product of (..., 4) quaternions, w first: the rotation `right`, then `left`."""
    w1, x1, y1, z1 = left.unbind(-1)
    w2, x2, y2, z2 = right.unbind(-1)
    return torch.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        dim=-1,
    )


def align_delta_target(
    position: Tensor, quaternion: Tensor, delta: Tensor
) -> tuple[Tensor, Tensor]:
    """New EE target (position (N, 3), quaternion wxyz (N, 4)) from the measured pose and
    `delta` (N, 6) = [dx, dy, dz, rx, ry, rz], all in the robot-base frame."""
    delta = delta.to(position)
    rotation = axis_angle_to_quaternion(delta[..., 3:6])
    return position + delta[..., 0:3], quaternion_multiply(rotation, quaternion.to(position))
