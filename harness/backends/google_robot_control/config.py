"""Upstream's Google Robot controller settings, as facts (ManiSkill2_real2sim at ef7a4d4).

Control mode of every SimplerEnv Google Robot task (agents/configs/google_robot/defaults.py):
`arm_pd_ee_delta_pose_align_interpolate_by_planner` +
`gripper_pd_joint_target_delta_pos_interpolate_by_planner`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from refinevla_bench.harness.backends.google_robot_control.trajectory import MotionLimits

SIM_FREQ = 513
CONTROL_FREQ = 3

ARM_JOINTS = (
    "joint_torso",
    "joint_shoulder",
    "joint_bicep",
    "joint_elbow",
    "joint_forearm",
    "joint_wrist",
    "joint_gripper",
    "joint_head_pan",
    "joint_head_tilt",
)
EE_LINK = "link_gripper_tcp"
ARM_LIMITS = MotionLimits(velocity=1.5, acceleration=2.0, jerk=50.0)

GRIPPER_JOINTS = ("joint_finger_right", "joint_finger_left")
GRIPPER_LIMITS = MotionLimits(velocity=1.0, acceleration=7.0, jerk=50.0)
# the gripper action is clipped to [-1, 1] and scaled to [-1.31, 1.31] (normalize_action)
GRIPPER_ACTION_SCALE = 1.3 + 0.01
# targets are clipped to the URDF finger limits widened by this margin (clip_target_thres)
GRIPPER_TARGET_MARGIN = 0.01
# URDF limits of both finger joints (google_robot_meta_sim_fix_wheel_fix_fingertip.urdf)
GRIPPER_JOINT_LOWER = -0.0001
GRIPPER_JOINT_UPPER = 1.3
# |scaled action| below this keeps the previous target (small_action_repeat_last_target)
GRIPPER_SMALL_ACTION = 1e-3


@dataclass(frozen=True)
class ControlTiming:
    """Simulation substeps per control step and the planner's sample times."""

    sim_freq: int = SIM_FREQ
    control_freq: int = CONTROL_FREQ

    @property
    def substeps(self) -> int:
        """Upstream's integer division: 513 // 3 = 171 substeps."""
        return self.sim_freq // self.control_freq

    def sample_times(self, like: Tensor) -> Tensor:
        """Times 0, dt, ..., substeps * dt on `like`'s device and dtype (substep k uses index k)."""
        steps = torch.arange(self.substeps + 1, device=like.device, dtype=like.dtype)
        return steps / self.sim_freq


UPSTREAM_TIMING = ControlTiming()
