"""A run directory: the manifest, one JSON line per finished episode, and a summary.

Episodes are appended with one `write` of a whole line followed by fsync, so a kill at any
moment loses at most the episodes in flight; at worst it leaves a partial last line, which
the next open drops. Running the same command on the same folder resumes: finished
(task, episode_id, seed) triples are skipped. Other files are replaced atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinevla_bench.harness.datasets.atomic_files import (
    write_bytes_atomically,
    write_json_atomically,
)
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.records import EpisodeRecord, TaskSummary

MANIFEST_NAME = "manifest.json"
EPISODES_NAME = "episodes.jsonl"
SUMMARY_NAME = "summary.json"

EpisodeId = tuple[str, int, int]  # (task, episode_id, seed)

# What must match for a folder to be resumed: anything else would mix incomparable episodes.
IDENTITY_KEYS = ("suite", "policy", "success_mode")


def _record_from_json(payload: dict[str, Any]) -> EpisodeRecord:
    rationales = payload.pop("rationales", None)
    return EpisodeRecord(**payload, rationales=None if rationales is None else tuple(rationales))


@dataclass(frozen=True)
class LoadedEpisodes:
    records: list[EpisodeRecord]
    dropped_partial_line: bool


def read_episodes(path: Path) -> LoadedEpisodes:
    """Parse episodes.jsonl; only a partial LAST line (a kill mid-write) is tolerated."""
    if not path.exists():
        return LoadedEpisodes([], False)
    lines = path.read_text(encoding="utf-8").split("\n")
    complete, tail = lines[:-1], lines[-1]
    records: list[EpisodeRecord] = []
    for number, line in enumerate(complete, start=1):
        try:
            records.append(_record_from_json(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise HarnessError(
                f"{path} line {number} is corrupt ({error})",
                "remove that line (the episode is then rerun) or start a new --out folder",
            ) from error
    return LoadedEpisodes(records, dropped_partial_line=bool(tail.strip()))


class RunDirectory:
    """The folder `refinevla-bench run --out` writes, opened for a new run or a resume."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest_path = path / MANIFEST_NAME
        self.episodes_path = path / EPISODES_NAME
        self.summary_path = path / SUMMARY_NAME

    def open(self, manifest: dict[str, Any]) -> list[EpisodeRecord]:
        """Create the folder or resume it; returns the episodes already finished."""
        if self.path.exists() and not self.path.is_dir():
            raise HarnessError(f"--out {self.path} is a file", "choose a folder for --out")
        self.path.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if self.manifest_path.exists():
                manifest = self._merged_with_existing(manifest)
            elif self.episodes_path.exists():
                raise HarnessError(
                    f"{self.path} has episodes but no {MANIFEST_NAME}",
                    "choose a new --out folder; this one was not made by refinevla-bench run",
                )
            loaded = read_episodes(self.episodes_path)
            if loaded.dropped_partial_line:
                self._rewrite_episodes(loaded.records)
            write_json_atomically(self.manifest_path, manifest, indent=2, sort_keys=True)
        return loaded.records

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the folder's lock: processes running disjoint --tasks into one --out read,
        merge and write the manifest one at a time (two at once kept one invocation)."""
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def _merged_with_existing(self, manifest: dict[str, Any]) -> dict[str, Any]:
        existing = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        for key in IDENTITY_KEYS:
            if existing.get(key) != manifest.get(key):
                raise HarnessError(
                    f"{self.path} holds a run with a different {key} "
                    f"({json.dumps(existing.get(key))} vs {json.dumps(manifest.get(key))})",
                    "rerun with the options of that run to resume it, or pick a new --out",
                )
        merged = dict(manifest)
        merged["seeds"] = sorted(set(existing.get("seeds", [])) | set(manifest.get("seeds", [])))
        merged["invocations"] = [*existing.get("invocations", []), *manifest["invocations"]]
        merged["created"] = existing.get("created", manifest.get("created"))
        return merged

    def _rewrite_episodes(self, records: Sequence[EpisodeRecord]) -> None:
        text = "".join(_episode_line(record) for record in records)
        write_bytes_atomically(self.episodes_path, text.encode("utf-8"))

    def append(self, record: EpisodeRecord) -> None:
        line = _episode_line(record).encode("utf-8")
        descriptor = os.open(self.episodes_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def write_summary(
        self, planned: Collection[EpisodeId], extra: Mapping[str, Any]
    ) -> list[EpisodeRecord]:
        """Summarise the folder as it is on disk now, episodes of other processes sharing it
        included; `complete` says whether every episode in `planned` has its record.
        Returns the records the summary was made from."""
        with self._locked():
            records = read_episodes(self.episodes_path).records
            by_task: dict[str, list[EpisodeRecord]] = {}
            for record in records:
                by_task.setdefault(record.task, []).append(record)
            finished = len(set(planned) & {episode_id_of(record) for record in records})
            summary = {
                **extra,
                "planned_episodes": len(planned),
                "finished_episodes": finished,
                "complete": finished == len(planned),
                "tasks": {
                    task: _summary_json(TaskSummary.of(task, rs)) for task, rs in by_task.items()
                },
                "overall": _summary_json(TaskSummary.of("all", records)),
            }
            write_json_atomically(self.summary_path, summary, indent=2, sort_keys=True)
        return records


def _episode_line(record: EpisodeRecord) -> str:
    return json.dumps(record.to_json(), sort_keys=True) + "\n"


def _summary_json(summary: TaskSummary) -> dict[str, Any]:
    return {
        "episodes": summary.episodes,
        "successes": summary.successes,
        "grasps": summary.grasps,
        "errors": summary.errors,
        "success_rate": round(summary.success_rate, 4),
        "grasp_rate": round(summary.grasps / summary.episodes, 4) if summary.episodes else 0.0,
        "seconds": round(summary.seconds, 3),
    }


def episode_id_of(record: EpisodeRecord) -> EpisodeId:
    return (record.task, record.episode_id, record.seed)
