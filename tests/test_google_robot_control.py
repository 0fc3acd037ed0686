"""Google Robot controllers as batched torch math, checked against independent references.

Upstream facts checked (simpler-env/ManiSkill2_real2sim, agents/configs/google_robot/defaults.py,
agents/controllers/pd_ee_pose.py, pd_joint_pos.py, base_controller.py, agents/utils.py):
"ee_align" keeps translation and rotation in the base frame (p + dp, dq * q) from the measured
EE pose; ruckig plans each joint from (p0, v0, a0 = 0) to rest with symmetric limits (arm 1.5 /
2.0 / 50, gripper 1.0 / 7.0 / 50), all joints finishing together, sampled at k / 513 s for
k = 0..171 and clipped to the plan's end; the gripper action is clipped to [-1, 1], scaled by
1.31, added to the last drive target, clipped to the finger limits +- 0.01, and a scaled action
below 1e-3 keeps the previous target.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from refinevla_bench.harness.backends.google_robot_control import config, control_step, trajectory
from refinevla_bench.harness.backends.google_robot_control.gripper import gripper_target
from refinevla_bench.harness.backends.google_robot_control.pose import (
    align_delta_target,
    axis_angle_to_quaternion,
)
from refinevla_bench.harness.backends.google_robot_control.trajectory import MotionLimits

ARM = config.ARM_LIMITS
GRIPPER = config.GRIPPER_LIMITS
F64 = torch.float64


def _random_poses(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    positions = rng.uniform(-0.5, 0.8, (n, 3))
    quats = Rotation.random(n, random_state=rng.integers(1 << 31)).as_quat(scalar_first=True)
    return positions, quats


def _random_deltas(rng: np.random.Generator, n: int) -> np.ndarray:
    translation = rng.normal(0.0, 0.03, (n, 3))
    rotation = rng.normal(0.0, 0.3, (n, 3)) * rng.choice([0.0, 1e-9, 1.0], (n, 1))
    return np.concatenate([translation, rotation], axis=1)


def _same_rotation(q1: np.ndarray, q2: np.ndarray, atol: float) -> bool:
    """Quaternions equal up to sign (both encode the same rotation)."""
    return bool(np.all(np.abs(np.abs(np.sum(q1 * q2, axis=-1)) - 1.0) < atol))


# ----------------------------------------------------------------------------------------------
# EE target ("ee_align")
# ----------------------------------------------------------------------------------------------


def test_align_target_matches_scipy_per_row() -> None:
    """Upstream ee_align: p' = p + dp and R' = R(rotvec) * R, both in the base frame."""
    rng = np.random.default_rng(0)
    positions, quats = _random_poses(rng, 64)
    deltas = _random_deltas(rng, 64)
    got_p, got_q = align_delta_target(
        torch.tensor(positions), torch.tensor(quats), torch.tensor(deltas)
    )
    for i in range(64):
        expected = Rotation.from_rotvec(deltas[i, 3:]) * Rotation.from_quat(
            quats[i], scalar_first=True
        )
        np.testing.assert_allclose(got_p[i].numpy(), positions[i] + deltas[i, :3], atol=1e-15)
        assert _same_rotation(got_q[i].numpy(), expected.as_quat(scalar_first=True), 1e-12)


def test_align_rotates_about_the_end_effector_in_the_base_frame() -> None:
    """Hand-computed: yaw +90 deg in the base frame turns an EE x-axis (1,0,0) into (0,1,0);
    the EE position does not move with a pure rotation."""
    position = torch.tensor([[0.4, 0.1, 0.9]], dtype=F64)
    identity = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64)
    pitched = torch.tensor([[math.cos(0.3), 0.0, math.sin(0.3), 0.0]], dtype=F64)  # 0.6 rad y
    delta = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, math.pi / 2]], dtype=F64)
    p, q = align_delta_target(position, identity, delta)
    assert torch.equal(p, position)
    x_axis = Rotation.from_quat(q[0].numpy(), scalar_first=True).apply([1.0, 0.0, 0.0])
    np.testing.assert_allclose(x_axis, [0.0, 1.0, 0.0], atol=1e-15)
    # base-frame yaw after a pitch: R = Rz(90) Ry(0.6), not Ry(0.6) Rz(90)
    _, q2 = align_delta_target(position, pitched, delta)
    expected = Rotation.from_euler("z", 90, degrees=True) * Rotation.from_euler("y", 0.6)
    assert _same_rotation(q2[0].numpy(), expected.as_quat(scalar_first=True), 1e-14)


def test_align_composes_over_steps_like_a_reference_loop() -> None:
    """Five actions, each applied to the pose the previous one reached (perfect tracking)."""
    rng = np.random.default_rng(1)
    positions, quats = _random_poses(rng, 64)
    steps = [_random_deltas(rng, 64) for _ in range(5)]
    p, q = torch.tensor(positions), torch.tensor(quats)
    for delta in steps:
        p, q = align_delta_target(p, q, torch.tensor(delta))
    for i in range(64):
        ref_p = positions[i].copy()
        ref_r = Rotation.from_quat(quats[i], scalar_first=True)
        for delta in steps:
            ref_p = ref_p + delta[i, :3]
            ref_r = Rotation.from_rotvec(delta[i, 3:]) * ref_r
        np.testing.assert_allclose(p[i].numpy(), ref_p, atol=1e-14)
        assert _same_rotation(q[i].numpy(), ref_r.as_quat(scalar_first=True), 1e-12)


def test_align_float32_agrees_with_float64() -> None:
    rng = np.random.default_rng(2)
    positions, quats = _random_poses(rng, 64)
    deltas = _random_deltas(rng, 64)
    p64, q64 = align_delta_target(*(torch.tensor(x) for x in (positions, quats, deltas)))
    p32, q32 = align_delta_target(
        *(torch.tensor(x, dtype=torch.float32) for x in (positions, quats, deltas))
    )
    assert p32.dtype == torch.float32 and q32.dtype == torch.float32
    np.testing.assert_allclose(p32.double().numpy(), p64.numpy(), atol=1e-6)
    np.testing.assert_allclose(q32.double().numpy(), q64.numpy(), atol=1e-6)


def test_small_rotation_vectors_keep_precision() -> None:
    """Near zero the axis-angle conversion must not lose the tiny rotation (scipy reference)."""
    rotvec = np.array([[1e-9, -2e-9, 3e-10], [1e-5, 0.0, -1e-5], [0.0, 0.0, 0.0]])
    got = axis_angle_to_quaternion(torch.tensor(rotvec)).numpy()
    np.testing.assert_allclose(
        got, Rotation.from_rotvec(rotvec).as_quat(scalar_first=True), atol=1e-18, rtol=1e-12
    )


def test_align_rows_are_independent() -> None:
    rng = np.random.default_rng(3)
    positions, quats = _random_poses(rng, 64)
    deltas = _random_deltas(rng, 64)
    full_p, full_q = align_delta_target(*(torch.tensor(x) for x in (positions, quats, deltas)))
    other = _random_deltas(rng, 64)
    other[10] = deltas[10]
    part_p, part_q = align_delta_target(*(torch.tensor(x) for x in (positions, quats, other)))
    assert torch.equal(full_p[10], part_p[10]) and torch.equal(full_q[10], part_q[10])


# ----------------------------------------------------------------------------------------------
# Trajectory planner
# ----------------------------------------------------------------------------------------------


def _rest_to_rest_time(distance: float, lim: MotionLimits) -> float:
    """Closed-form shortest jerk-limited rest-to-rest time (independent of the module)."""
    v, a, j = lim.velocity, lim.acceleration, lim.jerk
    d = abs(float(distance))

    def accel_time(speed: float) -> float:
        return speed / a + a / j if speed >= a * a / j else 2.0 * math.sqrt(speed / j)

    if d >= v * accel_time(v):  # cruise at the velocity limit
        return 2.0 * accel_time(v) + (d - v * accel_time(v)) / v
    peak = (-a / j + math.sqrt((a / j) ** 2 + 4.0 * d / a)) * a / 2.0
    if peak >= a * a / j:
        return 2.0 * accel_time(peak)
    return 4.0 * math.cbrt(d / (2.0 * j))


@pytest.mark.parametrize("lim", [ARM, GRIPPER])
def test_rest_to_rest_duration_matches_closed_form(lim: MotionLimits) -> None:
    distances = np.concatenate([np.geomspace(1e-6, 3.0, 40), -np.geomspace(1e-5, 2.0, 24)])
    got = trajectory.minimum_durations(
        torch.tensor(distances), torch.zeros(len(distances), dtype=F64), lim
    )
    expected = [_rest_to_rest_time(d, lim) for d in distances]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)


def _random_problem(
    rng: np.random.Generator, n: int, dof: int, lim: MotionLimits, scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    start = rng.uniform(-1.0, 1.0, (n, dof))
    distance = rng.normal(0.0, scale, (n, dof)) * rng.choice([0.0, 0.1, 1.0, 1.0], (n, dof))
    velocity = rng.uniform(-1.0, 1.0, (n, dof)) * lim.velocity * rng.choice([0, 1], (n, dof))
    return torch.tensor(start), torch.tensor(velocity), torch.tensor(start + distance)


@pytest.mark.parametrize(("lim", "dof"), [(ARM, 9), (GRIPPER, 2)])
def test_profiles_respect_limits_and_end_at_rest_on_target(lim: MotionLimits, dof: int) -> None:
    """Velocity and acceleration (finite differences) stay within the limits, the jerk is the
    limit or zero, and every joint ends at rest on its target by the row's duration."""
    rng = np.random.default_rng(4)
    start, velocity, target = _random_problem(rng, 64, dof, lim, 0.3)
    profiles = trajectory.plan(start, velocity, target, lim)
    assert set(profiles.phase_jerks.abs().flatten().tolist()) <= {0.0, lim.jerk}
    dt = 1e-4
    times = torch.arange(0.0, float(profiles.duration.max()) + 2 * dt, dt, dtype=F64)
    _, vel = trajectory.sample(profiles, times)
    assert float(vel.abs().max()) <= lim.velocity * (1 + 1e-9)
    accel = torch.diff(vel, dim=1) / dt
    assert float(accel.abs().max()) <= lim.acceleration * (1 + 1e-6)
    end_pos, _ = trajectory.sample(profiles, profiles.duration.max().reshape(1))
    for i in range(64):
        end = trajectory.sample(
            trajectory.JointProfiles(*(x[i : i + 1] for x in profiles)),
            profiles.duration[i].reshape(1),
        )
        np.testing.assert_allclose(end[0][0, 0].numpy(), target[i].numpy(), atol=1e-9)
        np.testing.assert_allclose(end[1][0, 0].numpy(), 0.0, atol=1e-9)
    np.testing.assert_allclose(end_pos[:, 0].numpy(), target.numpy(), atol=1e-9)


def test_rows_finish_together_at_the_slowest_joints_time() -> None:
    """Time synchronisation: the row duration is the slowest joint's shortest time, and a joint
    with far to go is still moving just before it (arm limits, joints from rest)."""
    rng = np.random.default_rng(5)
    start, _, target = _random_problem(rng, 64, 9, ARM, 0.3)
    rest = torch.zeros_like(start)
    profiles = trajectory.plan(start, rest, target, ARM)
    own = trajectory.minimum_durations(target - start, rest, ARM)
    torch.testing.assert_close(profiles.duration, own.amax(dim=-1), rtol=0, atol=1e-15)
    before = profiles.duration - 1e-3
    for i in range(64):
        row = trajectory.JointProfiles(*(x[i : i + 1] for x in profiles))
        _, vel = trajectory.sample(row, before[i].reshape(1))
        moving = (target[i] - start[i]).abs() > 1e-3
        assert bool((vel[0, 0][moving].abs() > 0).all())


def test_progress_from_rest_is_monotone() -> None:
    rng = np.random.default_rng(6)
    start, _, target = _random_problem(rng, 32, 9, ARM, 0.3)
    profiles = trajectory.plan(start, torch.zeros_like(start), target, ARM)
    times = torch.linspace(0.0, float(profiles.duration.max()), 2001, dtype=F64)
    pos, _ = trajectory.sample(profiles, times)
    steps = torch.diff(pos, dim=1) * torch.sign(target - start).unsqueeze(1)
    assert float(steps.min()) >= -1e-12


def test_small_moves_finish_within_one_control_step() -> None:
    """0.04 rad from rest takes 2 * sqrt(0.04 / 2) + 2 / 50 = 0.323 s < 1/3 s: the last
    substep target is the target itself."""
    start = torch.zeros(3, 9, dtype=F64)
    target = torch.full((3, 9), 0.04, dtype=F64)
    out = control_step.plan_substeps(start, start, target, ARM, config.UPSTREAM_TIMING)
    assert out.positions.shape == (3, 171, 9)
    torch.testing.assert_close(out.positions[:, -1], target, rtol=0, atol=1e-12)
    assert float(out.velocities[:, -1].abs().max()) < 1e-12


# Reference trajectories computed with ruckig 0.19.4 (the planner upstream calls):
# (limits, start, target, start velocity, duration, positions at 0.05, 0.1, 0.2, 1/3 s).
RUCKIG_CASES = [
    ("arm", [0.1, -0.2, 0.3], [0.25, -0.21, 0.0], [0.0, 0.0, 0.0], 0.815628777187,
     [[0.1010333333, -0.200434168, 0.2989666667], [0.1065333333, -0.2010721848, 0.2934666667],
      [0.127940937, -0.2023482185, 0.2674666667], [0.1581339461, -0.2040495967, 0.2016888889]]),
    ("arm", [0.0, 0.5, -0.4], [0.05, 0.45, -0.1], [0.4, -0.3, 1.5], 1.555898165555,
     [[0.0189666667, 0.4860333333, -0.3260333333], [0.0334666667, 0.4765333333, -0.2565333333],
      [0.0474666702, 0.4709685406, -0.1325333333], [0.0481708894, 0.4688793051, 0.0016888889]]),
    ("arm", [0.2, 0.0], [0.21, -0.6], [0.9, -0.2], 1.140076918526,
     [[0.2439666667, -0.0110333333], [0.2834666667, -0.0265333333],
      [0.3474666667, -0.0725333333], [0.4016888889, -0.1621260486]]),
    ("gripper", [0.0, 0.0], [1.31, 1.31], [0.0, 0.0], 1.592857142857,
     [[0.0010416667, 0.0010416667], [0.0083333333, 0.0083333333],
      [0.063311759, 0.063311759], [0.1919047619, 0.1919047619]]),
    ("gripper", [0.6, 0.62], [-0.0101, -0.0101], [0.8, 0.75], 1.112778571429,
     [[0.6389583333, 0.6564583333], [0.6716666667, 0.6866666667],
      [0.6951333333, 0.7051333333], [0.622069973, 0.6264003086]]),
    ("gripper", [0.3], [0.32], [-0.9], 0.580802075992,
     [[0.2560416667], [0.2183333333], [0.1848666667], [0.2354919974]]),
]  # fmt: skip


@pytest.mark.parametrize("case", RUCKIG_CASES, ids=lambda c: f"{c[0]}-{len(c[1])}dof")
def test_matches_recorded_ruckig_trajectories(case: tuple[object, ...]) -> None:
    kind, start, target, velocity, duration, positions = case
    lim = ARM if kind == "arm" else GRIPPER
    profiles = trajectory.plan(
        torch.tensor([start], dtype=F64),
        torch.tensor([velocity], dtype=F64),
        torch.tensor([target], dtype=F64),
        lim,
    )
    assert float(profiles.duration[0]) == pytest.approx(duration, abs=1e-11)
    got, _ = trajectory.sample(profiles, torch.tensor([0.05, 0.1, 0.2, 1 / 3], dtype=F64))
    np.testing.assert_allclose(got[0].numpy(), np.array(positions), atol=2e-10)


def _ruckig_samples(
    ruckig: object, start: np.ndarray, velocity: np.ndarray, target: np.ndarray, lim: MotionLimits
) -> tuple[np.ndarray, float]:
    """Upstream's parameterize_path + plan_joint_path for one environment."""
    dof = len(start)
    inp = ruckig.InputParameter(dof)  # type: ignore[attr-defined]
    inp.current_position, inp.current_velocity = list(start), list(velocity)
    inp.current_acceleration = [0.0] * dof
    inp.target_position = list(target)
    inp.target_velocity, inp.target_acceleration = [0.0] * dof, [0.0] * dof
    inp.max_velocity, inp.min_velocity = [lim.velocity] * dof, [-lim.velocity] * dof
    inp.max_acceleration = [lim.acceleration] * dof
    inp.min_acceleration = [-lim.acceleration] * dof
    inp.max_jerk = [lim.jerk] * dof
    traj = ruckig.Trajectory(dof)  # type: ignore[attr-defined]
    ruckig.Ruckig(dof).calculate(inp, traj)  # type: ignore[attr-defined]
    times = np.clip(np.arange(172) / 513, 0.0, traj.duration)
    return np.array([traj.at_time(t)[0] for t in times]), traj.duration


@pytest.mark.parametrize(
    ("lim", "dof", "twin_fingers", "seed", "max_error", "max_share"),
    [
        (ARM, 9, False, 7, 1e-7, 0.0),
        (GRIPPER, 2, True, 8, 0.01, 0.02),
        (GRIPPER, 2, False, 9, 0.03, 0.02),
    ],
    ids=["arm", "twin-fingers", "independent-fingers"],
)
def test_matches_ruckig_on_random_control_steps(
    lim: MotionLimits, dof: int, twin_fingers: bool, seed: int, max_error: float, max_share: float
) -> None:
    """Substep targets agree with upstream's ruckig sampling to 1e-7 rad, except where ruckig
    stretches a joint with a profile outside this module's family (module doc): measured
    there on 1000 to 2000 cases, 0 % of arm steps, 0.8 % of steps of two fingers in nearly the
    same state (<= 0.002 rad) and 0.3 % of independent finger steps (<= 0.01 rad)."""
    import ruckig  # upstream's planner (dev extra): the reference these samples must match

    rng = np.random.default_rng(seed)
    n = 400
    start, velocity, target = _random_problem(rng, n, dof, lim, 0.3)
    if twin_fingers:
        start[:, 1] = start[:, 0] + 1e-3 * torch.tensor(rng.normal(size=n))
        velocity[:, 1] = velocity[:, 0] * 0.98
        target[:, 1] = target[:, 0]
    ours = control_step.plan_substeps(start, velocity, target, lim, config.UPSTREAM_TIMING)
    worst = []
    for i in range(n):
        row = (start[i].numpy(), velocity[i].numpy(), target[i].numpy())
        reference, _ = _ruckig_samples(ruckig, *row, lim)
        worst.append(float(np.abs(ours.positions[i].numpy() - reference[1:]).max()))
    errors = np.array(worst)
    assert errors.max() < max(max_error, 1e-7)
    assert np.mean(errors > 1e-7) <= max_share


def test_planner_float32_agrees_with_float64() -> None:
    rng = np.random.default_rng(9)
    start, velocity, target = _random_problem(rng, 64, 9, ARM, 0.3)
    out64 = control_step.plan_substeps(start, velocity, target, ARM, config.UPSTREAM_TIMING)
    out32 = control_step.plan_substeps(
        start.float(), velocity.float(), target.float(), ARM, config.UPSTREAM_TIMING
    )
    assert out32.positions.dtype == torch.float32
    np.testing.assert_allclose(out32.positions.double().numpy(), out64.positions.numpy(), atol=2e-5)


def test_planner_rows_are_independent() -> None:
    rng = np.random.default_rng(10)
    start, velocity, target = _random_problem(rng, 64, 9, ARM, 0.3)
    full = control_step.plan_substeps(start, velocity, target, ARM, config.UPSTREAM_TIMING)
    other_start, other_velocity, other_target = _random_problem(rng, 64, 9, ARM, 1.0)
    for x, y in ((other_start, start), (other_velocity, velocity), (other_target, target)):
        x[17] = y[17]
    mixed = control_step.plan_substeps(
        other_start, other_velocity, other_target, ARM, config.UPSTREAM_TIMING
    )
    torch.testing.assert_close(mixed.positions[17], full.positions[17], rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# Gripper
# ----------------------------------------------------------------------------------------------


def _reference_gripper(last_drive: float, previous: float, action: float) -> float:
    scaled = min(max(action, -1.0), 1.0) * 1.31
    if abs(scaled) < 1e-3:
        return previous
    return min(max(last_drive + scaled, -0.0001 - 0.01), 1.3 + 0.01)


def test_gripper_targets_hand_computed() -> None:
    """+0.5 from a drive target of 0.5 -> 0.5 + 0.655; +1 saturates at 1.31; -1 from 0.2 clips
    at -0.0101; 5e-4 (scaled 6.55e-4 < 1e-3) keeps the previous target 0.77; 1e-3 moves."""
    drive = torch.tensor([[0.5, 0.5], [0.5, 0.48], [0.2, 0.2], [0.3, 0.3], [0.3, 0.3]], dtype=F64)
    previous = torch.full((5, 2), 0.77, dtype=F64)
    action = torch.tensor([0.5, 1.0, -1.0, 5e-4, 1e-3], dtype=F64)
    got = gripper_target(drive, previous, action)
    expected = [[1.155, 1.155], [1.31, 1.31], [-0.0101, -0.0101], [0.77, 0.77], [0.30131] * 2]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-15)


def test_gripper_targets_match_reference_loop() -> None:
    rng = np.random.default_rng(12)
    drive = rng.uniform(-0.05, 1.35, (64, 2))
    previous = rng.uniform(0.0, 1.3, (64, 2))
    action = rng.uniform(-2.0, 2.0, 64) * rng.choice([1.0, 1e-3, 0.0], 64)
    got = gripper_target(torch.tensor(drive), torch.tensor(previous), torch.tensor(action))
    for i in range(64):
        for j in range(2):
            expected = _reference_gripper(drive[i, j], previous[i, j], action[i])
            assert float(got[i, j]) == pytest.approx(expected, abs=1e-15)


# ----------------------------------------------------------------------------------------------
# Per-control-step state
# ----------------------------------------------------------------------------------------------


def test_timing_is_171_substeps() -> None:
    assert config.UPSTREAM_TIMING.substeps == 171
    times = config.UPSTREAM_TIMING.sample_times(torch.zeros(1, dtype=F64))
    assert times.shape == (172,) and float(times[-1]) == pytest.approx(1 / 3, abs=1e-15)


def test_arm_plans_from_measured_after_reset_then_from_the_previous_plan() -> None:
    rng = np.random.default_rng(13)
    qpos = torch.tensor(rng.uniform(-1, 1, (4, 9)))
    qvel = torch.tensor(rng.uniform(-3, 3, (4, 9)))  # beyond the limit: upstream clips
    state = control_step.ControlState.initial(qpos, torch.zeros(4, 2, dtype=F64))
    goal = qpos + 0.3
    first = control_step.arm_step(state, qpos, qvel, goal)
    expected = control_step.plan_substeps(
        qpos, qvel.clamp(-1.5, 1.5), goal, ARM, config.UPSTREAM_TIMING
    )
    torch.testing.assert_close(first.positions, expected.positions, rtol=0, atol=0)
    # the next plan ignores the measured state and continues from the plan's end
    garbage = torch.full_like(qpos, 9.0)
    second = control_step.arm_step(state, garbage, garbage, goal)
    expected = control_step.plan_substeps(
        first.positions[:, -1], first.velocities[:, -1], goal, ARM, config.UPSTREAM_TIMING
    )
    torch.testing.assert_close(second.positions, expected.positions, rtol=0, atol=0)
    # a reset of row 2 only: that row starts from its measured state again
    state.reset(torch.tensor([False, False, True, False]), qpos, torch.zeros(4, 2, dtype=F64))
    third = control_step.arm_step(state, qpos, torch.zeros_like(qpos), goal)
    from_plan = control_step.plan_substeps(
        second.positions[:, -1], second.velocities[:, -1], goal, ARM, config.UPSTREAM_TIMING
    )
    from_reset = control_step.plan_substeps(
        qpos[2:3], torch.zeros(1, 9, dtype=F64), goal[2:3], ARM, config.UPSTREAM_TIMING
    )
    torch.testing.assert_close(third.positions[[0, 1, 3]], from_plan.positions[[0, 1, 3]])
    torch.testing.assert_close(third.positions[2:3], from_reset.positions)


def test_gripper_step_plans_from_measured_towards_the_drive_based_target() -> None:
    """Closing (+1) from open: target = last drive target + 1.31 (clipped); the plan starts at
    the measured fingers; the next target builds on the last waypoint actually sent."""
    fingers = torch.zeros(2, 2, dtype=F64)
    state = control_step.ControlState.initial(torch.zeros(2, 9, dtype=F64), fingers)
    action = torch.tensor([1.0, 0.0], dtype=F64)
    out = control_step.gripper_step(state, fingers, torch.zeros_like(fingers), action)
    torch.testing.assert_close(
        state.gripper_target, torch.tensor([[1.31, 1.31], [0.0, 0.0]]).double()
    )
    assert out.positions.shape == (2, 171, 2)
    # 1.31 rad at 1 rad/s cannot finish in 1/3 s: the drive target stops part-way
    assert 0.0 < float(state.gripper_drive[0, 0]) < 1.31
    torch.testing.assert_close(state.gripper_drive, out.positions[:, -1], rtol=0, atol=0)
    half = torch.tensor([0.5, 0.0], dtype=F64)
    control_step.gripper_step(state, out.positions[:, -1], out.velocities[:, -1], half)
    # from the last waypoint sent (about 0.19), not from the previous target 1.31
    assert float(state.gripper_target[0, 0]) == pytest.approx(
        float(out.positions[0, -1, 0]) + 0.655, abs=1e-15
    )
    assert float(state.gripper_target[1, 0]) == 0.0
