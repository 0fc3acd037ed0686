"""The open / close drawer twins (Open/Close*DrawerCustomInScene-v0) on the CPU simulator.

ManiSkill fixes its asset folder at its first import, so one fresh interpreter runs `_probe`
(each env configuration built once) and the tests check its JSON report.

Upstream facts checked (ManiSkill2_real2sim envs/custom_scenes/open_drawer_in_scene.py,
base_env.py; SimplerEnv scripts/drawer_visual_matching.sh, drawer_variant_agg.sh;
custom/mk_station*.urdf).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tests.support import run_module_probe

# drawer_visual_matching.sh: pose -> (x, y, yaw added to the centre quaternion (0, 0, 0, 1))
VM_POSES = {
    "a0": (0.644, -0.179, -0.03),
    "a1": (0.765, -0.182, -0.02),
    "a2": (0.889, -0.203, -0.06),
    "b0": (0.652, 0.009, 0.0),
    "b1": (0.752, 0.009, 0.0),
    "b2": (0.851, 0.035, 0.0),
    "c0": (0.665, 0.224, 0.0),
    "c1": (0.765, 0.222, -0.025),
    "c2": (0.865, 0.222, -0.025),
}
# drawer_variant_agg.sh: --robot-init-x 0.65 0.85 3 --robot-init-y -0.2 0.2 3, x the outer loop
VA_POSES = [(x, y) for x in (0.65, 0.75, 0.85) for y in (-0.2, 0.0, 0.2)]
JOINT_HEIGHT = {"top": 0.668, "middle": 0.423, "bottom": 0.178}  # mk_station*.urdf
HANDLE_BAR = (0.3425, 0.0, 0.02)  # the handle's bar in the drawer link (visual "handle0")
CABINET = (-0.295, 0.0, 0.017)
VARIANTS: dict[str, dict[str, Any]] = {
    # the variant-aggregation defaults: station mk_station, legacy lights (upstream light_mode
    # None), and two more builds covering the other cabinets, lights and rooms
    "va_base": {"drawer": "middle", "scene_name": "frl_apartment_stage_simple"},
    "va_office": {
        "drawer": "top",
        "scene_name": "modern_office_no_roof",
        "station": "mk_station2",
        "lighting": "brighter",
    },
    "va_bedroom": {
        "drawer": "bottom",
        "scene_name": "modern_bedroom_no_roof",
        "station": "mk_station3",
        "lighting": "darker",
    },
}


def _probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: every measurement the tests check, JSON-ready."""
    from refinevla_bench.harness.backends.maniskill import import_maniskill
    from refinevla_bench.harness.paths import maniskill_asset_dir

    import_maniskill(maniskill_asset_dir(Path(assets)))
    import gymnasium as gym
    import torch
    from mani_skill.utils.structs.pose import Pose

    from refinevla_bench.harness.backends.google_robot import agent, drawer, scene
    from refinevla_bench.harness.backends.google_robot.green_screen import load_overlay

    def make(env_id: str, **kwargs: Any) -> Any:
        return gym.make(
            env_id,
            obs_mode="rgb+segmentation",
            sim_backend="physx_cpu",
            render_backend="cpu",
            assets_root=Path(assets),
            **kwargs,
        )

    def pose(entity: Any) -> list[float]:
        return [*entity.pose.p[0].tolist(), *entity.pose.q[0].tolist()]

    def reset(env: Any, episode: int) -> Any:
        return env.reset(seed=0, options={"episode_id": torch.tensor([episode])})

    def lights(u: Any) -> dict[str, Any]:
        system = u.scene.sub_scenes[0].render_system
        return {
            "ambient": system.ambient_light.tolist(),
            "directional": [
                {
                    "colour": light.color.tolist(),
                    "direction": Rotation.from_quat(light.entity.pose.q, scalar_first=True)
                    .apply([1.0, 0.0, 0.0])
                    .tolist(),
                    "shadow": bool(light.shadow),
                }
                for light in system.lights
            ],
        }

    def collision_shapes(actor: Any) -> int:
        return sum(len(body.collision_shapes) for body in actor._bodies)

    def step_at(env: Any, qpos: float) -> dict[str, Any]:
        """Put the task drawer at `qpos` at rest, take one control step, read info."""
        u = env.unwrapped
        joints = u.cabinet.get_qpos().clone()
        joints[:, u.joint_index] = qpos
        u.cabinet.set_qpos(joints)
        u.cabinet.set_qvel(torch.zeros_like(joints))
        info = env.step(None)[-1]
        return {"success": bool(info["success"][0]), "qpos": float(info["qpos"][0])}

    def drawer_report(env: Any) -> dict[str, Any]:
        u = env.unwrapped
        state = {key: value[0].tolist() for key, value in u.privileged_state().items()}
        handle = u.agent.robot.pose * Pose.create_from_pq(
            p=torch.tensor([state["handle_pose"][:3]])
        )
        axis = Rotation.from_quat(pose(u.agent.robot)[3:], scalar_first=True).apply(
            state["drawer_axis"]
        )
        return {
            "state": state,
            "handle_world": handle.p[0].tolist(),
            "axis_world": axis.tolist(),
            "drawer_link": pose(u.drawer_link),
        }

    report: dict[str, Any] = {}

    # visual matching, open: the cabinet, the 9 photo poses, the green screen, the rule
    env = make(drawer.OPEN_ENV_ID, drawer="top")
    u = env.unwrapped
    report["cabinet"] = {
        "station": u.station,
        "links": [link.name for link in u.cabinet.links],
        "joints": [
            {
                "name": joint.name,
                "friction": float(joint.friction[0]),
                "damping": float(joint.damping[0]),
                "stiffness": float(joint.stiffness[0]),
                "limits": joint.limits[0].tolist(),
            }
            for joint in u.cabinet.active_joints
        ],
        "pose": pose(u.cabinet),
        "arena_collision_shapes": collision_shapes(u.arena),
        "actors": sorted(u.scene.actors),
        "lights": lights(u),
        "green_screen": u.green_screen,
    }
    report["vm_poses"] = []
    for episode, name in enumerate(VM_POSES):
        observation, info = reset(env, episode)
        photo = load_overlay(
            Path(assets) / scene.REAL2SIM_DIR / f"real_inpainting/open_drawer_{name}.png", 640, 512
        )
        report["vm_poses"].append(
            {
                "robot": pose(u.agent.robot),
                "overlay_is_photo": bool(np.array_equal(u.row_overlays[0].cpu().numpy(), photo)),
                "qpos": u.cabinet.get_qpos()[0].tolist(),
                "success": bool(info["success"][0]),
                "is_grasped": bool(info["is_grasped"][0]),
                "instruction": u.get_language_instruction(),
                "final": bool(u.is_final_subtask()[0]),
            }
        )
    camera = observation["sensor_data"][agent.CAMERA_UID]
    rgb, segmentation = camera["rgb"][0].numpy(), camera["segmentation"][0, ..., 0].numpy()
    cabinet_ids = [int(link.per_scene_id[0]) for link in u.cabinet.links]
    robot_ids = [int(link.per_scene_id[0]) for link in u.agent.robot.links]
    cabinet_mask = np.isin(segmentation, cabinet_ids)
    background = ~(cabinet_mask | np.isin(segmentation, robot_ids))
    difference = np.abs(rgb.astype(np.int64) - photo.astype(np.int64)).sum(-1)
    report["green_screen"] = {
        "background_pixels": int(background.sum()),
        "background_max_difference": int(difference[background].max()),
        "cabinet_pixels": int(cabinet_mask.sum()),
        "cabinet_changed": float((difference[cabinet_mask] > 0).mean()),
    }
    reset(env, 4)
    report["vm_drawer"] = drawer_report(env)
    report["open_rule"] = {str(q): step_at(env, q) for q in (0.149, 0.151, 0.3)}
    report["open_drawer_moved"] = drawer_report(env)
    env.close()

    # visual matching, close: the drawer starts 0.2 out
    env = make(drawer.CLOSE_ENV_ID, drawer="top")
    _, info = reset(env, 0)
    report["close_vm"] = {
        "qpos": env.unwrapped.cabinet.get_qpos()[0].tolist(),
        "reset_success": bool(info["success"][0]),
        "instruction": env.unwrapped.get_language_instruction(),
        "rule": {str(q): step_at(env, q) for q in (0.051, 0.049)},
    }
    env.close()

    # variant aggregation: the robot grid without photo, stations, lights, rooms
    report["va"] = {}
    for name, kwargs in VARIANTS.items():
        env = make(drawer.CLOSE_ENV_ID, robot_grid="va_grid", overlay=None, **kwargs)
        u = env.unwrapped
        entry: dict[str, Any] = {
            "station": u.station,
            "green_screen": u.green_screen,
            "lights": lights(u),
            "arena_collision_shapes": collision_shapes(u.arena),
            "robots": [],
            "qpos": [],
        }
        for episode in range(len(VA_POSES) if name == "va_base" else 1):
            _, info = reset(env, episode)
            entry["robots"].append(pose(u.agent.robot))
            entry["qpos"].append(u.cabinet.get_qpos()[0].tolist())
        entry["instruction"] = u.get_language_instruction()
        entry["rule"] = {str(q): step_at(env, q) for q in (0.051, 0.049)}
        report["va"][name] = entry
        env.close()

    failures = {}
    for bad in ({"drawer": "left"}, {"robot_grid": "random"}, {"lighting": "vertical"}):
        try:
            make(drawer.OPEN_ENV_ID, **bad)
        except Exception as error:  # a HarnessError naming the known choices
            failures[next(iter(bad))] = f"{type(error).__name__}: {error}"
    report["bad_kwargs"] = failures
    return report


@pytest.fixture(scope="module")
def probe(google_robot_assets: Path) -> dict[str, Any]:
    return run_module_probe("test_google_robot_drawer", google_robot_assets, "drawer")


def _yaw(pose: list[float]) -> float:
    return float(Rotation.from_quat(pose[3:], scalar_first=True).as_euler("xyz")[2])


@pytest.mark.sim
def test_the_cabinet_is_upstreams_station_with_damped_drawer_joints(probe: dict[str, Any]) -> None:
    """open_drawer_in_scene.py: mk_station_recolor (visual matching) fixed at (-0.295, 0,
    0.017); every active joint friction 0.05, drive stiffness 0, damping 1; drawers
    top/middle/bottom on `<d>_drawer_joint`, prismatic 0..0.5 m (the URDF)."""
    cabinet = probe["cabinet"]
    assert cabinet["station"] == "mk_station_recolor"
    assert cabinet["links"] == ["body", "top_drawer", "middle_drawer", "bottom_drawer"]
    assert [joint["name"] for joint in cabinet["joints"]] == [
        "top_drawer_joint",
        "middle_drawer_joint",
        "bottom_drawer_joint",
    ]
    for joint in cabinet["joints"]:
        assert joint["friction"] == pytest.approx(0.05)
        assert joint["damping"] == pytest.approx(1.0)
        assert joint["stiffness"] == 0.0
        assert joint["limits"] == pytest.approx([0.0, 0.5])
    assert cabinet["pose"] == pytest.approx([*CABINET, 1.0, 0.0, 0.0, 0.0], abs=1e-6)


@pytest.mark.sim
def test_the_drawer_scene_has_no_floor_and_a_visual_only_stage(probe: dict[str, Any]) -> None:
    """`_load_arena_helper(add_collision=False)` and no ground: dummy_drawer and the rooms are
    pictures only; the arena, the robot, the cabinet are the scene's only bodies."""
    assert probe["cabinet"]["arena_collision_shapes"] == 0
    assert "ground" not in probe["cabinet"]["actors"]
    for entry in probe["va"].values():
        assert entry["arena_collision_shapes"] == 0


@pytest.mark.sim
def test_visual_matching_has_upstreams_9_robot_poses_each_with_its_photo(
    probe: dict[str, Any],
) -> None:
    """drawer_visual_matching.sh: episode i is pose a0, a1, ..., c2 with robot xy, quaternion
    Rz(yaw) * (0, 0, 0, 1) (yaw pi + rotz) and overlay real_inpainting/open_drawer_<pose>.png;
    every drawer closed, instruction "open top drawer", not yet a success."""
    assert len(probe["vm_poses"]) == 9
    for entry, (x, y, yaw) in zip(probe["vm_poses"], VM_POSES.values(), strict=True):
        assert entry["robot"][:3] == pytest.approx([x, y, 0.06205 + 0.017], abs=1e-5)
        assert math.remainder(_yaw(entry["robot"]) - (math.pi + yaw), 2 * math.pi) == (
            pytest.approx(0.0, abs=1e-5)
        )
        assert entry["overlay_is_photo"]
        assert entry["qpos"] == [0.0, 0.0, 0.0]
        assert entry["instruction"] == ["open top drawer"]
        assert not entry["success"] and not entry["is_grasped"] and entry["final"]


@pytest.mark.sim
def test_the_green_screen_keeps_the_robot_and_every_cabinet_link(probe: dict[str, Any]) -> None:
    """base_env.py `get_obs`: links of other articulations stay rendered; the rest is the
    pose's photo resized to 640x512."""
    screen = probe["green_screen"]
    assert probe["cabinet"]["green_screen"]
    assert screen["background_pixels"] > 0.2 * 640 * 512
    assert screen["background_max_difference"] == 0
    assert screen["cabinet_pixels"] > 20000 and screen["cabinet_changed"] > 0.9


@pytest.mark.sim
def test_open_succeeds_from_015_and_the_state_follows_the_drawer(probe: dict[str, Any]) -> None:
    """evaluate(): success = qpos >= 0.15. The privileged handle is the handle's bar moving
    with the drawer along the cabinet's +x (the world axis the drawer opens along)."""
    rule = probe["open_rule"]
    assert rule["0.149"]["success"] is False and rule["0.149"]["qpos"] == pytest.approx(0.149)
    assert rule["0.151"]["success"] is True
    for report, qpos in ((probe["vm_drawer"], 0.0), (probe["open_drawer_moved"], 0.3)):
        assert report["state"]["drawer_qpos"] == pytest.approx(qpos, abs=1e-4)
        expected = [CABINET[0] + HANDLE_BAR[0] + qpos, 0.0, 0.017 + 0.668 + HANDLE_BAR[2]]
        assert report["handle_world"] == pytest.approx(expected, abs=1e-4)
        assert report["axis_world"] == pytest.approx([1.0, 0.0, 0.0], abs=1e-5)


@pytest.mark.sim
def test_close_starts_at_02_and_succeeds_from_005(probe: dict[str, Any]) -> None:
    """CloseDrawerInSceneEnv: the task drawer at 0.2, the others at 0; success qpos <= 0.05;
    instruction "close <drawer> drawer"."""
    close = probe["close_vm"]
    assert close["qpos"] == pytest.approx([0.2, 0.0, 0.0])
    assert close["reset_success"] is False
    assert close["instruction"] == ["close top drawer"]
    assert close["rule"]["0.051"]["success"] is False
    assert close["rule"]["0.049"]["success"] is True
    for entry in probe["va"].values():
        assert entry["rule"]["0.051"]["success"] is False
        assert entry["rule"]["0.049"]["success"] is True
    bottom = probe["va"]["va_bedroom"]
    assert bottom["qpos"] == [pytest.approx([0.0, 0.0, 0.2])]
    assert bottom["instruction"] == ["close bottom drawer"]
    assert probe["va"]["va_base"]["instruction"] == ["close middle drawer"]


@pytest.mark.sim
def test_variant_aggregation_grid_is_3_by_3_without_a_photo(probe: dict[str, Any]) -> None:
    """drawer_variant_agg.sh: x in linspace(0.65, 0.85, 3) (outer) x y in linspace(-0.2, 0.2,
    3), yaw pi; no overlay; station mk_station by default."""
    base = probe["va"]["va_base"]
    assert not base["green_screen"]
    assert base["station"] == "mk_station"
    assert len(base["robots"]) == 9
    for robot, (x, y) in zip(base["robots"], VA_POSES, strict=True):
        assert robot[:2] == pytest.approx([x, y], abs=1e-5)
        assert math.remainder(_yaw(robot) - math.pi, 2 * math.pi) == pytest.approx(0.0, abs=1e-5)
    for entry in base["qpos"]:
        assert entry == pytest.approx([0.0, 0.2, 0.0])


def _direction(vector: list[float]) -> list[float]:
    return [value / math.hypot(*vector) for value in vector]


@pytest.mark.sim
def test_lighting_is_upstreams_simple_or_legacy_setup(probe: dict[str, Any]) -> None:
    """_setup_lighting: "simple" (visual matching) = ambient 1 and one light along
    (-cos 75deg, 0, -sin 75deg); legacy = ambient 0.3, (-0.2, 0, -1) coloured 1 / 2 (brighter)
    / 0.5 (darker) with a shadow, and (-1, +-1, -0.05) coloured 0.5."""
    simple = probe["cabinet"]["lights"]
    assert simple["ambient"] == pytest.approx([1.0, 1.0, 1.0])
    assert len(simple["directional"]) == 1
    angle = math.radians(75)
    assert simple["directional"][0]["direction"] == pytest.approx(
        [-math.cos(angle), 0.0, -math.sin(angle)], abs=1e-4
    )
    assert simple["directional"][0]["colour"] == pytest.approx([1.0, 1.0, 1.0])
    for name, colour in (("va_base", 1.0), ("va_office", 2.0), ("va_bedroom", 0.5)):
        legacy = probe["va"][name]["lights"]
        assert legacy["ambient"] == pytest.approx([0.3, 0.3, 0.3])
        key, left, right = legacy["directional"]
        assert key["colour"] == pytest.approx([colour] * 3) and key["shadow"]
        assert key["direction"] == pytest.approx(_direction([-0.2, 0.0, -1.0]), abs=1e-4)
        for light, y in ((left, 1.0), (right, -1.0)):
            assert light["colour"] == pytest.approx([0.5] * 3) and not light["shadow"]
            assert light["direction"] == pytest.approx(_direction([-1.0, y, -0.05]), abs=1e-4)


@pytest.mark.sim
def test_other_cabinets_build_and_bad_choices_fail_clearly(probe: dict[str, Any]) -> None:
    """drawer_variant_agg.sh's new cabinets mk_station2 and mk_station3 load; a drawer,
    robot grid or lighting upstream does not have is a one-line error naming the choices."""
    assert probe["va"]["va_office"]["station"] == "mk_station2"
    assert probe["va"]["va_bedroom"]["station"] == "mk_station3"
    bad = probe["bad_kwargs"]
    assert bad["drawer"].startswith("HarnessError: unknown drawer 'left'")
    assert bad["robot_grid"].startswith("HarnessError: unknown robot grid 'random'")
    assert bad["lighting"].startswith("HarnessError: unknown drawer lighting 'vertical'")
