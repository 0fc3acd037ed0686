"""The gripper's joint target for a relative action (+1 close, -1 open), batched.

Upstream (controllers/pd_joint_pos.py, gripper_pd_joint_target_delta_pos_interpolate_by_planner):
clip the action to [-1, 1] and scale it by 1.31; add it to the LAST DRIVE TARGET sent to the
fingers (the planner's waypoint at the end of the previous control step, not the previous
target); clip to the URDF finger limits widened by 0.01; where |scaled action| < 1e-3, keep the
previous target instead. Both fingers (mimic joints) get the same action.
"""

from __future__ import annotations

from torch import Tensor

from refinevla_bench.harness.backends.google_robot_control import config


def scale_action(action: Tensor) -> Tensor:
    """(N,) gripper actions -> (N, 1) joint deltas in radians (normalize_action=True)."""
    return action.clamp(-1.0, 1.0).unsqueeze(-1) * config.GRIPPER_ACTION_SCALE


def gripper_target(last_drive_target: Tensor, previous_target: Tensor, action: Tensor) -> Tensor:
    """New (N, 2) finger targets from the last drive targets, previous targets and (N,) actions."""
    delta = scale_action(action.to(last_drive_target))
    target = (last_drive_target + delta).clamp(
        config.GRIPPER_JOINT_LOWER - config.GRIPPER_TARGET_MARGIN,
        config.GRIPPER_JOINT_UPPER + config.GRIPPER_TARGET_MARGIN,
    )
    small = delta.abs() < config.GRIPPER_SMALL_ACTION
    return target.where(~small, previous_target.to(target))
