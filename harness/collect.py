"""Demonstrations from the simulator: run a policy through the same runner as evaluation and
keep every step's frame, action and ground-truth state, for the teacher and the trainer.

The episode grid of each task gives the scenes; `--episodes N` takes them round-robin over the
tasks (so a small N still covers every task), then over grid positions, then over seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.backends.maniskill import ManiSkillBackend
from refinevla_bench.harness.choices import one_of
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.runner import EpisodeObserver, run_task
from refinevla_bench.harness.suites.spec import SuiteSpec, TaskSpec
from refinevla_bench.policies.protocol import EpisodeKey, ObservationBatch, Policy

KeepMode = Literal["success", "all"]
KEEP_MODES: tuple[KeepMode, ...] = ("success", "all")

DemoId = tuple[str, int, int]  # (task, grid episode id, seed)


def check_keep_mode(mode: str) -> KeepMode:
    return one_of(mode, KEEP_MODES, "--keep")


def plan_demonstrations(
    tasks: Sequence[TaskSpec], seeds: Sequence[int], count: int
) -> list[tuple[TaskSpec, int, int]]:
    """The first `count` (task, episode id, seed) triples: tasks inner, grid, then seeds."""
    if not tasks:
        raise HarnessError("no task selected", "drop --tasks or name tasks of the suite")
    grid = min(len(task.episode_ids) for task in tasks)
    available = grid * len(tasks) * len(seeds)
    if count > available:
        needed = -(-count // (grid * len(tasks)))
        raise HarnessError(
            f"--episodes {count} exceeds the {available} distinct (task, episode, seed) triples "
            f"of {len(tasks)} task(s) x {grid} grid episodes x {len(seeds)} seed(s)",
            f"use {needed} seeds (--seeds {','.join(map(str, range(needed)))}) or fewer --episodes",
        )
    planned = []
    for number in range(count):
        task = tasks[number % len(tasks)]
        position = (number // len(tasks)) % grid
        seed = seeds[number // (len(tasks) * grid)]
        planned.append((task, task.episode_ids[position], seed))
    return planned


@dataclass
class Demonstration:
    """One finished episode as recorded: frame t is what the policy saw before action t."""

    key: EpisodeKey
    instruction: str
    frames: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    actions: list[npt.NDArray[np.float64]] = field(default_factory=list)
    state: dict[str, list[npt.NDArray[np.float64]]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.actions)


DemonstrationSink = Callable[[Demonstration, EpisodeRecord], None]


class DemonstrationRecorder:
    """A runner observer that hands each kept episode to `sink` as soon as it ends.

    Episodes that ended in a policy error are never kept; failures only with keep="all".
    """

    def __init__(self, sink: DemonstrationSink, keep: KeepMode) -> None:
        self.sink = sink
        self.keep = keep
        self.kept = 0
        self.dropped: list[EpisodeRecord] = []
        self._open: dict[EpisodeKey, Demonstration] = {}

    def observed(self, observation: ObservationBatch) -> None:
        for row, key in enumerate(observation.episodes):
            demo = self._open.get(key)
            if demo is None:
                demo = self._open[key] = Demonstration(key, observation.instructions[row])
            demo.frames.append(observation.images[row].copy())
            for name, values in observation.state.items():
                demo.state.setdefault(name, []).append(np.array(values[row], dtype=np.float64))

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None:
        for key, action in zip(episodes, actions, strict=True):
            self._open[key].actions.append(action.copy())

    def step_done(self, active: int) -> None:
        del active

    def episode_done(self, record: EpisodeRecord) -> None:
        key = EpisodeKey(record.task, record.episode_id, record.seed)
        demo = self._open.pop(key, None)
        keep = record.error is None and (record.success or self.keep == "all")
        if demo is None or not keep or demo.length == 0:
            self.dropped.append(record)
            return
        # a frame observed before an act() that failed has no action: keep the pairs only
        del demo.frames[demo.length :]
        for series in demo.state.values():
            del series[demo.length :]
        self.sink(demo, record)
        self.kept += 1


def collect_demonstrations(
    *,
    suite: SuiteSpec,
    planned: Sequence[tuple[TaskSpec, int, int]],
    policy: Policy,
    backend: ManiSkillBackend,
    recorder: DemonstrationRecorder,
    num_envs: int = 1,
    listener: EpisodeObserver | None = None,
) -> None:
    """Run the planned episodes task by task, one environment per task variant, recording privileged
    state whatever the policy (the runner hides it from policies that did not ask for it)."""
    observer = _Both(recorder, listener) if listener is not None else recorder
    for task in suite.tasks:
        mine = [(episode_id, seed) for spec, episode_id, seed in planned if spec == task]
        if not mine:
            continue
        for variant in task.variants:
            own = [(i, seed) for i, seed in mine if task.variant_of(i) == variant]
            if not own:
                continue
            with backend.open_task(
                task, num_envs=num_envs, privileged=True, variant=variant
            ) as env:
                for seed in sorted({seed for _, seed in own}):
                    ids = [episode_id for episode_id, other in own if other == seed]
                    for _ in run_task(env, suite, policy, ids, seed, "truncation", observer):
                        pass


class _Both:
    """Runner events to the recorder first, then to a progress listener."""

    def __init__(self, recorder: DemonstrationRecorder, listener: EpisodeObserver) -> None:
        self.recorder = recorder
        self.listener = listener

    def observed(self, observation: ObservationBatch) -> None:
        self.recorder.observed(observation)
        self.listener.observed(observation)

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None:
        self.recorder.actions(episodes, actions)
        self.listener.actions(episodes, actions)

    def step_done(self, active: int) -> None:
        self.recorder.step_done(active)
        self.listener.step_done(active)

    def episode_done(self, record: EpisodeRecord) -> None:
        self.recorder.episode_done(record)
        self.listener.episode_done(record)
