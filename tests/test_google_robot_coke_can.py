"""The pick-coke-can twin (GraspSingleOpenedCokeCanInScene-v0) on the CPU simulator.

ManiSkill fixes its asset folder at its first import, and other tests import it in-process
with another asset root, so one fresh interpreter runs `_probe` and the sim tests check its
JSON report. The success rule's pure pieces are tested directly on synthetic tensors.

Upstream facts checked (ManiSkill2_real2sim envs/custom_scenes/grasp_single_in_scene.py,
base_env.py, agents/robots/googlerobot.py; SimplerEnv rt1_pick_coke_can_visual_matching.sh).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from refinevla_bench.harness.backends.google_robot import lift_success
from tests.support import REPO_ROOT, run_sim_script

ORIENTATIONS = ("horizontal", "vertical", "standing")
CAN_XY = (-0.2, 0.2)
TABLE_TOP = 0.87
# opened_coke_can/collision.obj: the can's axis is the model's y axis; below the origin it
# reaches y = -0.0690 (bottom) and z = -0.0322 (side); the model DB's bbox rounds to +-0.0615
CAN_SIDE = 0.0322
CAN_BOTTOM = 0.0690
SCRIPT = (
    f"import json, sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
    "from tests.test_google_robot_coke_can import _probe; print(json.dumps(_probe(sys.argv[1])))"
)


def _probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: every measurement the sim tests check, JSON-ready."""
    from refinevla_bench.harness.backends.maniskill import import_maniskill
    from refinevla_bench.harness.paths import maniskill_asset_dir

    import_maniskill(maniskill_asset_dir(Path(assets)))
    import gymnasium as gym

    from refinevla_bench.harness.backends.google_robot import agent, pick_coke_can
    from refinevla_bench.harness.backends.google_robot.green_screen import load_overlay

    def pose(actor: Any) -> list[float]:
        return [*actor.pose.p[0].tolist(), *actor.pose.q[0].tolist()]

    def image(observation: Any) -> Any:
        return observation["sensor_data"][agent.CAMERA_UID]["rgb"][0].numpy()

    report: dict[str, Any] = {"orientations": {}}
    options = {"obj_init_xy": list(CAN_XY)}
    for orientation in ORIENTATIONS:
        env = gym.make(
            pick_coke_can.ENV_ID,
            obs_mode="rgb+segmentation",
            sim_backend="physx_cpu",
            render_backend="cpu",
            assets_root=Path(assets),
            orientation=orientation,
        )
        u: Any = env.unwrapped
        observation, info = env.reset(seed=0, options=options)
        settled = pose(u.can)
        for _ in range(2):
            env.step(None)
        entry: dict[str, Any] = {
            "quaternion": list(pick_coke_can.ORIENTATIONS[orientation]),
            "settled": settled,
            "settled_height": u.settled_height[0].item(),
            "after_steps": pose(u.can),
            "robot": pose(u.agent.robot),
            "reset_info": {key: bool(info[key][0]) for key in ("success", "is_grasped")},
        }
        report["orientations"][orientation] = entry
        if orientation != "horizontal":
            env.close()
            continue

        camera = observation["sensor_data"][agent.CAMERA_UID]
        rgb, segmentation = image(observation), camera["segmentation"][0, ..., 0].numpy()
        overlay = load_overlay(
            Path(assets) / pick_coke_can.REAL2SIM_DIR / pick_coke_can.OVERLAY, 640, 512
        )
        robot_ids = [int(link.per_scene_id[0]) for link in u.agent.robot.links]
        robot_mask = np.isin(segmentation, robot_ids)
        can_mask = segmentation == int(u.can.per_scene_id[0])
        background = ~(robot_mask | can_mask)
        difference = np.abs(rgb.astype(np.int64) - overlay.astype(np.int64)).sum(-1)
        report["green_screen"] = {
            "shape": list(rgb.shape),
            "background_pixels": int(background.sum()),
            "background_max_difference": int(difference[background].max()),
            "robot_pixels": int(robot_mask.sum()),
            "robot_changed": float((difference[robot_mask] > 0).mean()),
            "can_pixels": int(can_mask.sum()),
            "can_changed": float((difference[can_mask] > 0).mean()),
        }

        # the rule in the simulator: resting, lifted in the air, put back down
        env.reset(seed=0, options=options)
        report["rule"] = {
            "rest": _lift_to(u, 0.0),
            "low": _lift_to(u, 0.005),
            "lifted": _lift_to(u, 0.015),
            "back": _lift_to(u, 0.0),
        }

        # reproducibility: same seed and options, and the default (seeded) can position
        first, _ = env.reset(seed=3, options=options)
        again, _ = env.reset(seed=3, options=options)
        env.reset(seed=5)
        drawn = pose(u.can)
        env.reset(seed=5)
        report["reproducible"] = {
            "same_image": bool(np.array_equal(image(first), image(again))),
            "drawn": drawn,
            "drawn_again": pose(u.can),
        }
        robot_options = {"robot_init_xy": [[0.3, 0.1]], "robot_init_yaw": 0.2}
        env.reset(seed=0, options={**options, **robot_options, "orientation": "standing"})
        report["options"] = {"robot": pose(u.agent.robot), "can": pose(u.can)}
        try:
            pick_coke_can.orientation_quaternion("upside_down")
        except Exception as error:  # a HarnessError naming the known orientations
            report["bad_orientation"] = f"{type(error).__name__}: {error}"
        env.close()
    return report


def _lift_to(u: Any, gain: float) -> dict[str, bool]:
    """Put the can `gain` above its settled height at rest, take one 2 ms substep (fresh
    contacts; it falls a few micrometres) and evaluate."""
    from mani_skill.utils.structs.pose import Pose

    p = u.can.pose.p.clone()
    p[:, 2] = u.settled_height + gain
    u.can.set_pose(Pose.create_from_pq(p, u.can.pose.q))
    u.can.set_linear_velocity(torch.zeros(1, 3))
    u.can.set_angular_velocity(torch.zeros(1, 3))
    u.scene.step()
    result = u.evaluate()
    return {
        "success": bool(result["success"][0]),
        "is_grasped": bool(result["is_grasped"][0]),
        "touching": bool(u.touches_other_than_robot()[0]),
        "lifted": bool(result["lifted_object"][0]),
    }


@pytest.fixture(scope="module")
def probe(google_robot_assets: Path) -> dict[str, Any]:
    started = time.perf_counter()
    report: dict[str, Any] = run_sim_script(SCRIPT, str(google_robot_assets))
    print(f"\ncoke can probe {time.perf_counter() - started:.0f} s")
    return report


def _axis(pose: list[float]) -> np.ndarray:
    """The can's axis (model y) in the world."""
    return np.asarray(Rotation.from_quat(pose[3:], scalar_first=True).apply([0.0, 1.0, 0.0]))


@pytest.mark.sim
def test_orientation_quaternions_are_upstreams_euler_angles(probe: dict[str, Any]) -> None:
    """grasp_single_in_scene.py: lr_switch = euler2quat(0, 0, pi), laid_vertically =
    euler2quat(0, 0, pi/2), upright = euler2quat(pi/2, 0, 0) (static xyz, wxyz)."""
    angles = {
        "horizontal": (0.0, 0.0, math.pi),
        "vertical": (0.0, 0.0, math.pi / 2),
        "standing": (math.pi / 2, 0.0, 0.0),
    }
    for orientation, euler in angles.items():
        expected = Rotation.from_euler("xyz", euler).as_quat(scalar_first=True)
        got = probe["orientations"][orientation]["quaternion"]
        assert (
            min(np.abs(np.subtract(got, expected)).max(), np.abs(np.add(got, expected)).max())
            < 1e-9
        )


@pytest.mark.sim
def test_the_can_settles_on_the_table_top_at_the_requested_xy(probe: dict[str, Any]) -> None:
    """Dropped from 0.5 m over the 0.87 m table, it rests at its requested xy with its origin
    as high above the table top as its collision mesh reaches below it: its side (lying) or
    its bottom (standing)."""
    for orientation, entry in probe["orientations"].items():
        settled = entry["settled"]
        np.testing.assert_allclose(settled[:2], CAN_XY, atol=0.01, err_msg=orientation)
        below = CAN_BOTTOM if orientation == "standing" else CAN_SIDE
        assert settled[2] == pytest.approx(TABLE_TOP + below, abs=0.002), orientation
        assert entry["settled_height"] == pytest.approx(settled[2], abs=1e-6)


@pytest.mark.sim
def test_each_orientation_keeps_its_pose_after_settling(probe: dict[str, Any]) -> None:
    """Standing: axis along world z; horizontal (lr_switch): along world y (the robot's
    left-right, as the robot faces -x); vertical (laid_vertically): along world x. Its pose
    stays within 10 degrees of the quaternion and stays put over two control steps."""
    expected_axis = {"horizontal": [0, 1, 0], "vertical": [1, 0, 0], "standing": [0, 0, 1]}
    for orientation, entry in probe["orientations"].items():
        for pose in (entry["settled"], entry["after_steps"]):
            assert abs(_axis(pose) @ expected_axis[orientation]) > math.cos(math.radians(10))
            settled = Rotation.from_quat(pose[3:], scalar_first=True)
            start = Rotation.from_quat(entry["quaternion"], scalar_first=True)
            assert (settled * start.inv()).magnitude() < math.radians(10), orientation
        np.testing.assert_allclose(entry["after_steps"][:3], entry["settled"][:3], atol=0.002)


@pytest.mark.sim
def test_the_robot_stands_where_visual_matching_puts_it(probe: dict[str, Any]) -> None:
    """rt1_pick_coke_can_visual_matching.sh: robot init (0.35, 0.20), quaternion (0, 0, 0, 1)."""
    robot = probe["orientations"]["horizontal"]["robot"]
    assert robot[:2] == pytest.approx([0.35, 0.20], abs=1e-6)
    assert abs(abs(robot[6]) - 1.0) < 1e-6


@pytest.mark.sim
def test_the_green_screen_shows_the_photo_except_on_robot_and_can(probe: dict[str, Any]) -> None:
    """base_env.py `get_obs`: pixels of robot links and the task object stay rendered; every
    other pixel is the overlay photo resized to the camera's 640x512."""
    screen = probe["green_screen"]
    assert screen["shape"] == [512, 640, 3]
    assert screen["background_pixels"] > 0.3 * 512 * 640
    assert screen["background_max_difference"] == 0
    assert screen["robot_pixels"] > 1000 and screen["can_pixels"] > 100
    assert screen["robot_changed"] > 0.9 and screen["can_changed"] > 0.9


@pytest.mark.sim
def test_success_needs_the_can_lifted_over_1cm_off_everything_but_the_robot(
    probe: dict[str, Any],
) -> None:
    """evaluate(): success at rest is False; 0.5 cm up is not enough; 1.5 cm up touching
    nothing but the robot latches `lifted` (upstream does not require a grasp for that); put
    back while not grasped, the latch clears."""
    rule = probe["rule"]
    assert all(not probe["orientations"][o]["reset_info"]["success"] for o in ORIENTATIONS)
    assert rule["rest"] == {
        "success": False,
        "is_grasped": False,
        "touching": True,
        "lifted": False,
    }
    assert rule["low"]["success"] is False and rule["low"]["touching"] is False
    assert rule["lifted"] == {
        "success": True,
        "is_grasped": False,
        "touching": False,
        "lifted": True,
    }
    assert rule["back"]["success"] is False and rule["back"]["touching"] is True


@pytest.mark.sim
def test_episodes_are_reproducible(probe: dict[str, Any]) -> None:
    """Same seed and options give the same first image; the seeded default draw of the can's
    xy is the same twice and lies in upstream's range [-0.35, -0.12] x [-0.02, 0.42]."""
    reproducible = probe["reproducible"]
    assert reproducible["same_image"]
    assert reproducible["drawn"] == pytest.approx(reproducible["drawn_again"], abs=1e-6)
    x, y = reproducible["drawn"][:2]
    assert -0.36 < x < -0.11 and -0.03 < y < 0.43


@pytest.mark.sim
def test_reset_options_move_the_robot_and_pick_the_orientation(probe: dict[str, Any]) -> None:
    """SimplerEnv's robot quaternion is Rz(yaw) times the centre (0, 0, 0, 1): yaw pi + 0.2;
    the `orientation` option overrides the constructor's (standing: axis along z)."""
    robot, can = probe["options"]["robot"], probe["options"]["can"]
    assert robot[:2] == pytest.approx([0.3, 0.1], abs=1e-6)
    yaw = Rotation.from_quat(robot[3:], scalar_first=True).as_euler("xyz")[2]
    assert math.remainder(yaw - (math.pi + 0.2), 2 * math.pi) == pytest.approx(0.0, abs=1e-5)
    assert abs(_axis(can)[2]) > math.cos(math.radians(10))
    assert probe["bad_orientation"].startswith("HarnessError: unknown coke can orientation")


# ---- the rule's pure pieces ---------------------------------------------------------------


def _evaluate(
    state: lift_success.LiftState, grasped: bool, touching: bool, gain: float
) -> dict[str, bool]:
    result = lift_success.evaluate_lift(
        state, torch.tensor([grasped]), torch.tensor([touching]), torch.tensor([gain])
    )
    return {key: bool(value[0]) for key, value in result.items()}


def test_a_grasp_needs_both_sides_pushed_open_within_80_degrees() -> None:
    """check_grasp: per side max(|finger|, |tip|) >= 1e-6 and min angle to the opening
    direction <= 80 degrees; a zero impulse counts as 90 degrees (normalised to zero)."""
    y = torch.tensor([[0.0, 1.0, 0.0]])
    zero = torch.zeros(1, 3)

    def push(degrees: float) -> torch.Tensor:
        angle = math.radians(degrees)
        return torch.tensor([[math.sin(angle), math.cos(angle), 0.0]]) * 0.01

    assert bool(lift_success.side_holds(y, push(79.0), y, zero)[0])
    assert not bool(lift_success.side_holds(y, push(81.0), y, zero)[0])
    assert bool(lift_success.side_holds(y, push(120.0), y, push(10.0))[0])  # the tip holds
    assert not bool(lift_success.side_holds(y, zero, y, zero)[0])
    assert not bool(lift_success.side_holds(y, push(0.0) * 1e-5, y, zero)[0])  # 1e-7 < 1e-6
    assert lift_success.impulse_angle(y, zero)[0].item() == pytest.approx(math.pi / 2)


def test_lifted_latches_while_grasped_and_clears_when_released() -> None:
    """evaluate(): lifted = (lifted and grasped) or (no non-robot contact and gain > 1 cm)."""
    state = lift_success.LiftState.zeros(1)
    assert not _evaluate(state, grasped=True, touching=True, gain=0.0)["success"]
    assert _evaluate(state, grasped=True, touching=False, gain=0.011)["success"]
    held = _evaluate(state, grasped=True, touching=True, gain=0.0)  # put down, still held
    assert held["success"] and held["lifted_object"]
    released = _evaluate(state, grasped=False, touching=True, gain=0.0)
    assert not released["success"] and not released["lifted_object"]


def test_five_significant_lifts_count_as_success_after_putting_down() -> None:
    """success_from_episode_stats: success also when >= 5 steps had lifted and gain > 2 cm."""
    state = lift_success.LiftState.zeros(1)
    for _ in range(4):
        assert _evaluate(state, grasped=True, touching=False, gain=0.021)[
            "lifted_object_significantly"
        ]
    assert not _evaluate(state, grasped=False, touching=True, gain=0.0)["success"]
    _evaluate(state, grasped=True, touching=False, gain=0.025)
    assert _evaluate(state, grasped=False, touching=True, gain=0.0)["success"]


def test_consecutive_grasp_needs_five_grasped_steps_in_a_row() -> None:
    """consecutive_grasp = consecutive grasped evaluations >= 5, reset by a miss."""
    state = lift_success.LiftState.zeros(1)
    flags = [
        _evaluate(state, grasped=grasped, touching=True, gain=0.0)["consecutive_grasp"]
        for grasped in (True, True, True, True, False, True, True, True, True, True)
    ]
    assert flags == [False] * 9 + [True]
