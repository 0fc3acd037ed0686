"""The pick-coke-can twin (GraspSingleOpenedCokeCanInScene-v0) on the CPU simulator.

ManiSkill fixes its asset folder at its first import, and other tests import it in-process
with another asset root, so one fresh interpreter runs `_probe` and the sim tests check its
JSON report. The success rule's pure pieces are tested directly on synthetic tensors.

Upstream facts checked (ManiSkill2_real2sim envs/custom_scenes/grasp_single_in_scene.py,
base_env.py, agents/robots/googlerobot.py; SimplerEnv rt1_pick_coke_can_visual_matching.sh,
pick_coke_can_variant_agg.sh). The variant-aggregation (VA) settings run in a second fresh
interpreter (`_variant_probe`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from refinevla_bench.harness.assets.store import MARKER_NAME
from refinevla_bench.harness.backends.google_robot import contacts, lift_success
from refinevla_bench.harness.suites.google_robot import COKE_CAN_CAMERA_VA, COKE_CAN_VA
from tests.support import run_module_probe

ORIENTATIONS = ("horizontal", "vertical", "standing")
CAN_XY = (-0.2, 0.2)
TABLE_TOP = 0.87
# opened_coke_can/collision.obj: the can's axis is the model's y axis; below the origin it
# reaches y = -0.0690 (bottom) and z = -0.0322 (side); the model DB's bbox rounds to +-0.0615
CAN_SIDE = 0.0322
CAN_BOTTOM = 0.0690
# VA runs: the can at grid episode 20 = (-0.12, -0.02), where seed 0 drops the default
# distractors apart from each other, so each one rests where it was drawn
VA_EPISODE = 20
VA_CAN_XY = (-0.12, -0.02)
VA_SEED = 0
MODELS = Path("custom/models")
SPOON = "bridge_spoon_generated_modified"


def _probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: every measurement the sim tests check, JSON-ready."""
    from refinevla_bench.harness.backends.maniskill import import_maniskill
    from refinevla_bench.harness.paths import maniskill_asset_dir

    import_maniskill(maniskill_asset_dir(Path(assets)))
    import gymnasium as gym

    from refinevla_bench.harness.backends.google_robot import agent, pick_coke_can, scene
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
        overlay = load_overlay(Path(assets) / scene.REAL2SIM_DIR / pick_coke_can.OVERLAY, 640, 512)
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


def _variant_probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: every VA variant of the suite (and camera variant) built,
    reset at episode VA_EPISODE with seed VA_SEED and stepped once, with what the VA tests
    check."""
    from refinevla_bench.harness.backends.maniskill import import_maniskill
    from refinevla_bench.harness.paths import maniskill_asset_dir

    import_maniskill(maniskill_asset_dir(Path(assets)))
    import gymnasium as gym
    import sapien

    from refinevla_bench.harness.backends.google_robot import (
        agent,
        contacts,
        distractors,
        pick_coke_can,
    )

    def pose(entity: Any) -> list[float]:
        return [*entity.pose.p[0].tolist(), *entity.pose.q[0].tolist()]

    def lowest_point(actor: Any) -> float:
        """The lowest collision-mesh vertex of a distractor, in the world."""
        mesh = Path(assets) / "real2sim" / "data" / MODELS / actor.name / "collision.obj"
        vertices = np.asarray(
            [line.split()[1:4] for line in mesh.read_text().splitlines() if line.startswith("v ")],
            dtype=np.float64,
        )
        rotation = Rotation.from_quat(actor.pose.q[0].numpy(), scalar_first=True)
        return float((rotation.apply(vertices)[:, 2] + actor.pose.p[0, 2].item()).min())

    def lights(u: Any) -> list[list[list[float]]]:
        """(direction, colour) of every directional light, in the order added."""
        found = []
        for entity in u.scene.sub_scenes[0].entities:
            for component in entity.components:
                if isinstance(component, sapien.render.RenderDirectionalLightComponent):
                    matrix = component.entity_pose.to_transformation_matrix()
                    found.append([matrix[:3, 0].tolist(), [float(c) for c in component.color]])
        return found

    def refusal(**kwargs: Any) -> str:
        """The error of a bad variant kwarg (raised before any simulator work)."""
        try:
            gym.make(pick_coke_can.ENV_ID, assets_root=Path(assets), **kwargs)
        except Exception as error:  # a HarnessError naming the known choices
            return f"{type(error).__name__}: {error}"
        return "accepted"

    def refusal_to_draw(can_xy: np.ndarray) -> str:
        try:
            distractors.draw_xy(np.random.RandomState(0), can_xy)
        except Exception as error:  # a HarnessError: nowhere far enough from the can
            return f"{type(error).__name__}: {error}"
        return "drawn"

    def draws(episode: int) -> list[list[float]]:
        """Six draws from one generator seeded with the episode id, around its can xy."""
        rng, can_xy = np.random.RandomState(episode), np.asarray(pick_coke_can.grid_xy(episode))
        return [distractors.draw_xy(rng, can_xy).tolist() for _ in range(6)]

    grid = range(pick_coke_can.GRID_SIZE**2)
    report: dict[str, Any] = {
        "sets": {name: list(distractors.model_ids(name)) for name in distractors.SETS},
        "refusals": [
            refusal(distractors="less"),
            refusal(lighting="dim"),
            refusal(camera="alt_3"),
            refusal_to_draw(np.asarray([-0.30, 0.20])),
        ],
        "orientation": list(pick_coke_can.ORIENTATIONS["horizontal"]),
        "grid": [list(pick_coke_can.grid_xy(episode)) for episode in grid],
        "draws": [draws(episode) for episode in grid],
        "runs": {},
    }
    for name, kwargs in _suite_variants().items():
        env = gym.make(
            pick_coke_can.ENV_ID,
            obs_mode="rgb+segmentation",
            sim_backend="physx_cpu",
            render_backend="cpu",
            assets_root=Path(assets),
            **kwargs,
        )
        u: Any = env.unwrapped
        observation, _ = env.reset(seed=VA_SEED, options={"episode_id": [VA_EPISODE]})
        joints = [joint.name for joint in u.agent.robot.get_active_joints()]
        entry: dict[str, Any] = {
            "green_screen": u.green_screen,
            "stage": u.stage_path.name,
            "can": pose(u.can),
            "robot": pose(u.agent.robot),
            "head_tilt": u.agent.robot.get_qpos()[0, joints.index("joint_head_tilt")].item(),
            "camera": pose(u.agent.robot.links_map["link_camera"]),
            "brightness": observation["sensor_data"][agent.CAMERA_UID]["rgb"].float().mean().item(),
            "ambient": [float(c) for c in u.scene.ambient_light],
            "lights": lights(u),
            "distractors": {actor.name: pose(actor) for actor in u.distractors},
            "lowest": {actor.name: lowest_point(actor) for actor in u.distractors},
            "privileged": {key: list(value.shape) for key, value in u.privileged_state().items()},
        }
        env.step(None)
        entry["stepped"] = True
        if name == "distractors":
            entry["on_sponge"] = _rest_can_on(u, "sponge", contacts)
        report["runs"][name] = entry
        env.close()
    return report


def _suite_variants() -> dict[str, dict[str, Any]]:
    """The coke can's VA and camera variants as the suite passes them (name -> kwargs)."""
    return {variant.name: variant.kwargs for variant in (*COKE_CAN_VA, *COKE_CAN_CAMERA_VA)}


def _rest_can_on(u: Any, model_id: str, contacts: Any) -> dict[str, Any]:
    """Slide distractor `model_id` under the can, set the can on it and evaluate."""
    from mani_skill.utils.structs.pose import Pose

    distractor = next(actor for actor in u.distractors if actor.name == model_id)
    thickness = 2 * (distractor.pose.p[0, 2].item() - TABLE_TOP)
    under = u.can.pose.p.clone()
    under[:, 2] = distractor.pose.p[:, 2]
    distractor.set_pose(Pose.create_from_pq(under, distractor.pose.q))
    above = u.can.pose.p.clone()
    above[:, 2] = u.settled_height + thickness
    u.can.set_pose(Pose.create_from_pq(above, u.can.pose.q))
    for actor in (distractor, u.can):
        actor.set_linear_velocity(torch.zeros(1, 3))
        actor.set_angular_velocity(torch.zeros(1, 3))
    for _ in range(5):
        u.scene.step()
    result = u.evaluate()
    return {
        "gain": (u.can.pose.p[0, 2] - u.settled_height[0]).item(),
        "touching": bool(u.touches_other_than_robot()[0]),
        "touching_distractor": bool(contacts.touches_any(u.scene, u.can, [distractor])[0]),
        "success": bool(result["success"][0]),
    }


@pytest.fixture(scope="module")
def probe(google_robot_assets: Path) -> dict[str, Any]:
    return run_module_probe("test_google_robot_coke_can", google_robot_assets, "coke can")


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


# ---- variant aggregation --------------------------------------------------------------------


@pytest.fixture(scope="module")
def variant_probe(google_robot_assets: Path) -> dict[str, Any]:
    """The VA probe on the suite's assets as `assets fetch --from` installs them: where the
    copy lacks upstream's bridge_spoon_generated_modified (the "more" set's spoon), a box of
    its database bounding box, listed as a stand-in."""
    return run_module_probe(
        "test_google_robot_coke_can", google_robot_assets, "coke can VA", "_variant_probe"
    )


def test_a_missing_upstream_model_is_installed_as_a_flagged_box(google_robot_assets: Path) -> None:
    data = google_robot_assets / "real2sim" / "data"
    marker = json.loads((data / MARKER_NAME).read_text())
    listed = {entry["path"] for entry in marker["standins"]}
    assert f"real2sim/data/{MODELS}/{SPOON}/collision.obj" in listed
    mesh = (data / MODELS / SPOON / "collision.obj").read_text().splitlines()
    vertices = np.array([[float(v) for v in line.split()[1:]] for line in mesh if line[:2] == "v "])
    # info_pick_custom_v0.json: bbox (+-0.0173, +-0.05, +-0.013021)
    assert vertices.max(axis=0) == pytest.approx([0.0173, 0.05, 0.013021])
    assert vertices.min(axis=0) == pytest.approx([-0.0173, -0.05, -0.013021])


def _upstream_distractor_xy(seed: int, can_xy: tuple[float, float], count: int) -> np.ndarray:
    """grasp_single_in_scene.py: can xy + uniform(-0.3, 0.3), clipped to [-0.50, -0.10] x
    [0.05, 0.35], drawn again until more than 0.25 m from the can; one after another."""
    rng, centre = np.random.RandomState(seed), np.asarray(can_xy)
    drawn: list[np.ndarray] = []
    while len(drawn) < count:
        xy = np.clip(centre + rng.uniform(-0.3, 0.3, 2), [-0.50, 0.05], [-0.10, 0.35])
        if np.linalg.norm(xy - centre) > 0.25:
            drawn.append(xy)
    return np.asarray(drawn)


def _pitch(pose: list[float]) -> float:
    """How far the camera's optical axis (its z: OpenCV frame) points below the horizon."""
    forward = Rotation.from_quat(pose[3:], scalar_first=True).apply([0.0, 0.0, 1.0])
    return float(math.asin(-forward[2]))


def test_the_suites_va_variants_are_upstreams_nine_plus_two_cameras() -> None:
    """pick_coke_can_variant_agg.sh with calc_metrics_evaluation_videos.py: base; the two
    alt_background scenes; slightly darker / brighter lighting; the distractor env with the
    "less" and "more" sets; the two Baked_..._h870 table scenes; all without an overlay. The
    two AltGoogleCamera envs are run but not averaged."""
    expected = {
        "base": {},
        "alt_background": {"scene_name": "google_pick_coke_can_1_v4_alt_background"},
        "alt_background_2": {"scene_name": "google_pick_coke_can_1_v4_alt_background_2"},
        "darker_lighting": {"lighting": "darker"},
        "brighter_lighting": {"lighting": "brighter"},
        "distractors": {"distractors": "default"},
        "more_distractors": {"distractors": "more"},
        "table_texture_1": {"scene_name": "Baked_sc1_staging_objaverse_cabinet1_h870"},
        "table_texture_2": {"scene_name": "Baked_sc1_staging_objaverse_cabinet2_h870"},
        "alt_camera": {"camera": "alt_1"},
        "alt_camera_2": {"camera": "alt_2"},
    }
    assert _suite_variants() == {
        name: {"overlay": None, **kwargs} for name, kwargs in expected.items()
    }
    assert [variant.name for variant in COKE_CAN_CAMERA_VA] == ["alt_camera", "alt_camera_2"]


@pytest.mark.sim
def test_distractor_sets_are_upstreams_and_bad_choices_fail_early(
    variant_probe: dict[str, Any],
) -> None:
    """GraspSingleOpenedCokeCanDistractorInScene-v0: distractor_config "less" (here "default")
    and "more"; an unknown set, lighting or camera is a HarnessError naming the known ones;
    where no distractor position qualifies (upstream would draw forever) so is the draw."""
    assert variant_probe["sets"] == {
        "none": [],
        "default": ["opened_pepsi_can", "apple", "sponge", "orange"],
        "more": [
            "opened_7up_can",
            "opened_sprite_can",
            "sponge",
            "orange",
            "opened_fanta_can",
            "bridge_spoon_generated_modified",
        ],
    }
    expected = (
        "HarnessError: unknown distractor set 'less'",
        "HarnessError: unknown coke can lighting 'dim'",
        "HarnessError: unknown coke can camera 'alt_3'",
        "HarnessError: no distractor position lies more than 0.25 m from a can at [-0.3, 0.2]",
    )
    for refusal, start in zip(variant_probe["refusals"], expected, strict=True):
        assert refusal.startswith(start)


@pytest.mark.sim
def test_distractor_draws_follow_upstreams_rule(variant_probe: dict[str, Any]) -> None:
    """Over the whole can grid, six draws from one generator equal upstream's sequence: each
    in the clip box and more than 0.25 m from the can."""
    for episode, (can_xy, drawn) in enumerate(
        zip(variant_probe["grid"], variant_probe["draws"], strict=True)
    ):
        np.testing.assert_allclose(drawn, _upstream_distractor_xy(episode, can_xy, 6))
        assert (np.linalg.norm(np.subtract(drawn, can_xy), axis=1) > 0.25).all()


@pytest.mark.sim
def test_every_variant_builds_resets_and_steps(variant_probe: dict[str, Any]) -> None:
    """Each VA and camera variant: no green screen, its stage, the VM robot pose and can grid
    (the can settles on the table at the episode's xy), one step, the expert's keys."""
    variants = _suite_variants()
    assert set(variant_probe["runs"]) == set(variants)
    for name, entry in variant_probe["runs"].items():
        assert entry["stepped"] and entry["green_screen"] is False, name
        scene_name = variants[name].get("scene_name", "google_pick_coke_can_1_v4")
        assert entry["stage"] == f"{scene_name}.glb", name
        assert entry["robot"][:2] == pytest.approx([0.35, 0.20], abs=1e-6), name
        np.testing.assert_allclose(entry["can"][:2], VA_CAN_XY, atol=0.01, err_msg=name)
        assert entry["can"][2] == pytest.approx(TABLE_TOP + CAN_SIDE, abs=0.002), name
        privileged = entry["privileged"]
        assert privileged["tcp_pose"] == [1, 7] and privileged["source_pose"] == [1, 7]
        assert privileged["source_grasped"] == [1]
        assert privileged["source_half_size"] == [1, 3]  # the expert's grasp depth needs it


@pytest.mark.sim
def test_lighting_setups_are_upstreams(variant_probe: dict[str, Any]) -> None:
    """grasp_single_in_scene.py `_setup_lighting`: ambient 0.3 always; default (0, 0, -1) 2.2,
    (-1, -0.5, -1) 0.7, (1, 1, -1) 0.7; slightly darker (1, 1, -1) 0.8, (0, 0, -1) 0.8;
    slightly brighter (0, 0, -1) 3.6, (-1, -0.5, -1) 1.3, (1, 1, -1) 1.3. The camera image
    gets darker and brighter in that order."""
    setups: dict[str, list[tuple[tuple[float, float, float], float]]] = {
        "base": [((0, 0, -1), 2.2), ((-1, -0.5, -1), 0.7), ((1, 1, -1), 0.7)],
        "darker_lighting": [((1, 1, -1), 0.8), ((0, 0, -1), 0.8)],
        "brighter_lighting": [((0, 0, -1), 3.6), ((-1, -0.5, -1), 1.3), ((1, 1, -1), 1.3)],
    }
    runs = variant_probe["runs"]
    for name, lights in setups.items():
        entry = runs[name]
        assert entry["ambient"] == pytest.approx([0.3] * 3)
        assert len(entry["lights"]) == len(lights), name
        for (direction, colour), (expected, level) in zip(entry["lights"], lights, strict=True):
            unit = np.asarray(expected) / np.linalg.norm(expected)
            np.testing.assert_allclose(direction, unit, atol=2e-3, err_msg=name)
            assert colour == pytest.approx([level] * 3), name
    brightness = [runs[name]["brightness"] for name in setups]
    assert brightness[1] < brightness[0] < brightness[2]


@pytest.mark.sim
def test_distractors_fall_where_upstream_draws_them_and_rest_on_the_table(
    variant_probe: dict[str, Any],
) -> None:
    """The default set lands at upstream's draws from the row's generator (seeded with the
    reset seed), keeps the can's orientation and rests on the table top (its lowest collision
    vertex at 0.87 m); the "more" set drops all six; the expert sees them all."""
    runs = variant_probe["runs"]
    entry = runs["distractors"]
    assert list(entry["distractors"]) == variant_probe["sets"]["default"]
    expected = _upstream_distractor_xy(VA_SEED, VA_CAN_XY, 4)
    can = Rotation.from_quat(variant_probe["orientation"], scalar_first=True)
    for (name, pose), xy in zip(entry["distractors"].items(), expected, strict=True):
        np.testing.assert_allclose(pose[:2], xy, atol=0.01, err_msg=name)
        assert entry["lowest"][name] == pytest.approx(TABLE_TOP, abs=0.003), name
        turn = Rotation.from_quat(pose[3:], scalar_first=True) * can.inv()
        assert turn.magnitude() < math.radians(10), name
    assert entry["privileged"]["distractor_poses"] == [1, 4, 7]
    more = runs["more_distractors"]
    assert list(more["distractors"]) == variant_probe["sets"]["more"]
    assert more["privileged"]["distractor_poses"] == [1, 6, 7]
    for name, pose in more["distractors"].items():
        assert pose[0] < 0.0 and pose[2] < TABLE_TOP + 0.2, name  # dropped, not parked
    for name in runs:
        if name not in ("distractors", "more_distractors"):
            assert runs[name]["distractors"] == {}, name


@pytest.mark.sim
def test_a_can_resting_on_a_distractor_is_not_lifted(variant_probe: dict[str, Any]) -> None:
    """evaluate(): a distractor is "an actor other than the robot", so the can standing on
    the sponge is well above its settled height but touching, hence no success."""
    on_sponge = variant_probe["runs"]["distractors"]["on_sponge"]
    assert on_sponge["gain"] > 0.02
    assert on_sponge["touching_distractor"] and on_sponge["touching"]
    assert on_sponge["success"] is False


@pytest.mark.sim
def test_camera_variants_tilt_the_head(variant_probe: dict[str, Any]) -> None:
    """AltGoogleCamera(2)InScene-v0: the head tilt starts at 0.9351361 (0.6651361) instead of
    0.7851361, so the camera looks 0.15 rad further down (0.12 rad further up)."""
    runs = variant_probe["runs"]
    base = runs["base"]
    assert base["head_tilt"] == pytest.approx(0.7851361, abs=1e-5)
    for name, tilt in (("alt_camera", 0.9351361), ("alt_camera_2", 0.6651361)):
        entry = runs[name]
        assert entry["head_tilt"] == pytest.approx(tilt, abs=1e-5)
        change = _pitch(entry["camera"]) - _pitch(base["camera"])
        assert change == pytest.approx(tilt - 0.7851361, abs=0.01), name
        assert entry["camera"][:3] != pytest.approx(base["camera"][:3], abs=1e-3), name


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

    assert bool(contacts.side_holds(y, push(79.0), y, zero)[0])
    assert not bool(contacts.side_holds(y, push(81.0), y, zero)[0])
    assert bool(contacts.side_holds(y, push(120.0), y, push(10.0))[0])  # the tip holds
    assert not bool(contacts.side_holds(y, zero, y, zero)[0])
    assert not bool(contacts.side_holds(y, push(0.0) * 1e-5, y, zero)[0])  # 1e-7 < 1e-6
    assert contacts.impulse_angle(y, zero)[0].item() == pytest.approx(math.pi / 2)


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
