"""An episode plays the same whatever the environment ran before it (CPU simulator).

The harness reuses one environment per task variant. A reused PhysX scene carried state across
resets that no pose or velocity reset clears, so the same episode settled and moved
differently after another one: the coke can's distractors came to rest up to 1.9 m elsewhere,
move near and the WidowX eggplant drifted within the episode. Each probe plays an episode,
plays others in the same environment, plays it again and compares bit for bit; a second
environment of the same variant, where it is the first episode, must agree too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import run_module_probe

# a VA coke-can variant where the six distractors fall among each other and onto the can
DISTRACTORS_TASK = ("pick_coke_can_horizontal", "more_distractors")
DISTRACTOR_EPISODES = (4, 0, 4)  # grid positions: 4 again after another one
MOVE_NEAR_EPISODES = (0, 0)  # the same triplet twice: the scene is not rebuilt for new models
EGGPLANT_EPISODES = (0, 5, 0)


class _Actions:
    """Keeps the raw actions the policy sent, per episode id (an EpisodeObserver)."""

    def __init__(self) -> None:
        self.by_episode: dict[int, list[list[float]]] = {}

    def observed(self, observation: Any) -> None:
        pass

    def actions(self, episodes: Sequence[Any], actions: Any) -> None:
        for row, key in enumerate(episodes):
            self.by_episode.setdefault(key.episode_id, []).append(actions[row].tolist())

    def step_done(self, active: int) -> None:
        pass

    def episode_done(self, record: Any) -> None:
        pass


def _open(suite_name: str, assets: str, task_name: str, variant_name: str) -> Any:
    """The variant's environment as `run` builds it (privileged: the scripted expert plays)."""
    from refinevla_bench.harness.backends.maniskill import ManiSkillBackend
    from refinevla_bench.harness.suites import get_suite

    suite = get_suite(suite_name)
    task = next(task for task in suite.tasks if task.name == task_name)
    variant = next(variant for variant in task.variants if variant.name == variant_name)
    backend = ManiSkillBackend(suite, Path(assets), "cpu")
    return suite, task, variant, backend.open_task(task, privileged=True, variant=variant)


def _episode_id(task: Any, variant: Any, grid_position: int) -> int:
    """The suite's episode id of `variant` at the task grid's `grid_position`."""
    return int(grid_position * len(task.variants) + task.variants.index(variant))


def _play(
    suite_name: str, assets: str, task_name: str, variant_name: str, grid: Sequence[int]
) -> list[dict[str, Any]]:
    """Each episode's actions, in order played, then the first one's in a fresh environment."""
    from refinevla_bench.harness.runner import run_task
    from refinevla_bench.policies.registry import create_policy

    played: list[dict[str, Any]] = []
    for positions in (grid, grid[:1]):
        suite, task, variant, env = _open(suite_name, assets, task_name, variant_name)
        policy = create_policy("scripted", {}, robot=suite.robot)
        with env:
            for position in positions:
                recorder = _Actions()
                episode = _episode_id(task, variant, position)
                record = next(iter(run_task(env, suite, policy, [episode], 0, observer=recorder)))
                played.append({"actions": recorder.by_episode[episode], "success": record.success})
    return played


def _settled_state(env: Any) -> list[float]:
    """Every actor's pose and the robot's joints, as the episode's first step will see them."""
    inner = env._env.unwrapped
    poses = [actor.pose.raw_pose[0].tolist() for actor in inner.scene.actors.values()]
    joints: list[float] = inner.agent.robot.get_qpos()[0].tolist()
    return [value for pose in poses for value in pose] + joints


def _google_probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: the distractor scene after resets, then move near played."""
    task_name, variant_name = DISTRACTORS_TASK
    _suite, task, variant, env = _open("google_robot_va", assets, task_name, variant_name)
    settled = []
    with env:
        for position in DISTRACTOR_EPISODES:
            env.reset([_episode_id(task, variant, position)], 0)
            settled.append(_settled_state(env))
    return {
        "distractor_resets": settled,
        "move_near": _play("google_robot_vm", assets, "move_near", "default", MOVE_NEAR_EPISODES),
    }


def _widowx_probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: the eggplant episodes played."""
    return {"eggplant": _play("widowx", assets, "eggplant_in_basket", "default", EGGPLANT_EPISODES)}


@pytest.fixture(scope="module")
def google_report(google_robot_assets: Path) -> dict[str, Any]:
    return run_module_probe(
        "test_episode_independence", google_robot_assets, "independence", "_google_probe"
    )


def _assert_repeats(played: list[dict[str, Any]], repeats: Sequence[int]) -> None:
    """The episode played first (played[0]) and each index in `repeats` sent the same actions."""
    first = np.asarray(played[0]["actions"])
    assert len(first) > 10
    for index in repeats:
        again = np.asarray(played[index]["actions"])
        assert again.shape == first.shape, f"play {index}: {len(again)} steps, not {len(first)}"
        assert np.array_equal(again, first), f"play {index} diverged at {_first_gap(first, again)}"
        assert played[index]["success"] == played[0]["success"]


def _first_gap(first: np.ndarray, again: np.ndarray) -> int:
    return int(np.argmax((first != again).any(axis=1)))


def test_distractors_settle_the_same_after_other_episodes(google_report: dict[str, Any]) -> None:
    first, other, again = (np.asarray(state) for state in google_report["distractor_resets"])
    assert not np.array_equal(first, other)  # another grid position: another scene
    assert np.array_equal(first, again)


def test_move_near_replays_identically(google_report: dict[str, Any]) -> None:
    # plays: the episode, the same episode again, then the episode in a fresh environment
    _assert_repeats(google_report["move_near"], repeats=(1, 2))


def test_widowx_eggplant_replays_identically(widowx_assets: Path) -> None:
    report = run_module_probe(
        "test_episode_independence", widowx_assets, "independence", "_widowx_probe"
    )
    # plays: episode 0, episode 5, episode 0 again, then episode 0 in a fresh environment
    played = report["eggplant"]
    assert played[1]["actions"] != played[0]["actions"]
    _assert_repeats(played, repeats=(2, 3))
