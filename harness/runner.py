"""The episode loop: policy and simulator meet here, and nowhere else.

SimplerEnv semantics: reset with an explicit episode id, hand the policy the instruction, step
to the task's step limit (no stop on success in the default `truncation` mode), and score the
success flag at the last step. `grasped` is latched over the whole episode. A policy that
raises or returns garbage ends its episode as an error and the run goes on; a simulator
failure is a bug and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.actions import PolicyOutputError, to_controller_actions
from refinevla_bench.harness.backends.maniskill import TaskEnvironment
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.records import EpisodeRecord, Termination
from refinevla_bench.harness.suites.spec import SuiteSpec
from refinevla_bench.policies.protocol import ObservationBatch, Policy

SuccessMode = Literal["truncation", "early_stop", "accumulate"]
SUCCESS_MODES: tuple[SuccessMode, ...] = ("truncation", "early_stop", "accumulate")

StepCallback = Callable[[int], None]


def check_success_mode(mode: str) -> SuccessMode:
    for known in SUCCESS_MODES:
        if mode == known:
            return known
    raise HarnessError(
        f"unknown success mode '{mode}'", f"use --success-mode {'|'.join(SUCCESS_MODES)}"
    )


def _controller_actions(
    policy: Policy, observation: ObservationBatch, suite: SuiteSpec
) -> npt.NDArray[np.float32]:
    try:
        raw = policy.act(observation)
    except Exception as error:  # any policy bug ends only its own episode
        raise PolicyOutputError(f"act() raised {type(error).__name__}: {error}") from error
    return to_controller_actions(raw, observation.batch_size, policy.conventions, suite.controller)


@dataclass
class _EpisodeState:
    steps: int = 0
    success: bool = False
    ever_succeeded: bool = False
    grasped: bool = False
    started: float = field(default_factory=time.perf_counter)


def run_episode(
    env: TaskEnvironment,
    suite: SuiteSpec,
    policy: Policy,
    episode_id: int,
    seed: int,
    success_mode: SuccessMode = "truncation",
    on_step: StepCallback | None = None,
) -> EpisodeRecord:
    """Play one episode to its end and score it."""
    state = _EpisodeState()
    observation = env.reset([episode_id], seed=seed)
    instruction = observation.instructions[0]
    termination: Termination = "max_steps"
    error: str | None = None
    try:
        try:
            policy.reset([instruction])
        except Exception as failure:
            raise PolicyOutputError(
                f"reset() raised {type(failure).__name__}: {failure}"
            ) from failure
        while state.steps < env.task.max_steps:
            outcome = env.step(_controller_actions(policy, observation, suite))
            state.steps += 1
            observation = outcome.observation
            state.success = bool(outcome.success[0])
            state.grasped = state.grasped or bool(outcome.grasped[0])
            state.ever_succeeded = state.ever_succeeded or state.success
            if on_step is not None:
                on_step(state.steps)
            if success_mode == "early_stop" and state.success:
                termination = "success"
                break
    except PolicyOutputError as failure:
        termination, error = "error", f"step {state.steps}: {failure}"
    scored = state.ever_succeeded if success_mode == "accumulate" else state.success
    return EpisodeRecord(
        suite=suite.name,
        task=env.task.name,
        episode_id=episode_id,
        seed=seed,
        instruction=instruction,
        success=scored and error is None,
        grasped=state.grasped,
        steps=state.steps,
        termination=termination,
        seconds=round(time.perf_counter() - state.started, 3),
        error=error,
    )


def run_task(
    env: TaskEnvironment,
    suite: SuiteSpec,
    policy: Policy,
    episode_ids: Sequence[int],
    seed: int,
    success_mode: SuccessMode = "truncation",
    on_step: StepCallback | None = None,
) -> Iterator[EpisodeRecord]:
    """Run episodes on one reused environment (upstream rebuilds it for every episode)."""
    for episode_id in episode_ids:
        yield run_episode(env, suite, policy, int(episode_id), seed, success_mode, on_step)
