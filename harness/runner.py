"""The episode loop: policy and simulator meet here, and nowhere else.

SimplerEnv semantics: reset with explicit episode ids, hand the policy the instructions, step
to the task's step limit (no stop on success in the default `truncation` mode), and score the
success flag at the last step. `grasped` is latched over the whole episode. One loop serves a
batch of parallel episodes (GPU simulation) and a batch of one (CPU). A policy that raises or
returns garbage ends the episodes it failed on as errors and the run goes on; a simulator
failure is a bug and propagates.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.actions import (
    PolicyOutputError,
    check_policy_robot,
    to_controller_actions,
)
from refinevla_bench.harness.backends.maniskill import TaskEnvironment
from refinevla_bench.harness.choices import one_of
from refinevla_bench.harness.observations import for_policy
from refinevla_bench.harness.records import EpisodeRecord, Termination
from refinevla_bench.harness.suites.spec import SuiteSpec
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    EpisodeKey,
    ObservationBatch,
    Policy,
    ReasoningPolicy,
    TerminatingPolicy,
    wants_privileged_state,
)

SuccessMode = Literal["truncation", "early_stop", "accumulate"]
SUCCESS_MODES: tuple[SuccessMode, ...] = ("truncation", "early_stop", "accumulate")


def check_success_mode(mode: str) -> SuccessMode:
    return one_of(mode, SUCCESS_MODES, "--success-mode")


class EpisodeObserver(Protocol):
    """Sees every observation (frames, and privileged state when the environment records it)
    and raw policy action: videos, action recordings, demonstrations, progress."""

    def observed(self, observation: ObservationBatch) -> None: ...

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None: ...

    def step_done(self, active: int) -> None: ...

    def episode_done(self, record: EpisodeRecord) -> None: ...


@dataclass
class _Row:
    """Progress of one episode of the batch."""

    key: EpisodeKey
    instruction: str
    started: float = field(default_factory=time.perf_counter)
    steps: int = 0
    success: bool = False
    ever_succeeded: bool = False
    grasped: bool = False
    finished: Termination | None = None
    error: str | None = None
    rationales: list[str] = field(default_factory=list)
    variant: str | None = None

    def record(self, suite: str, mode: SuccessMode) -> EpisodeRecord:
        scored = self.ever_succeeded if mode == "accumulate" else self.success
        return EpisodeRecord(
            suite=suite,
            task=self.key.task,
            episode_id=self.key.episode_id,
            seed=self.key.seed,
            instruction=self.instruction,
            success=scored and self.error is None,
            grasped=self.grasped,
            steps=self.steps,
            termination=self.finished or "max_steps",
            seconds=round(time.perf_counter() - self.started, 3),
            error=self.error,
            rationales=tuple(self.rationales) if self.rationales else None,
            variant=self.variant,
        )


def first_rows(observation: ObservationBatch, count: int) -> ObservationBatch:
    """The observation of the batch's first `count` rows (the real ones, without padding)."""
    if count == observation.batch_size:
        return observation
    return ObservationBatch(
        images=observation.images[:count],
        instructions=observation.instructions[:count],
        episodes=observation.episodes[:count],
        state={key: values[:count] for key, values in observation.state.items()},
        proprio={key: values[:count] for key, values in observation.proprio.items()},
    )


def _policy_actions(
    policy: Policy, observation: ObservationBatch, rows: list[_Row]
) -> npt.NDArray[np.float64] | None:
    """The policy's raw batch, or None after marking every active row as an error.

    Privileged state recorded for others (demonstration datasets) never reaches a policy that
    did not ask for it."""
    if observation.state and not wants_privileged_state(policy):
        observation = dataclasses.replace(observation, state={})
    try:
        raw = policy.act(for_policy(observation, policy.conventions))
        array = np.asarray(raw, dtype=np.float64)
    except Exception as error:  # any policy bug ends only the episodes it was asked about
        _fail(rows, f"act() raised {type(error).__name__}: {error}")
        return None
    if array.shape != (len(rows), ACTION_DIM):
        _fail(rows, f"actions have shape {array.shape}, expected ({len(rows)}, {ACTION_DIM})")
        return None
    return array


def _keep_rationales(policy: Policy, rows: list[_Row]) -> None:
    """Each running row's reasoning for this step, when the policy reasons aloud."""
    if not isinstance(policy, ReasoningPolicy):
        return
    texts = policy.last_rationales()
    if texts is None or len(texts) != len(rows):
        return
    for row, text in zip(rows, texts, strict=True):
        if row.finished is None:
            row.rationales.append(str(text))


def _asked_to_stop(policy: Policy, rows: list[_Row]) -> list[bool]:
    """Which rows the policy asked to end after this step (none, for most policies)."""
    flags = policy.last_terminations() if isinstance(policy, TerminatingPolicy) else None
    if flags is None or len(flags) != len(rows):
        return [False] * len(rows)
    return [bool(flag) for flag in flags]


def _advance_subtasks(env: TaskEnvironment, rows: list[_Row], stopping: list[bool]) -> list[bool]:
    """SimplerEnv's evaluator: a terminate before the last subtask starts the next subtask
    (before the step runs) instead of ending the episode. Returns who really stops."""
    if not any(stopping):
        return stopping
    final = env.is_final_subtask()
    advance = [
        stop and row.finished is None and not bool(is_final)
        for stop, row, is_final in zip(stopping, rows, final, strict=True)
    ]
    if any(advance):
        env.advance_to_next_subtask(np.array(advance))
    return [stop and not moved for stop, moved in zip(stopping, advance, strict=True)]


def _fail(rows: list[_Row], reason: str) -> None:
    for row in rows:
        if row.finished is None:
            row.finished, row.error = "error", f"step {row.steps}: {reason}"


def _controller_commands(
    raw: npt.NDArray[np.float64],
    rows: list[_Row],
    hold: npt.NDArray[np.float32],
    policy: Policy,
    suite: SuiteSpec,
) -> npt.NDArray[np.float32]:
    """One conversion for every running row; rows with NaN/inf fail and, like finished rows,
    receive `hold`."""
    for row, values in zip(rows, raw, strict=True):
        if row.finished is None and not np.isfinite(values).all():
            _fail([row], "actions contain NaN or inf")
    running = [index for index, row in enumerate(rows) if row.finished is None]
    commands = hold.copy()
    if running:
        try:
            commands[running] = to_controller_actions(
                raw[running], len(running), policy.conventions, suite.controller
            )
        except PolicyOutputError as error:  # a convention the controller cannot take
            _fail([rows[index] for index in running], str(error))
    return commands


def run_batch(
    env: TaskEnvironment,
    suite: SuiteSpec,
    policy: Policy,
    episode_ids: Sequence[int],
    seed: int,
    success_mode: SuccessMode = "truncation",
    observer: EpisodeObserver | None = None,
) -> list[EpisodeRecord]:
    """Play up to `env.num_envs` episodes in parallel to their end.

    A short batch is padded with copies of its first episode to fill the environment; padded
    rows run but are never shown to the observer nor returned.
    """
    check_policy_robot(policy.conventions, suite.robot, type(policy).__name__)
    real = len(episode_ids)
    padded = [int(i) for i in episode_ids] + [int(episode_ids[0])] * (env.num_envs - real)
    observation = env.reset(padded, seed=seed)
    variant = env.variant.name if len(env.task.variants) > 1 else None
    rows = [
        _Row(key, instruction, variant=variant)
        for key, instruction in zip(observation.episodes, observation.instructions, strict=True)
    ]
    try:
        policy.reset(list(observation.instructions))
    except Exception as error:
        _fail(rows, f"reset() raised {type(error).__name__}: {error}")
    hold = np.zeros((len(rows), ACTION_DIM), dtype=np.float32)  # what finished rows receive
    for _ in range(env.task.max_steps):
        if all(row.finished is not None for row in rows):
            break
        if observer is not None:
            observer.observed(first_rows(observation, real))
        raw = _policy_actions(policy, observation, rows)
        if raw is None:
            break
        _keep_rationales(policy, rows)
        stopping = _advance_subtasks(env, rows, _asked_to_stop(policy, rows))
        if observer is not None:
            observer.actions(observation.episodes[:real], raw[:real])
        commands = _controller_commands(raw, rows, hold, policy, suite)
        outcome = env.step(commands)
        observation = outcome.observation
        for index, row in enumerate(rows):
            if row.finished is not None:
                continue
            row.steps += 1
            row.success = bool(outcome.success[index])
            row.grasped = row.grasped or bool(outcome.grasped[index])
            row.ever_succeeded = row.ever_succeeded or row.success
            if success_mode == "early_stop" and row.success:
                row.finished = "success"
            elif stopping[index]:
                row.finished = "policy"
            hold[index, 6] = commands[index, 6]  # finished rows keep their gripper as it was
        if observer is not None:
            observer.step_done(sum(row.finished is None for row in rows[:real]))
    records = [row.record(suite.name, success_mode) for row in rows[:real]]
    if observer is not None:
        for record in records:
            observer.episode_done(record)
    return records


def run_task(
    env: TaskEnvironment,
    suite: SuiteSpec,
    policy: Policy,
    episode_ids: Sequence[int],
    seed: int,
    success_mode: SuccessMode = "truncation",
    observer: EpisodeObserver | None = None,
) -> Iterator[EpisodeRecord]:
    """Run episodes in batches on one environment, made once (upstream makes one per episode;
    the backend still rebuilds the physics scene at each reset)."""
    size = env.num_envs
    for start in range(0, len(episode_ids), size):
        chunk = episode_ids[start : start + size]
        yield from run_batch(env, suite, policy, chunk, seed, success_mode, observer)
