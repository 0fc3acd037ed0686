"""Upstream's Google Robot control mode as one ManiSkill3 controller over all 11 joints.

`arm_pd_ee_delta_pose_align_interpolate_by_planner` + `gripper_pd_joint_target_delta_pos_
interpolate_by_planner`, action (N, 7) = [dx, dy, dz, rx, ry, rz, gripper] (translation and
axis-angle rotation in the robot-base frame, unclipped; gripper relative, +1 close). The math
lives in `google_robot_control`; this class wires it to the simulator:
- `set_action`: EE "align" target from the measured `link_gripper_tcp` pose in the base frame,
  IK (`ik.py`: upstream's pinocchio CLIK on CPU, a batched torch CLIK on GPU; where IK fails
  the arm targets its measured qpos), then the planner's 171 substep drive targets;
- `before_simulation_step`: substep k's arm position targets, finger position and velocity
  targets (the arm's velocity targets stay 0, like upstream). On GPU simulation ManiSkill3
  only uploads drive targets once per control step, so this controller uploads them itself.
One controller rather than ManiSkill's arm/gripper pair because `ControlState` carries both.

Differences from upstream that remain: ManiSkill3 balances passive forces by switching off
gravity on the robot's links, where upstream adds the passive force (gravity, Coriolis and
centrifugal) as joint force every substep; controller state is not part of `get_state`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from mani_skill.agents.controllers.base_controller import BaseController, ControllerConfig
from torch import Tensor

from refinevla_bench.harness.backends.google_robot import ik
from refinevla_bench.harness.backends.google_robot_control import config
from refinevla_bench.harness.backends.google_robot_control.control_step import (
    ControlState,
    SubstepTargets,
    arm_step,
    gripper_step,
)
from refinevla_bench.harness.backends.google_robot_control.pose import align_delta_target

CONTROL_MODE = (
    "arm_pd_ee_delta_pose_align_interpolate_by_planner_"
    "gripper_pd_joint_target_delta_pos_interpolate_by_planner"
)
ACTION_DIM = 7
# upstream's declared bounds (unused: the arm action is neither clipped nor scaled)
ACTION_LOW = (-1.0, -1.0, -1.0, -np.pi / 2, -np.pi / 2, -np.pi / 2, -1.0)
ACTION_HIGH = (1.0, 1.0, 1.0, np.pi / 2, np.pi / 2, np.pi / 2, 1.0)


@dataclass
class GoogleRobotControllerConfig(ControllerConfig):  # type: ignore[misc]
    """Drive gains of upstream's force-mode PD drives (defaults.py, GoogleRobotDefaultConfig)."""

    joint_names: list[str] = field(
        default_factory=lambda: [*config.ARM_JOINTS, *config.GRIPPER_JOINTS]
    )
    arm_stiffness: tuple[float, ...] = (
        1700.0,
        1737.0471680861954,
        979.975871856535,
        930.0,
        1212.154500274304,
        432.96500923932535,
        468.0013365498738,
        2000.0,
        2000.0,
    )
    arm_damping: tuple[float, ...] = (
        1059.9791902443303,
        1010.4720585373592,
        767.2803161582076,
        680.0,
        674.9946964336588,
        274.613381336198,
        340.532560578637,
        900.0,
        900.0,
    )
    arm_force_limit: tuple[float, ...] = (300, 300, 100, 100, 100, 100, 100, 100, 100)
    gripper_stiffness: float = 200.0
    gripper_damping: float = 8.0
    gripper_force_limit: float = 60.0
    ee_link: str = config.EE_LINK
    urdf: Path | None = None  # the robot's URDF, for the GPU IK's kinematic chain

    @property
    def controller_cls(self) -> type[GoogleRobotController]:
        return GoogleRobotController


GOOGLE_ROBOT_CONTROL = GoogleRobotControllerConfig()


class GoogleRobotController(BaseController):  # type: ignore[misc]
    """EE-align delta pose arm + relative gripper, both interpolated by the planner."""

    config: GoogleRobotControllerConfig
    sets_target_qpos = True
    sets_target_qvel = True

    def _initialize_joints(self) -> None:
        super()._initialize_joints()
        arm_count = len(config.ARM_JOINTS)
        self.arm_indices = self.active_joint_indices[:arm_count]
        self.finger_indices = self.active_joint_indices[arm_count:]
        self.finger_joints = self.joints[arm_count:]
        self.ee_link = self.articulation.links_map[self.config.ee_link]
        self._solver: ik.PinocchioIK | ik.JacobianIK | None = None
        self._state: ControlState | None = None
        self._pending_reset: Tensor | None = None
        self.arm_targets: SubstepTargets | None = None
        self.finger_targets: SubstepTargets | None = None
        self.ik_success: Tensor | None = None
        self.ik_target: Tensor | None = None  # (N, 9) arm joint targets of the last action
        self._substep = 0

    def _initialize_action_space(self) -> None:
        low = np.array(ACTION_LOW, dtype=np.float32)
        high = np.array(ACTION_HIGH, dtype=np.float32)
        self.single_action_space = spaces.Box(low, high, dtype=np.float32)

    def set_drive_property(self) -> None:
        gains = zip(
            (*self.config.arm_stiffness, *[self.config.gripper_stiffness] * 2),
            (*self.config.arm_damping, *[self.config.gripper_damping] * 2),
            (*self.config.arm_force_limit, *[self.config.gripper_force_limit] * 2),
            strict=True,
        )
        for joint, (stiffness, damping, force_limit) in zip(self.joints, gains, strict=True):
            joint.set_drive_properties(stiffness, damping, force_limit=force_limit, mode="force")
            joint.set_friction(0.0)

    @property
    def ee_pose_at_base(self) -> Any:
        """The measured `link_gripper_tcp` pose in the robot-base frame (a batched Pose)."""
        return self.articulation.pose.inv() * self.ee_link.pose

    @property
    def state(self) -> ControlState:
        """The planner and gripper state carried between control steps (read it, don't edit)."""
        return self._require_state()

    def mark_reset(self, mask: Tensor) -> None:
        """Rows (N,) bool that the next `reset` re-initialises (see GoogleRobot.reset)."""
        mask = mask.to(self.device)
        self._pending_reset = mask if self._pending_reset is None else self._pending_reset | mask

    def reset(self) -> None:
        """Start the marked rows (all, the first time) from their measured joint positions,
        holding them there until the next action."""
        qpos = self.qpos.to(torch.float64)
        arm, fingers = qpos[:, : len(self.arm_indices)], qpos[:, len(self.arm_indices) :]
        if self._state is None:
            self._state = ControlState.initial(arm, fingers)
        mask = self._pending_reset
        if mask is None:
            mask = torch.ones(qpos.shape[0], dtype=torch.bool, device=qpos.device)
        self._pending_reset = None
        self._state.reset(mask, arm, fingers)
        self.arm_targets = self.finger_targets = None
        current = self.articulation.get_drive_targets()[:, self.active_joint_indices]
        self._send(self.qpos.where(mask.unsqueeze(-1), current), torch.zeros_like(fingers))

    def set_action(self, action: Tensor) -> None:
        action = self._preprocess_action(action).to(torch.float64)
        state = self.state
        ee = self.ee_pose_at_base
        position, quaternion = align_delta_target(
            ee.p.to(torch.float64), ee.q.to(torch.float64), action[:, :6]
        )
        qpos = self.articulation.get_qpos()
        solution = self._ik().solve(position, quaternion, qpos)
        measured = self.qpos.to(torch.float64)
        velocity = self.qvel.to(torch.float64)
        arm_count = len(self.arm_indices)
        arm_qpos = measured[:, :arm_count]
        target = solution.qpos.to(torch.float64).where(solution.success.unsqueeze(-1), arm_qpos)
        self.ik_success, self.ik_target = solution.success, target
        self.arm_targets = arm_step(state, arm_qpos, velocity[:, :arm_count], target)
        self.finger_targets = gripper_step(
            state, measured[:, arm_count:], velocity[:, arm_count:], action[:, 6]
        )
        self._substep = 0

    def before_simulation_step(self) -> None:
        if self.arm_targets is None or self.finger_targets is None:
            return
        k = min(self._substep, self.arm_targets.positions.shape[1] - 1)
        self._substep += 1
        positions = torch.cat(
            [self.arm_targets.positions[:, k], self.finger_targets.positions[:, k]], dim=-1
        )
        self._send(positions, self.finger_targets.velocities[:, k])

    def _send(self, positions: Tensor, finger_velocities: Tensor) -> None:
        """Position targets of all 11 joints, velocity targets of the fingers (N, 2)."""
        if not self.scene.gpu_sim_enabled:
            self._send_cpu(positions, finger_velocities)
            return
        dtype = self.articulation.get_qpos().dtype
        self.articulation.set_joint_drive_targets(positions.to(dtype), self.joints)
        self.articulation.set_joint_drive_velocity_targets(
            finger_velocities.to(dtype), self.finger_joints
        )
        self.scene.px.gpu_apply_articulation_target_position()
        self.scene.px.gpu_apply_articulation_target_velocity()

    def _send_cpu(self, positions: Tensor, finger_velocities: Tensor) -> None:
        """The CPU simulator's one articulation, written joint by joint on SAPIEN's own joint
        objects: ManiSkill's batched setter converts every value to a tensor first, which
        cost a quarter of a control step (171 substeps x 13 targets)."""
        position_row = positions[0].to(torch.float32).numpy()
        velocity_row = finger_velocities[0].to(torch.float32).numpy()
        for index, joint in enumerate(self.joints):
            joint._objs[0].drive_target = position_row[index : index + 1]
        for index, joint in enumerate(self.finger_joints):
            joint._objs[0].drive_velocity_target = velocity_row[index : index + 1]

    def _require_state(self) -> ControlState:
        if self._state is None:
            raise RuntimeError("reset the environment before stepping the Google Robot")
        return self._state

    def _ik(self) -> ik.PinocchioIK | ik.JacobianIK:
        if self._solver is None:
            if self.scene.gpu_sim_enabled:
                if self.config.urdf is None:
                    raise RuntimeError("GPU simulation needs the URDF in the controller config")
                names = [joint.name for joint in self.articulation.get_active_joints()]
                self._solver = ik.JacobianIK(
                    self.config.urdf,
                    self.config.ee_link,
                    names,
                    self.arm_indices,
                    self.device,
                )
            else:
                self._solver = ik.PinocchioIK(
                    self.articulation, self.config.ee_link, self.arm_indices
                )
        return self._solver
