"""One evaluation run: plan the episodes, skip what the run directory already has, run the
rest task by task on reused environments, and append every finished episode as it ends."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.backends.maniskill import ManiSkillBackend
from refinevla_bench.harness.recording import EpisodeFiles
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.rundir import EpisodeId, RunDirectory, episode_id_of
from refinevla_bench.harness.runner import EpisodeObserver, SuccessMode, run_task
from refinevla_bench.harness.suites.spec import SuiteSpec, TaskSpec
from refinevla_bench.policies.protocol import (
    EpisodeKey,
    ObservationBatch,
    Policy,
    wants_privileged_state,
)


@dataclass(frozen=True)
class PlannedWork:
    task: TaskSpec
    seed: int
    episode_ids: tuple[int, ...]

    @property
    def steps(self) -> int:
        return self.task.max_steps * len(self.episode_ids)


def plan_episodes(
    tasks: Sequence[TaskSpec],
    seeds: Sequence[int],
    episodes_per_task: int | None,
    finished: set[EpisodeId],
) -> tuple[list[PlannedWork], frozenset[EpisodeId]]:
    """The work still to do (grid order, seeds inner) and every episode planned, done or not."""
    work: list[PlannedWork] = []
    planned: set[EpisodeId] = set()
    for task in tasks:
        grid = task.episode_ids[:episodes_per_task] if episodes_per_task else task.episode_ids
        for seed in seeds:
            planned.update((task.name, i, seed) for i in grid)
            todo = tuple(i for i in grid if (task.name, i, seed) not in finished)
            if todo:
                work.append(PlannedWork(task, seed, todo))
    return work, frozenset(planned)


class RunListener(EpisodeObserver):
    """What the caller wants to hear about (progress display); all methods optional."""

    def run_started(self, total_steps: int, resumed: int) -> None: ...

    def task_started(self, task: TaskSpec, episodes: int) -> None: ...

    def observed(self, observation: ObservationBatch) -> None: ...

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None: ...

    def step_done(self, active: int) -> None: ...

    def episode_done(self, record: EpisodeRecord) -> None: ...


class _Fanout:
    """Passes runner events to the episode files, the run directory and the listener."""

    def __init__(self, files: EpisodeFiles, run_dir: RunDirectory, listener: RunListener) -> None:
        self.files = files
        self.run_dir = run_dir
        self.listener = listener

    def observed(self, observation: ObservationBatch) -> None:
        self.files.observed(observation)
        self.listener.observed(observation)

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None:
        self.files.actions(episodes, actions)
        self.listener.actions(episodes, actions)

    def step_done(self, active: int) -> None:
        self.listener.step_done(active)

    def episode_done(self, record: EpisodeRecord) -> None:
        self.files.episode_done(record)  # video and actions land before the record says done
        self.run_dir.append(record)
        self.listener.episode_done(record)


@dataclass(frozen=True)
class RunOutcome:
    records: list[EpisodeRecord]  # the selected episodes the folder holds, resumed ones included
    planned: int  # how many this invocation selected (tasks x grid x seeds)
    wall_seconds: float


def evaluate(
    *,
    suite: SuiteSpec,
    tasks: Sequence[TaskSpec],
    policy: Policy,
    backend: ManiSkillBackend,
    run_dir: RunDirectory,
    manifest: dict[str, Any],
    seeds: Sequence[int],
    episodes_per_task: int | None,
    success_mode: SuccessMode,
    num_envs: int,
    video: bool,
    record_actions: bool,
    listener: RunListener,
) -> RunOutcome:
    started = time.perf_counter()
    previous = run_dir.open(manifest)
    finished = {episode_id_of(record) for record in previous}
    work, planned = plan_episodes(tasks, seeds, episodes_per_task, finished)
    listener.run_started(sum(item.steps for item in work), len(previous))
    files = EpisodeFiles(run_dir.path, suite.control_hz, video, record_actions)
    fanout = _Fanout(files, run_dir, listener)
    privileged = wants_privileged_state(policy)
    for task in tasks:
        task_work = [item for item in work if item.task == task]
        if not task_work:
            continue
        listener.task_started(task, sum(len(item.episode_ids) for item in task_work))
        for variant in task.variants:  # one environment per variant, reused across seeds
            variant_work = [
                (item.seed, ids)
                for item in task_work
                if (ids := [i for i in item.episode_ids if task.variant_of(i) == variant])
            ]
            if not variant_work:
                continue
            with backend.open_task(
                task, num_envs=num_envs, privileged=privileged, variant=variant
            ) as env:
                for seed, ids in variant_work:
                    for _ in run_task(env, suite, policy, ids, seed, success_mode, fanout):
                        pass
    records = run_dir.write_summary(
        planned,
        {"suite": suite.name, "policy": manifest["policy"], "success_mode": success_mode},
    )
    selected = [record for record in records if episode_id_of(record) in planned]
    return RunOutcome(selected, len(planned), time.perf_counter() - started)


def default_run_dir(suite: str, policy: str) -> Path:
    return Path("runs") / f"{suite}-{policy}-{time.strftime('%Y%m%d-%H%M%S')}"
