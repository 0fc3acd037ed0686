"""Upstream SimplerEnv's Google Robot arm and gripper controllers as batched torch math.

Upstream drives the robot with an end-effector delta-pose controller whose joint targets (after
inverse kinematics) are interpolated by ruckig, and a relative gripper controller interpolated
the same way, one environment at a time on the CPU. These modules compute the same things for
(num_envs, ...) tensors on any device, with no simulator dependency:

- `pose.align_delta_target`: the EE target pose for an action (upstream's "ee_align" frame);
- `gripper.gripper_target`: the finger targets for a relative gripper action;
- `trajectory`: the time-synchronised jerk-limited planner (ruckig's semantics);
- `control_step`: the per-control-step state and the drive targets of all 171 substeps.

How a ManiSkill3 environment uses it, per control step with actions (N, 7):
1. after reset of rows `mask`: `state.reset(mask, arm_qpos, gripper_qpos)` (measured qpos;
   `ControlState.initial` for the first reset);
2. `p, q = align_delta_target(ee_p, ee_q, actions[:, :6])` from the measured `link_gripper_tcp`
   pose in the robot-base frame; solve IK for (p, q) from the current qpos (upstream: pinocchio,
   100 iterations; keep the measured arm qpos where IK fails);
3. `arm = arm_step(state, arm_qpos, arm_qvel, ik_qpos)`,
   `fingers = gripper_step(state, finger_qpos, finger_qvel, actions[:, 6])`;
4. before simulation substep k (1..171): arm position drive targets `arm.positions[:, k - 1]`,
   finger position and velocity drive targets `fingers.positions[:, k - 1]`,
   `fingers.velocities[:, k - 1]`.
As a ManiSkill3 controller subclass, step 2-3 belong in `set_action` and step 4 in
`before_simulation_step` (ManiSkill3's own EE controllers interpolate linearly and read the
rotation as Euler XYZ angles, so they are not used as they are).
"""
