"""Where a LeRobot dataset keeps things, and its v2.x meta files read back.

Facts follow LeRobot's codebase versions v2.0 and v2.1 (per-episode parquet and mp4 files,
JSON-lines meta) and v3.0 (episodes concatenated into larger files, parquet meta).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refinevla_bench.harness.datasets.atomic_files import read_json_lines
from refinevla_bench.harness.errors import HarnessError

INFO_PATH = Path("meta/info.json")
TASKS_PATH = Path("meta/tasks.jsonl")
EPISODES_PATH = Path("meta/episodes.jsonl")
EPISODES_STATS_PATH = Path("meta/episodes_stats.jsonl")

WRITTEN_VERSION = "v2.1"
PER_EPISODE_VERSIONS = ("v2.0", "v2.1")
CONSOLIDATED_VERSIONS = ("v3.0",)
CHUNKS_SIZE = 1000

V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"

# Keys of an episodes.jsonl row that LeRobot defines; any other key is the writer's metadata.
EPISODE_ROW_KEYS = ("episode_index", "tasks", "length")


@dataclass(frozen=True)
class EpisodeRow:
    """One episode as LeRobot's meta lists it (a meta/episodes.jsonl line in v2.x, a row of
    the episodes table in v3.0); `extra` holds the keys LeRobot does not define."""

    index: int
    tasks: tuple[str, ...]
    length: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_index": self.index,
            "tasks": list(self.tasks),
            "length": self.length,
            **self.extra,
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> EpisodeRow:
        extra = {key: value for key, value in payload.items() if key not in EPISODE_ROW_KEYS}
        return cls(
            index=int(payload["episode_index"]),
            tasks=tuple(str(task) for task in payload.get("tasks", ())),
            length=int(payload["length"]),
            extra=extra,
        )


def load_info(root: Path) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.is_file():
        raise HarnessError(
            f"{root} is not a LeRobot dataset (no {INFO_PATH})",
            "pass the dataset's root folder, the one holding meta/, data/ and videos/",
        )
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise HarnessError(
            f"{path} is not valid JSON ({error})", "restore meta/info.json from the source"
        ) from error
    return info


def read_episode_rows(root: Path) -> list[EpisodeRow]:
    return [EpisodeRow.from_json(line) for line in read_json_lines(root / EPISODES_PATH)]


def read_task_lines(root: Path) -> dict[int, str]:
    """task_index -> task, from meta/tasks.jsonl."""
    lines = read_json_lines(root / TASKS_PATH)
    return {int(line["task_index"]): str(line["task"]) for line in lines}


def episode_chunk(episode_index: int, chunks_size: int) -> int:
    return episode_index // chunks_size


def v2_data_file(info: Mapping[str, Any], episode_index: int) -> Path:
    template = str(info.get("data_path") or V2_DATA_PATH)
    chunk = episode_chunk(episode_index, int(info.get("chunks_size", CHUNKS_SIZE)))
    return Path(template.format(episode_chunk=chunk, episode_index=episode_index))


def v2_video_file(info: Mapping[str, Any], video_key: str, episode_index: int) -> Path:
    template = str(info.get("video_path") or V2_VIDEO_PATH)
    chunk = episode_chunk(episode_index, int(info.get("chunks_size", CHUNKS_SIZE)))
    return Path(
        template.format(episode_chunk=chunk, video_key=video_key, episode_index=episode_index)
    )
