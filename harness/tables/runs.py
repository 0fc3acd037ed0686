"""Run folders read back into per-task counts: the only inputs a results table needs.

A run folder holds `manifest.json` (what was run) and `episodes.jsonl` (one record per
finished episode). Runs of one policy on the suites of one table (Google Robot visual
matching and variant aggregation) become one row. A run killed mid-write may leave a
partial last line, which is skipped; any other unreadable line means the folder is damaged
and is reported, never guessed around.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.tables.stats import Proportion

MANIFEST = "manifest.json"
EPISODES = "episodes.jsonl"
RUN_FOLDER_FIX = "point at a folder made by `refinevla-bench run --out`"
_REPAIR_FIX = (
    "remove or repair that line (only a partial last line, left by a killed run, is skipped), "
    "or run the episodes again with `refinevla-bench run --out`"
)

T = TypeVar("T")


@dataclass(frozen=True)
class TaskCounts:
    """One task of one run. Errors are failed trials, and counted on their own as well.
    `variants` holds (trials, successes, grasps) per environment variant ("" for none)."""

    trials: int
    successes: int
    grasps: int
    errors: int
    seeds: tuple[int, ...]
    variants: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def proportions(self, measure: str) -> tuple[Proportion, ...]:
        """One proportion per variant (the unit SimplerEnv averages)."""
        column = 2 if measure == "grasp" else 1
        return tuple(
            Proportion(counts[column], counts[0]) for _, counts in sorted(self.variants.items())
        )


TaskKey = tuple[str, str]  # (suite, task)


@dataclass(frozen=True)
class RunResult:
    """One row of a table: one run folder, or one per suite of a multi-suite table."""

    paths: tuple[Path, ...]
    label: str  # the policy name, with the folder name added where two rows share it
    suites: tuple[str, ...]
    policy: str
    standins_used: bool
    success_mode: str | None
    tasks: dict[TaskKey, TaskCounts]

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def suite(self) -> str:
        return self.suites[0]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted({seed for counts in self.tasks.values() for seed in counts.seeds}))

    @property
    def errors(self) -> int:
        return sum(counts.errors for counts in self.tasks.values())


@dataclass(frozen=True)
class _Episode:
    suite: str
    task: str
    seed: int
    success: bool
    grasped: bool
    error: bool
    variant: str


def load_runs(
    run_dirs: Sequence[Path], table_suites: Sequence[str] | None = None
) -> tuple[RunResult, ...]:
    """Read run folders of the suites of one table (`table_suites`; default: the first run's
    suite), one row per policy and suite set, labelled so that every row is distinct."""
    if not run_dirs:
        raise HarnessError("no run folder given", RUN_FOLDER_FIX)
    runs = [load_run(path) for path in run_dirs]
    allowed = set(table_suites or (runs[0].suite,))
    if any(run.suite not in allowed for run in runs):
        listed = ", ".join(f"{run.path} ({run.suite})" for run in runs)
        raise HarnessError(
            f"the runs are of different suites with no common table: {listed}",
            "make one table per suite: pass only run folders of the same suite "
            "(or Google Robot visual matching with variant aggregation)",
        )
    return _disambiguate(_rows(runs))


def _rows(runs: Sequence[RunResult]) -> list[RunResult]:
    """Each run joins the first row of its policy that lacks its suite."""
    rows: list[RunResult] = []
    for run in runs:
        for index, row in enumerate(rows):
            if row.policy == run.policy and run.suite not in row.suites:
                rows[index] = _joined(row, run)
                break
        else:
            rows.append(run)
    return rows


def _joined(row: RunResult, run: RunResult) -> RunResult:
    modes = {row.success_mode, run.success_mode}
    return replace(
        row,
        paths=(*row.paths, *run.paths),
        suites=(*row.suites, *run.suites),
        standins_used=row.standins_used or run.standins_used,
        success_mode=row.success_mode if len(modes) == 1 else "mixed",
        tasks={**row.tasks, **run.tasks},
    )


def load_run(path: Path) -> RunResult:
    """One run folder: its manifest and the counts of its episode records."""
    for name in (MANIFEST, EPISODES):
        if not (path / name).is_file():
            raise HarnessError(f"{path} is not a run folder (no {name})", RUN_FOLDER_FIX)
    manifest = _manifest(path / MANIFEST)
    suite = _field(manifest, "suite", str, path / MANIFEST)
    policy = _field(_field(manifest, "policy", dict, path / MANIFEST), "name", str, path / MANIFEST)
    assets = manifest.get("assets")
    episodes = _episodes(path / EPISODES)
    for episode in episodes:
        if episode.suite != suite:
            raise HarnessError(
                f"{path / EPISODES} holds episodes of suite '{episode.suite}', "
                f"but its manifest says '{suite}'",
                RUN_FOLDER_FIX,
            )
    return RunResult(
        paths=(path,),
        label=policy,
        suites=(suite,),
        policy=policy,
        standins_used=isinstance(assets, dict) and assets.get("standins_used") is True,
        success_mode=_optional_str(manifest.get("success_mode")),
        tasks=_counts(episodes),
    )


def _manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HarnessError(f"{path} is not valid JSON ({error})", RUN_FOLDER_FIX) from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path} is not a JSON object", RUN_FOLDER_FIX)
    return data


def _field(data: dict[str, Any], key: str, kind: type[T], path: Path) -> T:
    value = data.get(key)
    if not isinstance(value, kind):
        raise HarnessError(f"{path} lacks '{key}' ({kind.__name__})", RUN_FOLDER_FIX)
    return value


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _episodes(path: Path) -> list[_Episode]:
    """The records of episodes.jsonl; only an unreadable last line (a killed write) is skipped."""
    lines = [
        (number, line)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if line.strip()
    ]
    episodes: list[_Episode] = []
    for index, (number, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if index == len(lines) - 1:
                break
            raise HarnessError(
                f"{path} line {number} is not JSON ({error.msg})", _REPAIR_FIX
            ) from None
        episodes.append(_episode(record, f"{path} line {number}"))
    return episodes


def _episode(record: object, where: str) -> _Episode:
    """Check the fields a table needs; errors score as failures whatever `success` says."""
    if not isinstance(record, dict):
        raise HarnessError(f"{where} is not an episode record (not an object)", _REPAIR_FIX)
    expected: dict[str, type] = {
        "suite": str,
        "task": str,
        "seed": int,
        "success": bool,
        "grasped": bool,
        "termination": str,
    }
    for key, kind in expected.items():
        value = record.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise HarnessError(
                f"{where} is not an episode record ('{key}' missing or not {kind.__name__})",
                _REPAIR_FIX,
            )
    error = record["termination"] == "error"
    variant = record.get("variant")
    return _Episode(
        variant=variant if isinstance(variant, str) else "",
        suite=record["suite"],
        task=record["task"],
        seed=record["seed"],
        success=record["success"] and not error,
        grasped=record["grasped"],
        error=error,
    )


def _counts(episodes: Sequence[_Episode]) -> dict[TaskKey, TaskCounts]:
    by_task: dict[TaskKey, list[_Episode]] = {}
    for episode in episodes:
        by_task.setdefault((episode.suite, episode.task), []).append(episode)
    return {key: _task_counts(group) for key, group in by_task.items()}


def _task_counts(group: Sequence[_Episode]) -> TaskCounts:
    by_variant: dict[str, list[_Episode]] = {}
    for episode in group:
        by_variant.setdefault(episode.variant, []).append(episode)
    return TaskCounts(
        trials=len(group),
        successes=sum(episode.success for episode in group),
        grasps=sum(episode.grasped for episode in group),
        errors=sum(episode.error for episode in group),
        seeds=tuple(sorted({episode.seed for episode in group})),
        variants={
            name: (
                len(members),
                sum(episode.success for episode in members),
                sum(episode.grasped for episode in members),
            )
            for name, members in by_variant.items()
        },
    )


def _disambiguate(runs: Sequence[RunResult]) -> tuple[RunResult, ...]:
    """Runs sharing a policy name are told apart by folder name, then by the path as given."""
    labelled = list(runs)

    def names(run: RunResult) -> str:
        return ", ".join(path.name for path in run.paths)

    def full_paths(run: RunResult) -> str:
        return ", ".join(map(str, run.paths))

    for describe in (names, full_paths):
        counts = Counter(run.label for run in labelled)
        labelled = [
            replace(run, label=f"{run.policy} ({describe(run)})") if counts[run.label] > 1 else run
            for run in labelled
        ]
    return tuple(labelled)
