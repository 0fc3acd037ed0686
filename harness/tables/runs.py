"""Run folders read back into per-task counts: the only inputs a results table needs.

A run folder holds `manifest.json` (what was run) and `episodes.jsonl` (one record per
finished episode). A run killed mid-write may leave a partial last line, which is skipped;
any other unreadable line means the folder is damaged and is reported, never guessed around.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from refinevla_bench.harness.errors import HarnessError

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
    """One task of one run. Errors are failed trials, and counted on their own as well."""

    trials: int
    successes: int
    grasps: int
    errors: int
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class RunResult:
    path: Path
    label: str  # the policy name, with the folder name added where two runs share it
    suite: str
    policy: str
    standins_used: bool
    success_mode: str | None
    tasks: dict[str, TaskCounts]

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


def load_runs(run_dirs: Sequence[Path]) -> tuple[RunResult, ...]:
    """Read run folders of one suite, labelled so that every row of a table is distinct."""
    if not run_dirs:
        raise HarnessError("no run folder given", RUN_FOLDER_FIX)
    runs = [load_run(path) for path in run_dirs]
    suites = {run.suite for run in runs}
    if len(suites) > 1:
        listed = ", ".join(f"{run.path} ({run.suite})" for run in runs)
        raise HarnessError(
            f"the runs are of different suites: {listed}",
            "make one table per suite: pass only run folders of the same suite",
        )
    return _disambiguate(runs)


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
        path=path,
        label=policy,
        suite=suite,
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
    return _Episode(
        suite=record["suite"],
        task=record["task"],
        seed=record["seed"],
        success=record["success"] and not error,
        grasped=record["grasped"],
        error=error,
    )


def _counts(episodes: Sequence[_Episode]) -> dict[str, TaskCounts]:
    by_task: dict[str, list[_Episode]] = {}
    for episode in episodes:
        by_task.setdefault(episode.task, []).append(episode)
    return {
        task: TaskCounts(
            trials=len(group),
            successes=sum(episode.success for episode in group),
            grasps=sum(episode.grasped for episode in group),
            errors=sum(episode.error for episode in group),
            seeds=tuple(sorted({episode.seed for episode in group})),
        )
        for task, group in by_task.items()
    }


def _disambiguate(runs: Sequence[RunResult]) -> tuple[RunResult, ...]:
    """Runs sharing a policy name are told apart by folder name, then by the path as given."""
    labelled = list(runs)
    for describe in (lambda run: run.path.name, lambda run: str(run.path)):
        counts = Counter(run.label for run in labelled)
        labelled = [
            replace(run, label=f"{run.policy} ({describe(run)})") if counts[run.label] > 1 else run
            for run in labelled
        ]
    return tuple(labelled)
