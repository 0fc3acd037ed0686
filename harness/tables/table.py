"""A results table as data: run rows measured from episodes, then the published rows.

Every output format renders this one structure, so md, LaTeX, CSV and JSON can never disagree
about a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from refinevla_bench.harness.tables.layout import Cell, Layout
from refinevla_bench.harness.tables.reference import ReferenceRow
from refinevla_bench.harness.tables.runs import RunResult
from refinevla_bench.harness.tables.stats import AveragedRate


@dataclass(frozen=True)
class Shortfall:
    """A task run on part of its grid (`--episodes N`, or a run not finished yet): its
    rate is a smoke number, not one to set beside a paper's."""

    suite: str
    task: str
    episodes: int
    grid: int  # episodes per seed x the seeds the run used


@dataclass(frozen=True)
class RunRow:
    """One run: a proportion per cell (None: the run has no episode of that task)."""

    run: RunResult
    cells: dict[str, AveragedRate | None]
    means: dict[str, float | None]  # in %, None unless every averaged cell has episodes
    shortfalls: tuple[Shortfall, ...]  # tasks behind a shown cell with part of their grid
    partial: frozenset[str]  # keys of the cells and means that read such a task

    @property
    def complete(self) -> bool:
        return all(mean is not None for mean in self.means.values())


@dataclass(frozen=True)
class Table:
    layout: Layout
    runs: tuple[RunRow, ...]
    reference: tuple[ReferenceRow, ...]  # empty unless the paper's rows were asked for


def build_table(
    layout: Layout, runs: Sequence[RunResult], reference: Sequence[ReferenceRow]
) -> Table:
    return Table(layout, tuple(run_row(layout, run) for run in runs), tuple(reference))


def run_row(layout: Layout, run: RunResult) -> RunRow:
    """Errors are already failed trials in the counts; a cell needs all of its tasks, a mean
    all of its cells. A cell averages each task's variants, then its tasks (SimplerEnv's
    aggregation)."""
    cells: dict[str, AveragedRate | None] = {}
    for cell in layout.cells:
        counts = [run.tasks.get((cell.suite, task)) for task in cell.tasks]
        present = [part for part in counts if part is not None]
        cells[cell.key] = (
            AveragedRate(tuple(part.proportions(cell.measure) for part in present))
            if present and len(present) == len(counts)
            else None
        )
    means: dict[str, float | None] = {}
    for mean in layout.means:
        parts = [cells[key] for key in mean.of]
        rates = [100 * part.rate for part in parts if part is not None]
        means[mean.key] = sum(rates) / len(rates) if len(rates) == len(parts) else None
    seeds = _seeds_by_suite(run)
    shortfalls = {
        cell.key: _shortfalls(cell, run, len(seeds[cell.suite]))
        for cell in layout.cells
        if cells[cell.key]
    }
    partial = {key for key, short in shortfalls.items() if short}
    partial |= {
        mean.key
        for mean in layout.means
        if means[mean.key] is not None and partial.intersection(mean.of)
    }
    unique = dict.fromkeys(short for shorts in shortfalls.values() for short in shorts)
    return RunRow(run, cells, means, tuple(unique), frozenset(partial))


def _seeds_by_suite(run: RunResult) -> dict[str, set[int]]:
    """The seeds each suite's run used on any task: every task of that suite is held to them,
    so a seed left out of one task counts as missing."""
    seeds: dict[str, set[int]] = {}
    for (suite, _), counts in run.tasks.items():
        seeds.setdefault(suite, set()).update(counts.seeds)
    return seeds


def _shortfalls(cell: Cell, run: RunResult, seeds: int) -> list[Shortfall]:
    out = []
    for task, per_seed in zip(cell.tasks, cell.grid, strict=True):
        counts = run.tasks[(cell.suite, task)]
        if counts.trials < per_seed * seeds:
            out.append(Shortfall(cell.suite, task, counts.trials, per_seed * seeds))
    return out
