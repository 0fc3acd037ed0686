"""The put-apple-into-closed-top-drawer twin (PlaceIntoClosedTopDrawerCustomInScene-v0) on the
CPU simulator.

ManiSkill fixes its asset folder at its first import, so one fresh interpreter runs `_probe`
(each env configuration built once) and the tests check its JSON report.

Upstream facts checked (ManiSkill2_real2sim envs/custom_scenes/place_in_closed_drawer_in_scene.py,
base_env.py, sapien_env.py; SimplerEnv scripts/put_in_drawer_visual_matching.sh,
put_in_drawer_variant_agg.sh, simpler_env/evaluation/maniskill2_evaluator.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tests.support import run_module_probe

# put_in_drawer_visual_matching.sh: A0, B0, C0 -> (x, y, yaw), photo open_drawer_<pose>.png
VM_POSES = {"a0": (0.644, -0.179, -0.03), "b0": (0.652, 0.009, 0.0), "c0": (0.665, 0.224, 0.0)}
# --obj-init-x-range -0.08 -0.02 3 (outer loop) --obj-init-y-range -0.02 0.08 3
APPLE_XY = [(x, y) for x in (-0.08, -0.05, -0.02) for y in (-0.02, 0.03, 0.08)]
# put_in_drawer_variant_agg.sh: --robot-init-x 0.65 0.65 1 --robot-init-y -0.2 0.2 3
VA_ROBOT_Y = (-0.2, 0.0, 0.2)
TABLE_TOP = 0.017 + 0.855 + 0.01  # the cabinet's table top (mk_station*.urdf "tabletop")
APPLE_HALF = 0.04  # info_pick_custom_baked_tex_v1.json bbox of apple / baked_apple_v2
# mk_station*.urdf: the drawer's "drawer_interior_bottom" box at z -0.06, 0.02 thick
BOTTOM_IN_LINK = (0.0, 0.0, -0.05)
DRAWER_BOTTOM_TOP = 0.017 + 0.668 + BOTTOM_IN_LINK[2]  # the top drawer's, in the world
OPEN = "open top drawer"
PLACE = "place apple into top drawer"


def _probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: every measurement the tests check, JSON-ready."""
    from refinevla_bench.harness.backends.maniskill import import_maniskill
    from refinevla_bench.harness.paths import maniskill_asset_dir

    import_maniskill(maniskill_asset_dir(Path(assets)))
    import gymnasium as gym
    import torch
    from mani_skill.utils.structs.pose import Pose

    from refinevla_bench.harness.backends.google_robot import apple_in_drawer, scene
    from refinevla_bench.harness.backends.google_robot.green_screen import load_overlay

    def make(**kwargs: Any) -> Any:
        return gym.make(
            apple_in_drawer.ENV_ID,
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

    def facts(env: Any, info: dict[str, Any]) -> dict[str, Any]:
        u = env.unwrapped
        return {
            "elapsed": int(u.elapsed_steps[0]),
            "instruction": u.get_language_instruction(),
            "final": bool(u.is_final_subtask()[0]),
            **{
                key: info[key][0].item()
                for key in ("success", "is_grasped", "qpos", "has_contact", "subtask")
            },
        }

    def step(env: Any) -> dict[str, Any]:
        return facts(env, env.step(None)[-1])

    def open_drawer(env: Any, qpos: float) -> None:
        u = env.unwrapped
        u.cabinet.set_qpos(torch.tensor([[qpos, 0.0, 0.0]]))
        u.cabinet.set_qvel(torch.zeros(1, 3))

    def apple_into_drawer(env: Any) -> None:
        """Teleport the apple at rest 5 mm above the middle of the open drawer's bottom."""
        u = env.unwrapped
        bottom = u.drawer_link.pose * Pose.create_from_pq(p=torch.tensor([BOTTOM_IN_LINK]))
        position = bottom.p.clone()
        position[:, 2] += APPLE_HALF + 0.005
        u.apple.set_pose(Pose.create_from_pq(position, torch.tensor([[1.0, 0.0, 0.0, 0.0]])))
        u.apple.set_linear_velocity(torch.zeros(1, 3))
        u.apple.set_angular_velocity(torch.zeros(1, 3))

    report: dict[str, Any] = {}
    env = make()
    u = env.unwrapped
    report["setup"] = {
        "model": u.model_id,
        "contact_offset": float(u.apple._bodies[0].collision_shapes[0].contact_offset),
        "mass": float(u.apple._bodies[0].mass),
        "green_screen": u.green_screen,
    }
    report["grid"] = []
    for episode in range(27):
        observation, info = reset(env, episode)
        name = list(VM_POSES)[episode // 9]
        photo = load_overlay(
            Path(assets) / scene.REAL2SIM_DIR / f"real_inpainting/open_drawer_{name}.png", 640, 512
        )
        report["grid"].append(
            {
                "robot": pose(u.agent.robot),
                "apple": pose(u.apple),
                "overlay_is_photo": bool(np.array_equal(u.row_overlays[0].cpu().numpy(), photo)),
                **facts(env, info),
            }
        )
    camera = observation["sensor_data"]["overhead_camera"]
    segmentation = camera["segmentation"][0, ..., 0].numpy()
    report["apple_pixels"] = int((segmentation == int(u.apple.per_scene_id[0])).sum())

    # subtask 0: the apple in the open drawer is not yet a success
    reset(env, 4)
    open_drawer(env, 0.3)
    apple_into_drawer(env)
    report["in_drawer_subtask_0"] = step(env)
    shapes = u.drawer_link._objs[0].collision_shapes  # front, back, interior bottom, ...
    front, bottom = (
        apple_in_drawer.shape_impulse(u.scene, u.apple, u.drawer_link, shape)
        for shape in (shapes[0], shapes[2])
    )
    report["impulse_on"] = {
        "front": float(front.norm()),
        "bottom": float(bottom.norm()),
    }
    state = {key: value[0].tolist() for key, value in u.privileged_state().items()}
    report["state"] = state
    report["world"] = {
        "apple": pose(u.apple),
        "bottom": (
            u.agent.robot.pose
            * Pose.create_from_pq(p=torch.tensor([state["drawer_bottom_pose"][:3]]))
        )
        .p[0]
        .tolist(),
        "source": (
            u.agent.robot.pose * Pose.create_from_pq(p=torch.tensor([state["source_pose"][:3]]))
        )
        .p[0]
        .tolist(),
    }
    u.advance_to_next_subtask(torch.tensor([True]))
    report["advanced"] = {
        "instruction": u.get_language_instruction(),
        "final": bool(u.is_final_subtask()[0]),
        "subtask": int(u.privileged_state()["subtask"][0]),
    }
    report["in_drawer_subtask_1"] = step(env)

    # subtask 1 with the drawer open but the apple still on the cabinet
    reset(env, 4)
    u.advance_to_next_subtask(torch.tensor([True]))
    open_drawer(env, 0.3)
    report["subtask_1_on_table"] = step(env)

    # the forced advance: 100 steps done, the 101st action runs under subtask 1
    reset(env, 0)
    unmasked = torch.tensor([False])
    u.advance_to_next_subtask(unmasked)  # a mask without rows changes nothing
    u._elapsed_steps[:] = 99
    report["forced"] = [step(env), step(env)]
    env.close()

    # variant aggregation: the plain apple, no photo, one robot x
    env = make(robot_grid="va_grid", overlay=None)
    u = env.unwrapped
    report["va"] = {"model": u.model_id, "green_screen": u.green_screen, "grid": []}
    for episode in (0, 13, 26):
        _, info = reset(env, episode)
        report["va"]["grid"].append(
            {"robot": pose(u.agent.robot), "apple": pose(u.apple), **facts(env, info)}
        )
    u.advance_to_next_subtask(torch.tensor([True]))
    report["va"]["place"] = u.get_language_instruction()
    env.close()
    return report


@pytest.fixture(scope="module")
def probe(google_robot_assets: Path) -> dict[str, Any]:
    return run_module_probe("test_google_robot_apple_drawer", google_robot_assets, "apple drawer")


def _yaw(pose: list[float]) -> float:
    return float(Rotation.from_quat(pose[3:], scalar_first=True).as_euler("xyz")[2])


@pytest.mark.sim
def test_visual_matching_grid_is_3_robot_poses_by_9_apple_positions(probe: dict[str, Any]) -> None:
    """Episode 9 * pose + 3 * i + j: pose a0 / b0 / c0 with its photo, the apple dropped at
    x_i, y_j (world) onto the cabinet's table top, where it rests; the drawer closed;
    subtask 0, "open top drawer"."""
    grid = probe["grid"]
    assert len(grid) == 27
    for episode, entry in enumerate(grid):
        x, y, yaw = list(VM_POSES.values())[episode // 9]
        assert entry["robot"][:2] == pytest.approx([x, y], abs=1e-5)
        assert math.remainder(_yaw(entry["robot"]) - (math.pi + yaw), 2 * math.pi) == (
            pytest.approx(0.0, abs=1e-5)
        )
        assert entry["overlay_is_photo"]
        assert entry["apple"][:2] == pytest.approx(APPLE_XY[episode % 9], abs=0.01)
        assert entry["apple"][2] == pytest.approx(TABLE_TOP + APPLE_HALF, abs=0.01)
        assert entry["qpos"] == 0.0 and entry["subtask"] == 0 and entry["elapsed"] == 0
        assert entry["instruction"] == [OPEN] and not entry["final"]
        assert entry["success"] is False and entry["is_grasped"] is False


@pytest.mark.sim
def test_the_apple_is_upstreams_model_and_the_green_screen_keeps_it(probe: dict[str, Any]) -> None:
    """Visual matching: baked_apple_v2 (density 800), contact offset 0.005, composited photo
    with the apple kept; variant aggregation: the plain `apple`, no photo."""
    setup = probe["setup"]
    assert setup["model"] == "baked_apple_v2" and setup["green_screen"]
    assert setup["contact_offset"] == pytest.approx(0.005)
    assert 0.05 < setup["mass"] < 0.5  # 800 kg/m^3 of an apple about 8 cm across
    assert probe["apple_pixels"] > 200
    assert probe["va"]["model"] == "apple" and not probe["va"]["green_screen"]


@pytest.mark.sim
def test_variant_aggregation_robot_y_grid_at_x_065(probe: dict[str, Any]) -> None:
    """put_in_drawer_variant_agg.sh: robot x 0.65, y in linspace(-0.2, 0.2, 3) (outer) x the
    same 3 x 3 apple grid; the instruction names the plain model "apple" too."""
    for episode, entry in zip((0, 13, 26), probe["va"]["grid"], strict=True):
        assert entry["robot"][:2] == pytest.approx([0.65, VA_ROBOT_Y[episode // 9]], abs=1e-5)
        assert entry["apple"][:2] == pytest.approx(APPLE_XY[episode % 9], abs=0.01)
        assert entry["instruction"] == [OPEN]
    assert probe["va"]["place"] == [PLACE]


@pytest.mark.sim
def test_the_apple_in_the_open_drawer_succeeds_only_in_the_second_subtask(
    probe: dict[str, Any],
) -> None:
    """evaluate(): has_contact counts evaluations with the apple pushing on the drawer's
    interior bottom; success = subtask 1 and qpos >= 0.05 and has_contact >= 1. In subtask 0
    the apple in the drawer is no success; after advancing it is; in subtask 1 with the apple
    still on the cabinet it is not."""
    first = probe["in_drawer_subtask_0"]
    assert first["subtask"] == 0 and first["has_contact"] >= 1 and first["success"] is False
    assert first["instruction"] == [OPEN]
    assert probe["advanced"] == {"instruction": [PLACE], "final": True, "subtask": 1}
    second = probe["in_drawer_subtask_1"]
    assert second["success"] is True and second["qpos"] == pytest.approx(0.3, abs=1e-3)
    on_table = probe["subtask_1_on_table"]
    assert on_table["subtask"] == 1 and on_table["qpos"] >= 0.05
    assert on_table["has_contact"] == 0 and on_table["success"] is False


@pytest.mark.sim
def test_the_contact_is_with_the_drawer_bottom_shape_only(probe: dict[str, Any]) -> None:
    """Upstream filters the drawer link's contacts to its third collision shape (the interior
    bottom): resting there, the apple pushes on it and not on the drawer front."""
    assert probe["impulse_on"]["bottom"] > 1e-6
    assert probe["impulse_on"]["front"] == 0.0


@pytest.mark.sim
def test_the_subtask_is_forced_after_100_steps(probe: dict[str, Any]) -> None:
    """step(): `if elapsed_steps >= 100: advance` before the action, so after the 100th step
    the instruction is still "open top drawer" and the 101st step runs in subtask 1."""
    hundredth, next_one = probe["forced"]
    assert hundredth["elapsed"] == 100 and hundredth["subtask"] == 0
    assert hundredth["instruction"] == [OPEN] and not hundredth["final"]
    assert next_one["elapsed"] == 101 and next_one["subtask"] == 1
    assert next_one["instruction"] == [PLACE] and next_one["final"]


@pytest.mark.sim
def test_privileged_state_locates_the_apple_and_the_drawer_bottom(probe: dict[str, Any]) -> None:
    """The apple's pose and the bottom's centre (upper face) in the robot-base frame map back
    to their world places; subtask and grasp are reported."""
    state, world = probe["state"], probe["world"]
    assert world["source"] == pytest.approx(world["apple"][:3], abs=1e-5)
    assert world["bottom"] == pytest.approx([-0.295 + 0.3, 0.0, DRAWER_BOTTOM_TOP], abs=1e-4)
    assert world["apple"][2] == pytest.approx(DRAWER_BOTTOM_TOP + APPLE_HALF, abs=0.01)
    assert state["subtask"] == 0 and state["source_grasped"] is False
    assert state["drawer_qpos"] == pytest.approx(0.3, abs=1e-3)
    assert set(state) >= {"tcp_pose", "handle_pose", "drawer_axis", "drawer_bottom_pose"}
