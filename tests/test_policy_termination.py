"""A policy asking to end an episode (RT-1's terminate_episode): the runner executes that
step's action, ends the row there and scores it at that step, locally and through the server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, cast

import numpy as np
import numpy.typing as npt
import pytest

from refinevla_bench.harness.backends.maniskill import TaskEnvironment
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.runner import run_batch
from refinevla_bench.harness.serving.codec import WireError, pack, unpack
from refinevla_bench.harness.serving.protocol import ActReply, reply_from_wire
from refinevla_bench.harness.serving.server import PolicyServer
from refinevla_bench.policies.protocol import ObservationBatch, Policy, PolicyConventions
from tests.test_runner_batch import SUITE, TASK, ScriptedEnv
from tests.test_serving import connected, running


class StopsAtStep:
    """Episode id e asks to stop at its step `stop_at[e]` (1-based); moves +x every step."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions()

    def __init__(self, stop_at: dict[int, int] | None = None) -> None:
        self.stop_at = stop_at or {0: 3, 2: 1}
        self.step = 0
        self.flags: tuple[bool, ...] | None = None

    def reset(self, instructions: Sequence[str]) -> None:
        self.step = 0

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        self.step += 1
        ids = [key.episode_id for key in observation.episodes] or list(
            range(len(observation.images))
        )
        self.flags = tuple(self.stop_at.get(episode, -1) == self.step for episode in ids)
        actions = np.zeros((observation.batch_size, 7))
        actions[:, 0] = 0.01 * self.step
        return actions

    def last_terminations(self) -> Sequence[bool] | None:
        return self.flags


def _run(policy: Policy, env: ScriptedEnv) -> dict[int, EpisodeRecord]:
    records = run_batch(cast(TaskEnvironment, env), SUITE, policy, [0, 1, 2], seed=0)
    return {record.episode_id: record for record in records}


def test_a_row_asking_to_stop_ends_after_its_action_and_is_scored_at_that_step() -> None:
    env = ScriptedEnv(success_from={0: 3, 2: 2})
    records = _run(StopsAtStep(), env)
    first, second, third = (records[i] for i in (0, 1, 2))
    assert (first.steps, first.termination, first.success) == (3, "policy", True)
    assert (second.steps, second.termination) == (TASK.max_steps, "max_steps")
    # it stopped at step 1, before the step-2 success it would have reached
    assert (third.steps, third.termination, third.success) == (1, "policy", False)
    sent = np.stack(env.sent)
    assert sent[0, 2, 0] == pytest.approx(0.01)  # the stopping step's action was executed
    assert sent[2, 0, 0] == pytest.approx(0.03)
    assert not sent[3:, 0].any() and not sent[1:, 2].any()  # then the rows held still


def test_a_terminate_before_the_last_subtask_starts_the_next_one_instead() -> None:
    """SimplerEnv's evaluator: the subtask advances before that step runs, the episode goes
    on, and only a terminate in the last subtask ends it."""
    env = ScriptedEnv(subtasks=2)
    records = _run(StopsAtStep({0: 3, 2: 1}), env)
    assert env.advanced_at == [(2, 0), (0, 2)]  # before steps 1 and 3 were taken
    assert records[0].steps == TASK.max_steps and records[0].termination == "max_steps"
    assert records[2].steps == TASK.max_steps


def test_the_last_subtasks_terminate_ends_the_episode() -> None:
    env = ScriptedEnv(subtasks=2)

    class StopsTwice(StopsAtStep):
        def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
            actions = super().act(observation)
            self.flags = tuple(self.step in (2, 5) and row == 0 for row in range(3))
            return actions

    records = _run(StopsTwice(), env)
    assert env.advanced_at == [(0, 1)]
    assert (records[0].steps, records[0].termination) == (5, "policy")


def test_terminations_travel_on_the_wire_and_are_checked() -> None:
    reply = ActReply(np.zeros((2, 7)), None, (True, False))
    assert reply_from_wire(unpack(pack(reply.to_wire())), 2).terminations == (True, False)
    assert (
        reply_from_wire(unpack(pack(ActReply(np.zeros((2, 7))).to_wire())), 2).terminations is None
    )
    bad = {**reply.to_wire(), "terminations": [1, 0]}
    with pytest.raises(WireError, match="one boolean per row"):
        reply_from_wire(unpack(pack(bad)), 2)


def test_a_served_policys_requests_to_stop_end_episodes_like_a_local_one() -> None:
    with running(PolicyServer(StopsAtStep, "stops")) as server, connected(server.url) as served:
        remote = _run(served, ScriptedEnv(success_from={0: 3, 2: 2}))
    local = _run(StopsAtStep(), ScriptedEnv(success_from={0: 3, 2: 2}))
    summary = [(r.steps, r.termination, r.success) for r in (remote[i] for i in range(3))]
    assert summary == [(r.steps, r.termination, r.success) for r in (local[i] for i in range(3))]
