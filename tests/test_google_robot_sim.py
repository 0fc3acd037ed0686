"""The Google Robot in ManiSkill3 (CPU simulation), driven by upstream's controllers.

ManiSkill fixes its asset folder at its first import, and other tests import it in-process
with another asset root, so one fresh interpreter runs `_probe` (every measurement, one
scene per URDF version) and the tests below check its JSON report.

Upstream facts checked (ManiSkill2_real2sim agents/configs/google_robot/defaults.py,
controllers/pd_ee_pose.py, pd_joint_pos.py): camera 640x512, fx = fy = 425, cx = 320, cy = 256;
EE "align" delta: translation in the base frame, rotation in the base frame about the TCP;
gripper relative with +1 closing, scaled by 1.31, small actions keep the previous target.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tests.support import run_module_probe

pytestmark = pytest.mark.sim

STEP_X = 0.03
TURN_Z = 0.1
# upstream's IK stops once |log6(current^-1 target)| < 1e-4: the target pose is that close
IK_TOL = 1e-4
# held drive targets: the damped drives (damping / stiffness about 0.6 s) settle within 4 s
# until PhysX puts the resting arm to sleep (sleep threshold 0.005, upstream's default too);
# measured: 0.1 mm and 0.4 mrad off
HOLD_POSITION_TOLERANCE = 0.0005
HOLD_ROTATION_TOLERANCE = 0.002
HOLD_STEPS = 12


def _probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: every measurement the tests check, as JSON-ready values."""
    from refinevla_bench.harness.backends.maniskill import import_maniskill
    from refinevla_bench.harness.paths import maniskill_asset_dir

    import_maniskill(maniskill_asset_dir(Path(assets)))
    import gymnasium as gym
    import torch

    from refinevla_bench.harness.backends.google_robot import agent, ik, scene

    def make(version: str | None) -> Any:
        return gym.make(
            scene.ENV_ID,
            obs_mode="rgb",
            sim_backend="physx_cpu",
            render_backend="cpu",
            assets_root=Path(assets),
            urdf_version=version,
        )

    env = make(None)
    u = env.unwrapped
    robot, controller = u.agent.robot, u.agent.controller
    names = [joint.name for joint in robot.get_active_joints()]
    fk = ik.JacobianIK(
        controller.config.urdf, "link_gripper_tcp", names, controller.arm_indices, u.device
    )

    def tcp() -> list[float]:
        pose = controller.ee_pose_at_base
        return [*pose.p[0].tolist(), *pose.q[0].tolist()]

    def forward(arm_qpos: Any) -> list[float]:
        """The TCP pose in the base frame for these arm joint positions (pytorch_kinematics)."""
        qpos = robot.get_qpos().double()
        qpos[:, controller.arm_indices] = arm_qpos.double()
        p, q = fk.pose(qpos[:, fk._chain_in_qpos])
        return [*p[0].tolist(), *q[0].tolist()]

    def commanded() -> dict[str, list[float]]:
        """Where IK puts the TCP, and where the last substep's drive targets put it."""
        return {
            "target": forward(controller.ik_target),
            "drive": forward(controller.arm_targets.positions[:, -1]),
        }

    def action(**entries: float) -> Any:
        index = {"x": 0, "y": 1, "z": 2, "rx": 3, "ry": 4, "rz": 5, "gripper": 6}
        values = np.zeros(7, np.float32)
        for key, value in entries.items():
            values[index[key]] = value
        return values

    def hold() -> list[float]:
        for _ in range(HOLD_STEPS):
            env.step(None)
        return tcp()

    report: dict[str, Any] = {"joint_order": names}
    observation, _ = env.reset(seed=0)
    report["initial_qpos"] = dict(zip(names, robot.get_qpos()[0].tolist(), strict=True))
    report["base_pose"] = [*robot.pose.p[0].tolist(), *robot.pose.q[0].tolist()]
    report["ik"] = _compare_ik(controller, fk, robot.get_qpos())
    try:
        agent.urdf_file_name("recolor_nope")
    except Exception as error:  # a HarnessError naming the known versions
        report["bad_version"] = f"{type(error).__name__}: {error}"
    rgb = observation["sensor_data"][agent.CAMERA_UID]["rgb"][0].numpy()
    params = observation["sensor_param"][agent.CAMERA_UID]
    link = robot.links_map["link_camera"].pose
    report["camera"] = {
        "shape": list(rgb.shape),
        "dtype": str(rgb.dtype),
        "std": float(rgb.std()),
        "intrinsic": params["intrinsic_cv"][0].tolist(),
        "extrinsic": params["extrinsic_cv"][0].tolist(),
        "link_camera": [*link.p[0].tolist(), *link.q[0].tolist()],
    }
    images = {"default": rgb.astype(np.float64)}

    start = tcp()
    env.step(action())
    report["zero"] = {"start": start, "after": tcp()}

    # record what each substep sends to the joint drives
    sent: list[tuple[Any, Any]] = []
    step = u.scene.step

    def recording_step() -> None:
        sent.append((robot.get_drive_targets().clone(), robot.get_drive_velocities().clone()))
        step()

    u.scene.step = recording_step
    started = time.perf_counter()
    env.step(action(x=STEP_X))
    report["move_seconds"] = time.perf_counter() - started
    u.scene.step = step
    arm, fingers = controller.arm_targets, controller.finger_targets
    targets = torch.stack([position for position, _ in sent], dim=1)  # (N, S, dof)
    velocities = torch.stack([velocity for _, velocity in sent], dim=1)
    arm_idx, finger_idx = controller.arm_indices, controller.finger_indices
    report["substeps"] = {
        "count": len(sent),
        "arm_position": (targets[..., arm_idx] - arm.positions.float()).abs().max().item(),
        "arm_velocity": velocities[..., arm_idx].abs().max().item(),
        "finger_position": (targets[..., finger_idx] - fingers.positions.float())
        .abs()
        .max()
        .item(),
        "finger_velocity": (velocities[..., finger_idx] - fingers.velocities.float())
        .abs()
        .max()
        .item(),
        "arm_plan_moves": (arm.positions[:, -1] - arm.positions[:, 0]).abs().max().item(),
    }
    report["move"] = {"start": start, "commanded": commanded(), "one_step": tcp()}
    report["move"]["held"] = hold()

    env.reset(seed=0)
    start = tcp()
    env.step(action(rz=TURN_Z))
    report["turn"] = {"start": start, "commanded": commanded(), "one_step": tcp(), "held": hold()}

    env.reset(seed=0)
    gripper: list[dict[str, Any]] = []
    for value in (1.0, 1e-4, 0.01, -1.0):
        before = controller.qpos[0, len(controller.arm_indices) :].tolist()
        last_drive = controller.state.gripper_drive[0].tolist()
        previous = controller.state.gripper_target[0].tolist()
        env.step(action(gripper=value))
        gripper.append(
            {
                "action": value,
                "before": before,
                "after": controller.qpos[0, len(controller.arm_indices) :].tolist(),
                "last_drive": last_drive,
                "previous_target": previous,
                "target": controller.state.gripper_target[0].tolist(),
            }
        )
    report["gripper"] = gripper

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    steps = 6
    for _ in range(steps):
        env.step((rng.uniform(-1, 1, 7) * [0.02, 0.02, 0.02, 0.05, 0.05, 0.05, 1]).astype("f4"))
    report["steps_per_second"] = steps / (time.perf_counter() - started)
    env.close()

    versions: dict[str, Any] = {}
    for version in agent.VISUAL_MATCHING_URDF_VERSIONS[1:]:
        assert version is not None
        env = make(version)
        observation, _ = env.reset(seed=0)
        image = observation["sensor_data"][agent.CAMERA_UID]["rgb"][0].numpy()
        versions[version] = {
            "urdf": Path(env.unwrapped.agent.urdf_path).name,
            "joints": len(env.unwrapped.agent.robot.get_active_joints()),
            "image_change": float(np.abs(image.astype(np.float64) - images["default"]).mean()),
        }
        env.close()
    report["versions"] = versions
    return report


IK_DELTAS = (
    (STEP_X, 0.0, 0.0, 0.0, 0.0, 0.0),
    (0.0, 0.0, 0.0, 0.0, 0.0, TURN_Z),
    (0.05, -0.04, 0.03, 0.2, -0.1, 0.3),
)


def _compare_ik(controller: Any, torch_ik: Any, qpos: Any) -> list[dict[str, Any]]:
    """Upstream's pinocchio IK (CPU) and the batched torch IK (GPU) from the same start."""
    import torch

    from refinevla_bench.harness.backends.google_robot_control.pose import align_delta_target

    pose = controller.ee_pose_at_base
    results = []
    for delta in IK_DELTAS:
        p, q = align_delta_target(
            pose.p.double(), pose.q.double(), torch.tensor([delta], dtype=torch.float64)
        )
        pinocchio = controller._ik().solve(p, q, qpos)
        batched = torch_ik.solve(p, q, qpos)
        full = qpos.double().clone()
        full[:, controller.arm_indices] = batched.qpos.double()
        reached, _ = torch_ik.pose(full[:, torch_ik._chain_in_qpos])
        results.append(
            {
                "delta": list(delta),
                "success": [bool(pinocchio.success[0]), bool(batched.success[0])],
                "joint_difference": (pinocchio.qpos - batched.qpos).abs().max().item(),
                "torch_position_error": (reached - p).norm().item(),
            }
        )
    return results


@pytest.fixture(scope="module")
def probe(google_robot_assets: Path) -> dict[str, Any]:
    report = run_module_probe("test_google_robot_sim", google_robot_assets, "Google Robot sim")
    print(f"Google Robot CPU: {report['steps_per_second']:.2f} control steps/s (rgb 640x512)")
    return report


def _rotation(pose: list[float]) -> Rotation:
    return Rotation.from_quat(pose[3:], scalar_first=True)


def test_the_overhead_camera_has_upstreams_image_size_intrinsics_and_frame(
    probe: dict[str, Any],
) -> None:
    """defaults.py: 640x512, fx = fy = 425, cx = 320, cy = 256, mounted on link_camera whose
    frame follows the OpenCV convention, so the camera's extrinsic is that link's inverse."""
    camera = probe["camera"]
    assert camera["shape"] == [512, 640, 3] and camera["dtype"] == "uint8"
    assert camera["std"] > 1.0  # something was rendered
    assert camera["intrinsic"] == [[425.0, 0.0, 320.0], [0.0, 425.0, 256.0], [0.0, 0.0, 1.0]]
    link = np.eye(4)
    link[:3, :3] = _rotation(camera["link_camera"]).as_matrix()
    link[:3, 3] = camera["link_camera"][:3]
    np.testing.assert_allclose(camera["extrinsic"], np.linalg.inv(link)[:3], atol=1e-5)


def test_the_robot_starts_at_upstreams_qpos_and_base_pose(probe: dict[str, Any]) -> None:
    """base_env.py `_initialize_agent` (SAPIEN 2 joint order: 7 arm, 2 fingers, head pan,
    head tilt; SAPIEN 3 orders active joints differently, so compare by name); base height
    0.06205 + 0.017, quaternion wxyz (0, 0, 0, 1)."""
    upstream = {
        "joint_torso": -0.2639457174606611,
        "joint_shoulder": 0.0831913360274175,
        "joint_bicep": 0.5017611504652179,
        "joint_elbow": 1.156859026208673,
        "joint_forearm": 0.028583671314766423,
        "joint_wrist": 1.592598203487462,
        "joint_gripper": -1.080652960128774,
        "joint_finger_right": 0.0,
        "joint_finger_left": 0.0,
        "joint_head_pan": -0.00285961,
        "joint_head_tilt": 0.7851361,
    }
    assert probe["initial_qpos"] == pytest.approx(upstream, abs=1e-6)  # float32 qpos
    assert probe["base_pose"] == pytest.approx([0, 0, 0.07905, 0, 0, 0, 1], abs=1e-6)


def test_a_zero_action_holds_the_tcp_still(probe: dict[str, Any]) -> None:
    """From rest, the target is the measured pose: IK returns the start qpos, nothing moves."""
    start, after = probe["zero"]["start"], probe["zero"]["after"]
    assert np.linalg.norm(np.subtract(after[:3], start[:3])) < 1e-5
    assert (_rotation(after) * _rotation(start).inv()).magnitude() < 1e-5


def test_a_3cm_x_action_targets_3cm_in_the_base_frame(probe: dict[str, Any]) -> None:
    """EE align: p' = p + dp in the base frame, orientation kept: the IK solution puts the
    TCP there (forward kinematics, within the IK tolerance)."""
    move = probe["move"]
    start, target = move["start"], move["commanded"]["target"]
    np.testing.assert_allclose(np.subtract(target[:3], start[:3]), [STEP_X, 0, 0], atol=IK_TOL)
    assert (_rotation(target) * _rotation(start).inv()).magnitude() < IK_TOL


def test_one_control_step_covers_part_of_the_move_and_the_drives_reach_their_targets(
    probe: dict[str, Any],
) -> None:
    """This move takes the planner (1.5 rad/s, 2 rad/s^2, 50 rad/s^3) about 0.44 s, longer
    than a 1/3 s control step: the last substep's targets stop short (the next step's plan
    starts from there) and the heavily damped drives lag behind them. Holding those targets,
    the drives converge onto them (gravity is compensated)."""
    move = probe["move"]
    start = move["start"]
    drive = np.subtract(move["commanded"]["drive"][:3], start[:3])
    assert 0.5 * STEP_X < drive[0] < STEP_X
    one_step = np.subtract(move["one_step"][:3], start[:3])
    assert 0.1 * STEP_X < one_step[0] < drive[0]
    assert np.abs(one_step[1:]).max() < 0.25 * one_step[0]
    held, driven = move["held"], move["commanded"]["drive"]
    np.testing.assert_allclose(held[:3], driven[:3], atol=HOLD_POSITION_TOLERANCE)
    assert (_rotation(held) * _rotation(driven).inv()).magnitude() < HOLD_ROTATION_TOLERANCE


def test_a_z_rotation_turns_the_tcp_about_the_base_z_axis_in_place(
    probe: dict[str, Any],
) -> None:
    """EE align: q' = Rz(0.1) q (rotation in the base frame, about the TCP): target * start^-1
    is exactly Rz(0.1), which start^-1 * target (the "ee" frame) is not, and the TCP position
    stays (rotating about the base origin would move it). The arm turns the same way."""
    turn = probe["turn"]
    start, target = turn["start"], turn["commanded"]["target"]
    relative = (_rotation(target) * _rotation(start).inv()).as_rotvec()
    np.testing.assert_allclose(relative, [0, 0, TURN_Z], atol=IK_TOL)
    in_tcp_frame = (_rotation(start).inv() * _rotation(target)).as_rotvec()
    assert np.abs(in_tcp_frame - [0, 0, TURN_Z]).max() > 100 * IK_TOL  # the frames differ
    np.testing.assert_allclose(target[:3], start[:3], atol=IK_TOL)
    one_step = (_rotation(turn["one_step"]) * _rotation(start).inv()).as_rotvec()
    assert 0.05 * TURN_Z < one_step[2] < TURN_Z
    assert np.abs(one_step[:2]).max() < 0.25 * one_step[2]
    held, driven = turn["held"], turn["commanded"]["drive"]
    assert (_rotation(held) * _rotation(driven).inv()).magnitude() < HOLD_ROTATION_TOLERANCE


def test_the_gpu_ik_agrees_with_upstreams_pinocchio_ik(probe: dict[str, Any]) -> None:
    """Same CLIK iteration (dt 0.1, damping 1e-6, 100 iterations, 1e-4 threshold) with a
    base-frame error instead of log6: both converge, to nearly the same redundant solution."""
    for result in probe["ik"]:
        assert result["success"] == [True, True], result
        assert result["torch_position_error"] < IK_TOL
        small = np.abs(result["delta"]).max() <= TURN_Z
        assert result["joint_difference"] < (1e-5 if small else 2e-3), result


def test_an_unknown_urdf_version_is_a_user_error(probe: dict[str, Any]) -> None:
    assert probe["bad_version"].startswith("HarnessError: unknown Google Robot urdf_version")


def test_the_gripper_is_relative_closes_on_plus_one_and_keeps_its_target_on_tiny_actions(
    probe: dict[str, Any],
) -> None:
    """pd_joint_pos.py: target = last drive target + 1.31 * clip(action), clipped to the
    finger limits [-0.0001, 1.3] widened by 0.01; |1.31 * action| < 1e-3 keeps the target."""
    close, tiny, small, open_ = probe["gripper"]
    assert close["target"] == pytest.approx([1.31, 1.31])  # 0 + 1.31, inside 1.3 + 0.01
    assert min(np.subtract(close["after"], close["before"])) > 0.05  # fingers closing
    assert tiny["target"] == pytest.approx(tiny["previous_target"])  # 1.31e-4 < 1e-3
    assert min(np.subtract(tiny["after"], tiny["before"])) > 0.05  # still closing towards it
    expected = np.add(small["last_drive"], 0.0131)  # from the last DRIVE target, not 1.31
    assert small["target"] == pytest.approx(expected.tolist())
    assert open_["target"] == pytest.approx([-0.0101, -0.0101])  # clipped at -0.0001 - 0.01
    assert max(np.subtract(open_["after"], open_["before"])) < -0.05  # fingers opening


def test_each_substep_sends_the_planners_targets_to_the_drives(probe: dict[str, Any]) -> None:
    """513 Hz / 3 Hz = 171 substeps; before substep k the arm drives get the plan's position
    k, the fingers position and velocity k; arm velocity targets stay 0 (upstream)."""
    substeps = probe["substeps"]
    assert substeps["count"] == 171
    assert substeps["arm_plan_moves"] > 0.01  # the comparison covers a moving plan
    assert substeps["arm_position"] == 0.0
    assert substeps["arm_velocity"] == 0.0
    assert substeps["finger_position"] == 0.0
    assert substeps["finger_velocity"] == 0.0


def test_the_visual_matching_urdf_versions_load_with_their_own_textures(
    probe: dict[str, Any],
) -> None:
    """Visual matching averages the default URDF and three recoloured ones (same joints)."""
    versions = probe["versions"]
    assert set(versions) == {
        "recolor_tabletop_visual_matching_1",
        "recolor_tabletop_visual_matching_2",
        "recolor_cabinet_visual_matching_1",
    }
    for version, loaded in versions.items():
        assert loaded["urdf"] == f"google_robot_meta_sim_fix_wheel_fix_fingertip_{version}.urdf"
        assert loaded["joints"] == 11
        assert loaded["image_change"] > 0.1  # the camera sees the arm: its texture changed
