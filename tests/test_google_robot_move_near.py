"""The move-near twin (MoveNearGoogleInScene-v0 / MoveNearGoogleBakedTexInScene-v0) on the CPU
simulator.

ManiSkill fixes its asset folder at its first import, and other tests import it in-process with
another asset root, so this module never imports the twin itself: one fresh interpreter runs
`_probe` (one env per configuration: visual matching and the 8 variant-aggregation variants,
plus the module's grid and the success rule on synthetic tensors) and the tests check its JSON
report against upstream's facts written out here.

Upstream facts (ManiSkill2_real2sim mani_skill2_real2sim/envs/custom_scenes/move_near_in_scene.py
and base_env.py; SimplerEnv scripts/move_near_visual_matching.sh, move_near_variant_agg.sh and
tools/calc_metrics.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tests.support import run_module_probe

TABLE_TOP = 0.87
PLAIN_TRIPLETS = (
    ("blue_plastic_bottle", "opened_pepsi_can", "orange"),
    ("opened_7up_can", "apple", "sponge"),
    ("opened_coke_can", "opened_redbull_can", "apple"),
    ("sponge", "blue_plastic_bottle", "opened_7up_can"),
    ("orange", "opened_pepsi_can", "opened_redbull_can"),
)
BAKED_TRIPLETS = (
    ("blue_plastic_bottle", "baked_opened_pepsi_can", "orange"),
    ("baked_opened_7up_can", "baked_apple", "baked_sponge"),
    ("baked_opened_coke_can", "baked_opened_redbull_can", "baked_apple"),
    ("baked_sponge", "blue_plastic_bottle", "baked_opened_7up_can"),
    ("orange", "baked_opened_pepsi_can", "baked_opened_redbull_can"),
)
LAYOUTS = (
    ((-0.33, 0.04), (-0.33, 0.34), (-0.13, 0.19)),
    ((-0.13, 0.04), (-0.33, 0.19), (-0.13, 0.34)),
)
# transforms3d euler2quat angles (static xyz) per model, "baked_" stripped
EULER = {
    "blue_plastic_bottle": (math.pi / 2, 0.0, math.pi / 2),
    "opened_pepsi_can": (math.pi / 2, 0.0, 0.0),
    "orange": (0.0, 0.0, math.pi / 2),
    "opened_7up_can": (math.pi / 2, 0.0, 0.0),
    "apple": (0.0, 0.0, 0.0),
    "sponge": (0.0, 0.0, math.pi / 2),
    "opened_coke_can": (math.pi / 2, 0.0, 0.0),
    "opened_redbull_can": (math.pi / 2, 0.0, 0.0),
}
HUMAN_NAMES = {
    "blue_plastic_bottle": "blue plastic bottle",
    "opened_pepsi_can": "pepsi can",
    "orange": "orange",
    "opened_7up_can": "7up can",
    "apple": "apple",
    "sponge": "sponge",
    "opened_coke_can": "coke can",
    "opened_redbull_can": "redbull can",
}
DENSITIES = {"apple": 200, "orange": 200, "sponge": 150}  # others: the database's 50
VM_EPISODES = (20, 29, 0)  # triplets 1, 2, 0: all 8 baked models; the rule runs on episode 0
VA_EPISODE = 7  # triplet 0, pair (0, 2), layout 1
# the variants move_near_variant_agg.sh runs and calc_metrics.py averages (overlay None)
VA_VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "no_distractor": {"distractors": False},
    "alt_background": {"scene_name": "google_pick_coke_can_1_v4_alt_background"},
    "alt_background_2": {"scene_name": "google_pick_coke_can_1_v4_alt_background_2"},
    "darker": {"lighting": "darker"},
    "brighter": {"lighting": "brighter"},
    "table_cabinet1": {"scene_name": "Baked_sc1_staging_objaverse_cabinet1_h870"},
    "table_cabinet2": {"scene_name": "Baked_sc1_staging_objaverse_cabinet2_h870"},
}
VA_COMMON = {"baked_textures": False, "overlay": None}
FLAGS = (
    "success",
    "all_obj_keep_height",
    "moved_correct_obj",
    "moved_wrong_obj",
    "near_tgt_obj",
    "is_closest_to_tgt",
)


def _probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: every measurement the tests check, JSON-ready."""
    from refinevla_bench.harness.backends.maniskill import import_maniskill
    from refinevla_bench.harness.paths import maniskill_asset_dir

    import_maniskill(maniskill_asset_dir(Path(assets)))
    import gymnasium as gym

    from refinevla_bench.harness.backends.google_robot import move_near

    def make(**kwargs: Any) -> Any:
        return gym.make(
            move_near.ENV_ID,
            obs_mode="rgb+segmentation",
            sim_backend="physx_cpu",
            render_backend="cpu",
            assets_root=Path(assets),
            **kwargs,
        )

    report: dict[str, Any] = {
        "grid": {
            name: [move_near.episode_layout(i, models, distractors) for i in range(60)]
            for name, models, distractors in (
                ("plain", move_near.PLAIN, True),
                ("baked", move_near.BAKED, True),
                ("plain_no_distractor", move_near.PLAIN, False),
            )
        },
        "names": {
            model: move_near.instruction_name(model)
            for models in (move_near.PLAIN, move_near.BAKED)
            for triplet in models.triplets
            for model in triplet
        },
        "bad_ids": [_error(lambda i=i: move_near.grid_entry(i)) for i in (-1, 60)],
        "synthetic": _synthetic_rule(move_near.evaluate_move_near),
        "bad_lighting": _error(lambda: make(lighting="dim")),
        "vm": {},
        "va": {},
    }
    env = make()
    for episode_id in VM_EPISODES:
        observation, report["vm"][str(episode_id)] = _reset(env, episode_id)
    report["green_screen"] = _green_screen(env.unwrapped, observation, assets)
    report["privileged"] = {k: v[0].tolist() for k, v in env.unwrapped.privileged_state().items()}
    report["contact_offset"] = env.unwrapped.sim_config.scene_config.contact_offset
    report["rule"] = _rule_cases(env.unwrapped)
    env.close()
    for name, kwargs in VA_VARIANTS.items():
        env = make(**VA_COMMON, **kwargs)
        observation, entry = _reset(env, VA_EPISODE)
        u = env.unwrapped
        entry.update(
            task_actors=sorted(key for key in u.scene.actors if key not in ("ground", "arena")),
            scene_name=u.scene_name,
            green_screen=bool(u.green_screen),
            brightness=float(observation["sensor_data"]["overhead_camera"]["rgb"].float().mean()),
        )
        if name == "base":
            entry["masses"] = _masses(u, assets)
        report["va"][name] = entry
        env.close()
    return report


def _error(call: Any) -> str:
    try:
        call()
    except Exception as error:  # the HarnessError's class and message
        return f"{type(error).__name__}: {error}"
    return "no error"


def _reset(env: Any, episode_id: int) -> tuple[Any, dict[str, Any]]:
    observation, info = env.reset(seed=0, options={"episode_id": torch.tensor([episode_id])})
    u = env.unwrapped
    robot = u.agent.robot.pose
    return observation, {
        "models": list(u.row_models[0]),
        "slots": len(u.slots),
        "instruction": u.get_language_instruction()[0],
        "poses": u.object_poses()[0].tolist(),
        "settled": u.settled[0].tolist(),
        "robot": [*robot.p[0].tolist(), *robot.q[0].tolist()],
        "info": {key: bool(info[key][0]) for key in (*FLAGS, "is_grasped")},
        "episode_stats": sorted(info["episode_stats"]),
    }


def _green_screen(u: Any, observation: Any, assets: str) -> dict[str, Any]:
    """Pixels of robot links and of every object stay rendered; the rest is the photo."""
    from refinevla_bench.harness.backends.google_robot import move_near, scene
    from refinevla_bench.harness.backends.google_robot.green_screen import load_overlay

    camera = observation["sensor_data"]["overhead_camera"]
    rgb = camera["rgb"][0].numpy()
    segmentation = camera["segmentation"][0, ..., 0].numpy()
    overlay = load_overlay(Path(assets) / scene.REAL2SIM_DIR / move_near.OVERLAY, 640, 512)
    difference = np.abs(rgb.astype(np.int64) - overlay.astype(np.int64)).sum(-1)
    kept = [int(link.per_scene_id[0]) for link in u.agent.robot.links]
    objects = []
    for actor in u.slots:
        mask = segmentation == int(actor.per_scene_id[0])
        kept.append(int(actor.per_scene_id[0]))
        objects.append({"pixels": int(mask.sum()), "changed": float((difference[mask] > 0).mean())})
    background = ~np.isin(segmentation, kept)
    return {
        "shape": list(rgb.shape),
        "background_pixels": int(background.sum()),
        "background_max_difference": int(difference[background].max()),
        "objects": objects,
    }


def _masses(u: Any, assets: str) -> dict[str, float]:
    """Each object's mass over the volume of its convex collision parts: its density."""
    import trimesh

    densities = {}
    for model, actor in zip(u.row_models[0], u.slots, strict=True):
        path = Path(assets) / "real2sim/data/custom/models" / model / "collision.obj"
        mesh = trimesh.load_mesh(path)
        volume = sum(part.convex_hull.volume for part in mesh.split(only_watertight=False))
        densities[model] = float(actor.mass[0]) / float(volume)
    return densities


def _rule_cases(u: Any) -> dict[str, dict[str, bool]]:
    """Episode 0 (source: the bottle, target: the pepsi can, other: the orange): teleport the
    objects (settled orientations; settled heights unless said) and evaluate."""
    from mani_skill.utils.structs.pose import Pose

    settled = [actor.pose.raw_pose.clone() for actor in u.slots]

    def place(slot: int, anchor: int, dy: float = 0.0, dz: float = 0.0) -> None:
        raw = settled[slot].clone()
        raw[:, :2] = settled[anchor][:, :2]
        raw[:, 1] += dy
        raw[:, 2] += dz
        u.slots[slot].set_pose(Pose.create(raw))

    def flags() -> dict[str, bool]:
        result = u.evaluate()
        return {key: bool(result[key][0]) for key in (*FLAGS, "is_grasped")}

    cases = {"rest": flags()}
    place(0, 1, dy=-0.09)  # the bottle 9 cm in front of the pepsi can
    cases["near"] = flags()
    place(2, 2, dy=-0.3)  # the orange pushed 30 cm away
    cases["other_moved"] = flags()
    place(2, 2)
    place(0, 1, dy=-0.3)  # the bottle 30 cm from the can
    cases["too_far"] = flags()
    place(0, 1, dy=-0.09, dz=-0.2)  # near the can, but fallen off the table
    cases["fell"] = flags()
    return cases


def _synthetic_rule(evaluate: Any) -> dict[str, dict[str, list[bool]]]:
    """The rule on hand-made rows: objects' origins = centres of mass, table at z 0.9,
    bounding-box half diagonals summing to 0.05 (so "near" means closer than 0.15)."""

    def run(
        settled: list[list[tuple[float, float]]],
        now: list[list[tuple[float, float, float]]],
        source: list[int],
        target: list[int],
    ) -> dict[str, list[bool]]:
        before = torch.tensor([[(x, y, 0.9) for x, y in row] for row in settled])
        after = torch.tensor(now)
        result = evaluate(
            after,
            after,
            before,
            torch.tensor(source),
            torch.tensor(target),
            torch.full((len(source),), 0.05),
        )
        flags = {key: result[key].tolist() for key in FLAGS}
        flags["stats"] = [sorted(result["episode_stats"]) == sorted(FLAGS[1:])]
        return flags

    three = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.3)]
    moved = [(0.2, 0.0, 0.9), (0.3, 0.0, 0.9), (0.0, 0.3, 0.9)]  # slot 0 moved 0.2 to slot 1
    return {
        # row 0: slot 0 is the source (moved next to its target, slot 1): success; row 1: the
        # source is slot 2 (not moved) and its target slot 0: slot 0 moved wrongly
        "roles": run([three, three], [moved, moved], [0, 2], [1, 0]),
        # the other object at 9.2 cm is closer than the target at 10 cm, within the 1 cm slack
        "slack_ok": run(
            [[(0.0, 0.0), (0.3, 0.0), (0.2, 0.092)]],
            [[(0.2, 0.0, 0.9), (0.3, 0.0, 0.9), (0.2, 0.092, 0.9)]],
            [0],
            [1],
        ),
        "slack_exceeded": run(
            [[(0.0, 0.0), (0.3, 0.0), (0.2, 0.085)]],
            [[(0.2, 0.0, 0.9), (0.3, 0.0, 0.9), (0.2, 0.085, 0.9)]],
            [0],
            [1],
        ),
        "near_edge": run(
            [three, three],
            [
                [(0.151, 0.0, 0.9), (0.3, 0.0, 0.9), (0.0, 0.3, 0.9)],  # 14.9 cm away
                [(0.149, 0.0, 0.9), (0.3, 0.0, 0.9), (0.0, 0.3, 0.9)],  # 15.1 cm away
            ],
            [0, 0],
            [1, 1],
        ),
        "other_sinks": run(
            [three, three],
            [
                [(0.2, 0.0, 0.9), (0.3, 0.0, 0.9), (0.0, 0.3, 0.885)],  # 1.5 cm lower
                [(0.2, 0.0, 0.9), (0.3, 0.0, 0.9), (0.0, 0.3, 0.875)],  # 2.5 cm lower
            ],
            [0, 0],
            [1, 1],
        ),
        "source_sinks": run(
            [three, three],
            [
                [(0.2, 0.0, 0.76), (0.3, 0.0, 0.9), (0.0, 0.3, 0.9)],  # 14 cm lower
                [(0.2, 0.0, 0.74), (0.3, 0.0, 0.9), (0.0, 0.3, 0.9)],  # 16 cm lower
            ],
            [0, 0],
            [1, 1],
        ),
        # the other object moved 5 cm (over 3 cm) but less than the source's 20 cm
        "other_moved_less": run(
            [three], [[(0.2, 0.0, 0.9), (0.3, 0.0, 0.9), (0.0, 0.35, 0.9)]], [0], [1]
        ),
        "no_distractor": run([three[:2]], [[(0.2, 0.0, 0.9), (0.3, 0.0, 0.9)]], [0], [1]),
        "untouched": run([three], [[(x, y, 0.9) for x, y in three]], [0], [1]),
    }


@pytest.fixture(scope="module")
def probe(google_robot_assets: Path) -> dict[str, Any]:
    return run_module_probe("test_google_robot_move_near", google_robot_assets, "move near")


def _expected_grid(
    triplets: tuple[tuple[str, str, str], ...], distractors: bool
) -> list[dict[str, Any]]:
    """Upstream's 60 episodes in id order: triplets outermost, then the 2 layouts, then the 6
    ordered pairs (i, j), i != j, as its double loop lists them."""
    pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
    grid = []
    for triplet in triplets:
        for layout in LAYOUTS:
            for source, target in pairs:
                kept = [0, 1, 2] if distractors else [source, target]
                grid.append(
                    {
                        "model_ids": [triplet[k] for k in kept],
                        "source_obj_id": kept.index(source),
                        "target_obj_id": kept.index(target),
                        "obj_init_xys": [list(layout[k]) for k in kept],
                        "euler": [EULER[triplet[k].removeprefix("baked_")] for k in kept],
                    }
                )
    return grid


def _same_rotation(quaternion: list[float], euler: tuple[float, float, float]) -> bool:
    expected = Rotation.from_euler("xyz", euler).as_quat(scalar_first=True)
    return bool(
        min(
            np.abs(np.subtract(quaternion, expected)).max(),
            np.abs(np.add(quaternion, expected)).max(),
        )
        < 1e-9
    )


@pytest.mark.sim
@pytest.mark.parametrize(
    ("grid", "triplets", "distractors"),
    [
        ("plain", PLAIN_TRIPLETS, True),
        ("baked", BAKED_TRIPLETS, True),
        ("plain_no_distractor", PLAIN_TRIPLETS, False),
    ],
)
def test_the_60_episodes_map_to_upstreams_triplets_pairs_and_layouts(
    probe: dict[str, Any], grid: str, triplets: tuple[tuple[str, str, str], ...], distractors: bool
) -> None:
    """MoveNearGoogleInSceneEnv.reset: triplet = id // 12, pair = id % 6, layout =
    (id % 12) // 6; no_distractor keeps [source, target] (source 0, target 1); each object's
    drop orientation is its euler2quat entry."""
    got = probe["grid"][grid]
    for episode_id, (entry, expected) in enumerate(
        zip(got, _expected_grid(triplets, distractors), strict=True)
    ):
        euler = expected.pop("euler")
        quaternions = entry.pop("obj_init_rot_quats")
        entry["obj_init_xys"] = [list(xy) for xy in entry["obj_init_xys"]]
        assert entry == expected, episode_id
        assert all(_same_rotation(q, e) for q, e in zip(quaternions, euler, strict=True))
    assert probe["bad_ids"] == [
        "HarnessError: move near has episodes 0..59, not -1",
        "HarnessError: move near has episodes 0..59, not 60",
    ]


@pytest.mark.sim
def test_instruction_names_drop_upstreams_bookkeeping_words(probe: dict[str, Any]) -> None:
    """_get_instruction_obj_name drops "opened", "baked", ... : both model sets read alike."""
    expected = {**HUMAN_NAMES, **{f"baked_{k}": v for k, v in HUMAN_NAMES.items()}}
    assert probe["names"] == {model: expected[model] for model in probe["names"]}
    assert len(probe["names"]) == 14


@pytest.mark.sim
def test_instructions_name_the_episodes_source_and_target(probe: dict[str, Any]) -> None:
    """ "move {source} near {target}": episode 20 = triplet 1, pair (1, 0); 29 = triplet 2,
    pair (2, 1); 0 = triplet 0, pair (0, 1); 7 = triplet 0, pair (0, 2)."""
    instructions = {key: entry["instruction"] for key, entry in probe["vm"].items()}
    assert instructions == {
        "20": "move apple near 7up can",
        "29": "move apple near redbull can",
        "0": "move blue plastic bottle near pepsi can",
    }
    for entry in probe["va"].values():
        assert entry["instruction"] == "move blue plastic bottle near orange"


@pytest.mark.sim
def test_objects_rest_on_the_table_where_they_were_dropped(
    probe: dict[str, Any], google_robot_assets: Path
) -> None:
    """Dropped from 0.5 m over the 0.87 m table top: each object rests on it (its origin as
    high above the table as its collision mesh reaches below it, as settled), at its layout xy
    (the orange, being round, rolls a few cm when released) and still upright as dropped."""
    models = google_robot_assets / "real2sim/data/custom/models"
    entries = [*probe["vm"].items(), ("va", probe["va"]["base"])]
    for key, entry in entries:
        episode_id = VA_EPISODE if key == "va" else int(key)
        layout = LAYOUTS[(episode_id % 12) // 6]
        for model, pose, xy in zip(entry["models"], entry["poses"], layout, strict=True):
            vertices = [
                [float(value) for value in line.split()[1:4]]
                for line in (models / model / "collision.obj").read_text().splitlines()
                if line.startswith("v ")
            ]
            turned = Rotation.from_quat(pose[3:], scalar_first=True).apply(vertices)
            assert pose[2] == pytest.approx(TABLE_TOP - turned[:, 2].min(), abs=0.002), model
            reach = 0.08 if model == "orange" else 0.015
            assert math.dist(pose[:2], xy) < reach, (model, pose[:2], xy)
            start = Rotation.from_euler("xyz", EULER[model.removeprefix("baked_")])
            if model != "orange":
                tilt = (Rotation.from_quat(pose[3:], scalar_first=True) * start.inv()).magnitude()
                assert tilt < math.radians(10), model
        assert entry["settled"] == [pose[:3] for pose in entry["poses"]]


@pytest.mark.sim
def test_the_robot_stands_where_upstream_puts_it(probe: dict[str, Any]) -> None:
    """move_near_*.sh: robot init (0.35, 0.21), rpy (0, 0, -0.09) times the centre (0, 0, 0, 1):
    yaw pi - 0.09."""
    for entry in [*probe["vm"].values(), *probe["va"].values()]:
        robot = entry["robot"]
        assert robot[:2] == pytest.approx([0.35, 0.21], abs=1e-6)
        yaw = Rotation.from_quat(robot[3:], scalar_first=True).as_euler("xyz")[2]
        assert math.remainder(yaw - (math.pi - 0.09), 2 * math.pi) == pytest.approx(0, abs=1e-5)


@pytest.mark.sim
def test_the_green_screen_keeps_the_robot_and_every_object(probe: dict[str, Any]) -> None:
    """base_env.py get_obs: every actor but ground and arena stays rendered, so all 3 objects
    do; every other pixel is google_move_near_real_eval_1.png at the camera's 640x512."""
    screen = probe["green_screen"]
    assert screen["shape"] == [512, 640, 3]
    assert screen["background_pixels"] > 0.3 * 512 * 640
    assert screen["background_max_difference"] == 0
    assert len(screen["objects"]) == 3
    for entry in screen["objects"]:
        assert entry["pixels"] > 500 and entry["changed"] > 0.9


@pytest.mark.sim
def test_success_is_false_at_reset(probe: dict[str, Any]) -> None:
    for entry in [*probe["vm"].values(), *probe["va"].values()]:
        assert entry["info"]["success"] is False and entry["info"]["is_grasped"] is False
        assert entry["info"]["all_obj_keep_height"] is True
        assert entry["info"]["moved_correct_obj"] is False
        assert entry["episode_stats"] == sorted(FLAGS[1:])


@pytest.mark.sim
def test_success_needs_the_source_moved_next_to_the_target_and_nothing_else_moved(
    probe: dict[str, Any],
) -> None:
    """Teleporting the bottle 9 cm in front of the pepsi can succeeds; pushing the orange
    30 cm away too is a wrong move; 30 cm from the can is not near; 20 cm below the table is
    a fall."""
    rule = probe["rule"]
    assert rule["rest"]["success"] is False
    assert rule["near"] == {
        "success": True,
        "all_obj_keep_height": True,
        "moved_correct_obj": True,
        "moved_wrong_obj": False,
        "near_tgt_obj": True,
        "is_closest_to_tgt": True,
        "is_grasped": False,
    }
    other = rule["other_moved"]
    assert other["success"] is False
    assert other["moved_correct_obj"] is False and other["moved_wrong_obj"] is True
    assert rule["too_far"]["success"] is False and rule["too_far"]["near_tgt_obj"] is False
    assert rule["fell"]["success"] is False and rule["fell"]["all_obj_keep_height"] is False


@pytest.mark.sim
def test_the_rule_per_row_matches_upstreams_evaluate(probe: dict[str, Any]) -> None:
    """evaluate(): moved_correct = source moved > 3 cm and more than every other object;
    moved_wrong = some other moved > 3 cm and more than the source; near = centre distance <
    half diagonals + 0.10; closest = distance to the target < every other's + 0.01; other
    objects may sink 2 cm, source and target 15 cm."""
    rule = probe["synthetic"]
    assert rule["roles"]["success"] == [True, False]
    assert rule["roles"]["moved_wrong_obj"] == [False, True]
    assert rule["slack_ok"]["is_closest_to_tgt"] == [True]
    assert rule["slack_ok"]["success"] == [True]
    assert rule["slack_exceeded"]["is_closest_to_tgt"] == [False]
    assert rule["slack_exceeded"]["success"] == [False]
    assert rule["near_edge"]["near_tgt_obj"] == [True, False]
    assert rule["other_sinks"]["all_obj_keep_height"] == [True, False]
    assert rule["source_sinks"]["all_obj_keep_height"] == [True, False]
    assert rule["other_moved_less"]["moved_wrong_obj"] == [False]
    assert rule["other_moved_less"]["success"] == [True]
    assert rule["no_distractor"]["success"] == [True]
    assert rule["untouched"]["success"] == [False]
    assert all(case["stats"] == [True] for case in rule.values())


@pytest.mark.sim
def test_privileged_state_gives_source_and_target_in_the_base_frame(
    probe: dict[str, Any],
) -> None:
    """The scripted expert's keys: poses relative to the robot base (yaw pi - 0.09 at
    (0.35, 0.21, 0.079)), bounding-box half extents of the model database."""
    state, episode = probe["privileged"], probe["vm"]["0"]
    assert set(state) == {
        "tcp_pose",
        "gripper_drive",
        "source_pose",
        "target_pose",
        "source_grasped",
        "source_half_size",
        "target_half_size",
    }
    assert state["source_grasped"] is False
    assert state["source_half_size"] == pytest.approx([0.03005, 0.1015, 0.03025])
    assert state["target_half_size"] == pytest.approx([0.033, 0.0615, 0.033])
    base = Rotation.from_quat(episode["robot"][3:], scalar_first=True)
    for key, slot in (("source_pose", 0), ("target_pose", 1)):
        world = np.subtract(episode["poses"][slot][:3], episode["robot"][:3])
        assert state[key][:3] == pytest.approx(base.inv().apply(world), abs=1e-5)


@pytest.mark.sim
def test_variant_aggregation_variants_build_from_kwargs(probe: dict[str, Any]) -> None:
    """move_near_variant_agg.sh's 8 averaged variants (no overlay, MoveNearGoogleInScene-v0's
    plain models): stages by scene_name, the no-distractor scene holds only the source and
    the target, darker < default < brighter lighting, upstream's densities."""
    variants = probe["va"]
    for name, entry in variants.items():
        assert entry["green_screen"] is False
        scene = VA_VARIANTS[name].get("scene_name", "google_pick_coke_can_1_v4")
        assert entry["scene_name"] == scene
        expected = ["blue_plastic_bottle", "orange"]
        if name != "no_distractor":
            expected.insert(1, "opened_pepsi_can")
        assert entry["models"] == expected and entry["slots"] == len(expected)
        assert sorted(actor.split("-")[0] for actor in entry["task_actors"]) == sorted(expected)
    brightness = {name: variants[name]["brightness"] for name in ("darker", "base", "brighter")}
    assert brightness["darker"] < brightness["base"] < brightness["brighter"]
    for model, density in variants["base"]["masses"].items():
        assert density == pytest.approx(DENSITIES.get(model, 50), rel=0.06), model
    assert probe["bad_lighting"].startswith("HarnessError: unknown move-near lighting")


@pytest.mark.sim
def test_the_scene_uses_upstreams_small_contact_offset(probe: dict[str, Any]) -> None:
    """MoveNearInSceneEnv._get_default_scene_config: contact_offset 0.005."""
    assert probe["contact_offset"] == pytest.approx(0.005)
