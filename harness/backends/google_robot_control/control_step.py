"""Per-control-step drive targets for every simulation substep, with upstream's planner state.

Upstream plans once per control step and sends, before simulation substep k = 1..171, the
planned position at k / 513 s (clipped to the plan's end) as the joint drive target; the
gripper also gets the planned velocity as drive velocity target
(interpolate_planner_exec_set_target_vel), the arm does not.

Where each plan starts (pd_joint_pos.py `_setup_qpos_interpolation`):
- arm (use_target False): from the previous plan's state at the end of the previous control
  step (position and velocity of its last waypoint), except right after a reset, when it starts
  from the measured joint positions with the measured velocities clipped to the limit;
- gripper (use_target True): always from the measured positions, measured velocities clipped.
The start acceleration is always taken as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from refinevla_bench.harness.backends.google_robot_control import config, gripper, trajectory
from refinevla_bench.harness.backends.google_robot_control.config import ControlTiming
from refinevla_bench.harness.backends.google_robot_control.trajectory import MotionLimits


class SubstepTargets(NamedTuple):
    """Drive targets for substeps 1..S of one control step, (N, S, D) each."""

    positions: Tensor
    velocities: Tensor


def plan_substeps(
    start_position: Tensor,
    start_velocity: Tensor,
    target: Tensor,
    limits: MotionLimits,
    timing: ControlTiming,
) -> SubstepTargets:
    """Plan from a start state to rest at `target` and sample it at every substep."""
    velocity = start_velocity.to(start_position).clamp(-limits.velocity, limits.velocity)
    profiles = trajectory.plan(start_position, velocity, target.to(start_position), limits)
    positions, velocities = trajectory.sample(profiles, timing.sample_times(start_position))
    return SubstepTargets(positions[:, 1:], velocities[:, 1:])


@dataclass
class ControlState:
    """What upstream's two controllers carry from one control step to the next, per env row."""

    arm_position: Tensor  # (N, 9) the last arm plan's state at the end of its control step
    arm_velocity: Tensor  # (N, 9)
    arm_planned: Tensor  # (N,) bool, False until the first arm plan after a reset
    gripper_drive: Tensor  # (N, 2) last finger drive targets sent
    gripper_target: Tensor  # (N, 2) last finger targets

    @classmethod
    def initial(cls, arm_qpos: Tensor, gripper_qpos: Tensor) -> ControlState:
        """State right after a reset of every row (upstream controller reset)."""
        return cls(
            arm_position=arm_qpos.clone(),
            arm_velocity=arm_qpos.new_zeros(arm_qpos.shape),
            arm_planned=torch.zeros(arm_qpos.shape[0], dtype=torch.bool, device=arm_qpos.device),
            gripper_drive=gripper_qpos.clone(),
            gripper_target=gripper_qpos.clone(),
        )

    def reset(self, mask: Tensor, arm_qpos: Tensor, gripper_qpos: Tensor) -> None:
        """Reset the rows in `mask` (N,) bool to their measured joint positions."""
        fresh = ControlState.initial(
            arm_qpos.to(self.arm_position), gripper_qpos.to(self.arm_position)
        )
        rows = mask.unsqueeze(-1)
        self.arm_position = fresh.arm_position.where(rows, self.arm_position)
        self.arm_velocity = fresh.arm_velocity.where(rows, self.arm_velocity)
        self.arm_planned = self.arm_planned & ~mask
        self.gripper_drive = fresh.gripper_drive.where(rows, self.gripper_drive)
        self.gripper_target = fresh.gripper_target.where(rows, self.gripper_target)


def arm_step(
    state: ControlState,
    measured_qpos: Tensor,
    measured_qvel: Tensor,
    target_qpos: Tensor,
    timing: ControlTiming = config.UPSTREAM_TIMING,
) -> SubstepTargets:
    """Arm drive targets (N, S, 9) towards the IK solution `target_qpos`; updates `state`."""
    planned = state.arm_planned.unsqueeze(-1)
    start = state.arm_position.where(planned, measured_qpos.to(state.arm_position))
    velocity = state.arm_velocity.where(planned, measured_qvel.to(state.arm_position))
    targets = plan_substeps(start, velocity, target_qpos, config.ARM_LIMITS, timing)
    state.arm_position = targets.positions[:, -1]
    state.arm_velocity = targets.velocities[:, -1]
    state.arm_planned = torch.ones_like(state.arm_planned)
    return targets


def gripper_step(
    state: ControlState,
    measured_qpos: Tensor,
    measured_qvel: Tensor,
    action: Tensor,
    timing: ControlTiming = config.UPSTREAM_TIMING,
) -> SubstepTargets:
    """Finger drive targets (N, S, 2) for relative gripper actions (N,); updates `state`."""
    target = gripper.gripper_target(state.gripper_drive, state.gripper_target, action)
    start = measured_qpos.to(target)
    targets = plan_substeps(start, measured_qvel, target, config.GRIPPER_LIMITS, timing)
    state.gripper_target = target
    state.gripper_drive = targets.positions[:, -1]
    return targets
