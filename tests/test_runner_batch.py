"""Batch bookkeeping of the runner, with a scripted stand-in for a GPU environment of 3 rows.

The real batched path needs CUDA simulation; these tests pin the logic that decides which
row ends when, what padded rows do, and what observers see.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.backends.maniskill import StepOutcome, TaskEnvironment
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.runner import run_task
from refinevla_bench.harness.suites import get_suite
from refinevla_bench.policies.protocol import EpisodeKey, ObservationBatch, PolicyConventions

SUITE = get_suite("widowx")
TASK = SUITE.select_tasks(["carrot_on_plate"])[0]


@dataclass
class ScriptedEnv:
    """Succeeds row r from step `success_from[episode_id]` on; records what it was sent."""

    num_envs: int = 3
    success_from: dict[int, int] = field(default_factory=dict)
    task: Any = TASK
    ids: list[int] = field(default_factory=list)
    steps: int = 0
    sent: list[npt.NDArray[np.float32]] = field(default_factory=list)
    resets: list[list[int]] = field(default_factory=list)
    subtasks: int = 1  # a policy's terminate starts the next subtask until the last
    subtask: dict[int, int] = field(default_factory=dict)  # per episode id, from 0
    advanced_at: list[tuple[int, int]] = field(default_factory=list)  # (episode, step)

    def _observation(self) -> ObservationBatch:
        return ObservationBatch(
            images=np.zeros((self.num_envs, 4, 4, 3), dtype=np.uint8),
            instructions=("put carrot on plate",) * self.num_envs,
            episodes=tuple(EpisodeKey(TASK.name, i, 0) for i in self.ids),
        )

    def reset(self, episode_ids: Sequence[int], seed: int) -> ObservationBatch:
        self.ids, self.steps = list(episode_ids), 0
        self.subtask = dict.fromkeys(self.ids, 0)
        self.resets.append(list(episode_ids))
        return self._observation()

    def is_final_subtask(self) -> npt.NDArray[np.bool_]:
        return np.array([self.subtask[i] == self.subtasks - 1 for i in self.ids])

    def advance_to_next_subtask(self, rows: npt.NDArray[np.bool_]) -> None:
        for row, episode in enumerate(self.ids):
            if rows[row]:
                self.subtask[episode] += 1
                self.advanced_at.append((episode, self.steps))

    def step(self, actions: npt.NDArray[np.float32]) -> StepOutcome:
        self.sent.append(actions.copy())
        self.steps += 1
        success = np.array([self.steps >= self.success_from.get(i, 10**6) for i in self.ids])
        return StepOutcome(self._observation(), success, success.copy())


class RowPolicy:
    """Moves +x; emits NaN for episode 4 from step 3 on."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions()

    def __init__(self) -> None:
        self.calls = 0

    def reset(self, instructions: Sequence[str]) -> None:
        self.calls = 0

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        self.calls += 1
        actions = np.zeros((observation.batch_size, 7))
        actions[:, 0] = 0.01
        actions[:, 6] = 1.0
        for row, key in enumerate(observation.episodes):
            if key.episode_id == 4 and self.calls >= 3:
                actions[row] = np.nan
        return actions


class Seen:
    """An observer that keeps which episodes it was shown."""

    def __init__(self) -> None:
        self.frame_batches: list[tuple[int, ...]] = []
        self.done: list[EpisodeRecord] = []

    def observed(self, observation: ObservationBatch) -> None:
        assert len(observation.episodes) == len(observation.images)
        self.frame_batches.append(tuple(episode.episode_id for episode in observation.episodes))

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None:
        assert actions.shape == (len(episodes), 7)

    def step_done(self, active: int) -> None:
        assert active >= 0

    def episode_done(self, record: EpisodeRecord) -> None:
        self.done.append(record)


def run(
    env: ScriptedEnv, ids: list[int], mode: str = "truncation", seen: Seen | None = None
) -> list[EpisodeRecord]:
    task_env = cast(TaskEnvironment, env)
    return list(run_task(task_env, SUITE, RowPolicy(), ids, 0, mode, seen))  # type: ignore[arg-type]


def test_short_batch_is_padded_but_padding_is_never_reported() -> None:
    env, seen = ScriptedEnv(), Seen()
    records = run(env, [0, 1, 2, 3], seen=seen)
    assert [r.episode_id for r in records] == [0, 1, 2, 3]
    assert env.resets == [[0, 1, 2], [3, 3, 3]]
    assert [r.episode_id for r in seen.done] == [0, 1, 2, 3]
    assert set(seen.frame_batches) == {(0, 1, 2), (3,)}
    assert all(r.steps == TASK.max_steps and r.termination == "max_steps" for r in records)


def test_nan_in_one_row_fails_only_that_episode_and_it_then_holds_still() -> None:
    env = ScriptedEnv(success_from={5: 10})
    records = {r.episode_id: r for r in run(env, [4, 5, 6])}
    assert records[4].termination == "error" and "NaN" in (records[4].error or "")
    assert records[4].steps == 2 and records[4].success is False
    assert records[5].success and records[5].termination == "max_steps"
    assert records[6].termination == "max_steps" and records[6].error is None
    after_failure = np.stack(env.sent[3:])[:, 0]  # row of episode 4 after its NaN at step 3
    assert np.all(after_failure[:, :6] == 0) and np.all(after_failure[:, 6] == 1.0)


def test_early_stop_ends_rows_separately_and_truncation_scores_the_last_step() -> None:
    stopping = {
        r.episode_id: r
        for r in run(ScriptedEnv(success_from={0: 5, 1: 20}), [0, 1, 2], "early_stop")
    }
    assert (stopping[0].steps, stopping[0].termination, stopping[0].success) == (5, "success", True)
    assert (stopping[1].steps, stopping[1].termination) == (20, "success")
    assert (stopping[2].steps, stopping[2].success) == (TASK.max_steps, False)
    truncated = {r.episode_id: r for r in run(ScriptedEnv(success_from={0: 5}), [0, 1, 2])}
    assert truncated[0].steps == TASK.max_steps and truncated[0].success is True


class ReasoningPolicy(RowPolicy):
    """RowPolicy that also says, per row, what it thought at each step."""

    def __init__(self) -> None:
        super().__init__()
        self.thoughts: list[str] = []

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        actions = super().act(observation)
        self.thoughts = [f"step {self.calls} row {key.episode_id}" for key in observation.episodes]
        return actions

    def last_rationales(self) -> Sequence[str] | None:
        return self.thoughts


def test_reasoning_is_kept_per_step_until_an_episode_ends_and_survives_json() -> None:
    env = ScriptedEnv(success_from={5: 10})
    task_env = cast(TaskEnvironment, env)
    records = {r.episode_id: r for r in run_task(task_env, SUITE, ReasoningPolicy(), [4, 5, 6], 0)}
    kept = records[5].rationales
    assert kept is not None and len(kept) == TASK.max_steps
    assert kept[0] == "step 1 row 5" and kept[-1] == f"step {TASK.max_steps} row 5"
    # episode 4 fails on its NaN at step 3: the reasoning behind the failed step is kept too
    assert records[4].rationales is not None and len(records[4].rationales) == 3
    line = json.loads(json.dumps(records[5].to_json()))
    assert line["rationales"] == list(kept)
    assert "rationales" not in run(ScriptedEnv(), [0])[0].to_json()  # silent policies unchanged
