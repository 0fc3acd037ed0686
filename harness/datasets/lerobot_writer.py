"""Write episodes as a LeRobot dataset (codebase v2.1), resumable after a kill.

Each episode is committed in an order that makes meta/episodes.jsonl the truth: its videos and
parquet file are renamed into place, then its stats and task lines are appended, then its
episode line (the commit), then meta/info.json is replaced. Files of an episode without an
episode line are leftovers of a killed run; resuming removes them and rewrites info.json.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from refinevla_bench.harness.datasets.atomic_files import (
    append_json_line,
    drop_torn_tail,
    is_partial,
    read_json_lines,
    replacing,
    write_bytes_atomically,
    write_json_atomically,
)
from refinevla_bench.harness.datasets.episode_stats import episode_stats
from refinevla_bench.harness.datasets.features import (
    DEFAULT_FEATURES,
    FeatureSpec,
    with_video_info,
)
from refinevla_bench.harness.datasets.lerobot_meta import (
    CHUNKS_SIZE,
    EPISODE_ROW_KEYS,
    EPISODES_PATH,
    EPISODES_STATS_PATH,
    INFO_PATH,
    TASKS_PATH,
    V2_DATA_PATH,
    V2_VIDEO_PATH,
    WRITTEN_VERSION,
    EpisodeRow,
    load_info,
    read_episode_rows,
    read_task_lines,
    v2_data_file,
    v2_video_file,
)
from refinevla_bench.harness.datasets.parquet_columns import ColumnValues, arrow_column
from refinevla_bench.harness.datasets.video_files import encode_mp4
from refinevla_bench.harness.errors import HarnessError

EPISODE_FILE_NUMBER = re.compile(r"^episode_(\d+)\.")
# Where episode files go, as the path helpers read it from an info.json.
LAYOUT = {"data_path": V2_DATA_PATH, "video_path": V2_VIDEO_PATH, "chunks_size": CHUNKS_SIZE}
STANDARD_INFO_KEYS = (
    *LAYOUT,
    "codebase_version",
    "robot_type",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "total_videos",
    "total_chunks",
    "fps",
    "splits",
    "features",
)


@dataclass(frozen=True)
class EpisodeData:
    """One episode to write: `frames` per camera feature, (frames, *shape) values per other
    feature (a list of str for `string` features), and `metadata` kept in its episodes.jsonl
    line beside LeRobot's own keys."""

    instruction: str
    frames: Mapping[str, npt.NDArray[np.uint8]]
    columns: Mapping[str, ColumnValues]
    metadata: Mapping[str, Any] = field(default_factory=dict)


class LeRobotWriter:
    """Appends episodes to one dataset folder; open it with `create_or_resume`."""

    def __init__(
        self,
        root: Path,
        fps: float,
        robot_type: str,
        features: Mapping[str, FeatureSpec],
        extra_info: Mapping[str, Any],
        rows: list[EpisodeRow],
        tasks: dict[str, int],
    ) -> None:
        self.root = root
        self.fps = fps
        self.robot_type = robot_type
        self.features = dict(features)
        self.extra_info = dict(extra_info)
        self._rows = rows
        self._tasks = tasks
        self._total_frames = sum(row.length for row in rows)

    @classmethod
    def create_or_resume(
        cls,
        root: Path,
        *,
        fps: float,
        robot_type: str,
        features: Mapping[str, FeatureSpec],
        extra_info: Mapping[str, Any] | None = None,
    ) -> LeRobotWriter:
        """A new dataset at `root`, or the one there, cleaned of a killed run's leftovers.

        `extra_info` adds top-level keys to info.json; the latest call's values are kept.
        """
        declared = _declared_features(features, fps)
        extra = dict(extra_info or {})
        clashes = sorted(set(extra) & set(STANDARD_INFO_KEYS))
        if clashes:
            raise ValueError(f"extra_info may not redefine LeRobot's info.json keys {clashes}")
        if (root / INFO_PATH).is_file():
            _check_same_settings(root, fps, robot_type, declared)
            rows, tasks = _recover(root)
        else:
            _check_fresh_folder(root)
            rows, tasks = [], {}
        writer = cls(root, fps, robot_type, declared, extra, rows, tasks)
        writer._write_info()
        return writer

    @property
    def episodes(self) -> tuple[EpisodeRow, ...]:
        """The committed episodes, with the metadata each was written with."""
        return tuple(self._rows)

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.features.items() if spec.is_camera)

    def add_episode(self, episode: EpisodeData) -> EpisodeRow:
        """Write and commit one episode; everything is checked before the first file is written."""
        length = self._check_episode(episode)
        index = len(self._rows)
        row = EpisodeRow(index, (episode.instruction,), length, dict(episode.metadata))
        json.dumps(row.to_json())  # metadata that is not JSON fails here, not halfway
        task_index = self._tasks.get(episode.instruction, len(self._tasks))
        numeric = self._numeric_columns(episode, length)
        numeric.update(self._bookkeeping_columns(index, task_index, length))
        table = self._table(episode, numeric, length)
        for camera in self.cameras:
            with replacing(self.root / v2_video_file(LAYOUT, camera, index)) as temporary:
                encode_mp4(temporary, episode.frames[camera], self.fps)
        with replacing(self.root / v2_data_file(LAYOUT, index)) as temporary:
            pq.write_table(table, temporary)
        stats = episode_stats(numeric, {name: episode.frames[name] for name in self.cameras})
        append_json_line(self.root / EPISODES_STATS_PATH, {"episode_index": index, "stats": stats})
        if episode.instruction not in self._tasks:
            append_json_line(
                self.root / TASKS_PATH, {"task_index": task_index, "task": episode.instruction}
            )
            self._tasks[episode.instruction] = task_index
        append_json_line(self.root / EPISODES_PATH, row.to_json())
        self._rows.append(row)
        self._total_frames += length
        self._write_info()
        return row

    def _check_episode(self, episode: EpisodeData) -> int:
        """The episode's frame count; ValueError when it does not fit the declared features."""
        cameras = set(self.cameras)
        others = set(self.features) - cameras
        if set(episode.frames) != cameras or set(episode.columns) != others:
            raise ValueError(
                f"an episode needs frames for {sorted(cameras)} and columns for {sorted(others)};"
                f" got frames {sorted(episode.frames)} and columns {sorted(episode.columns)}"
            )
        clashes = sorted(set(episode.metadata) & set(EPISODE_ROW_KEYS))
        if clashes:
            raise ValueError(f"episode metadata may not redefine {clashes}")
        lengths = {len(values) for values in episode.columns.values()}
        lengths |= {len(frames) for frames in episode.frames.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"all features need the same, non-zero frame count; got {lengths}")
        length = lengths.pop()
        for name in self.cameras:
            frames = episode.frames[name]
            expected = (length, *self.features[name].shape)
            if frames.dtype != np.uint8 or frames.shape != expected:
                raise ValueError(f"{name}: need uint8 frames {expected}, got {frames.shape}")
        return length

    def _numeric_columns(self, episode: EpisodeData, length: int) -> dict[str, npt.NDArray[Any]]:
        numeric: dict[str, npt.NDArray[Any]] = {}
        for name, spec in self.features.items():
            if spec.is_camera or spec.is_string:
                continue
            values = np.asarray(episode.columns[name], dtype=np.dtype(spec.dtype))
            if values.size != length * math.prod(spec.shape):
                raise ValueError(f"{name}: need {length} frames of shape {spec.shape}")
            numeric[name] = values.reshape(length, *spec.shape)
        return numeric

    def _bookkeeping_columns(
        self, index: int, task_index: int, length: int
    ) -> dict[str, npt.NDArray[Any]]:
        frame_index = np.arange(length, dtype=np.int64)
        return {
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(length, index, dtype=np.int64),
            "index": self._total_frames + frame_index,
            "task_index": np.full(length, task_index, dtype=np.int64),
        }

    def _table(
        self, episode: EpisodeData, numeric: Mapping[str, npt.NDArray[Any]], length: int
    ) -> pa.Table:
        columns: dict[str, pa.Array[Any]] = {}
        for name, spec in {**self.features, **DEFAULT_FEATURES}.items():
            if spec.is_camera:
                continue
            values = numeric[name] if name in numeric else episode.columns[name]
            columns[name] = arrow_column(values, spec, length)
        return pa.table(columns)

    def _info(self) -> dict[str, Any]:
        episodes = len(self._rows)
        cameras = len(self.cameras)
        info = {
            "codebase_version": WRITTEN_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": episodes,
            "total_frames": self._total_frames,
            "total_tasks": len(self._tasks),
            "total_videos": episodes * cameras,
            "total_chunks": math.ceil(episodes / CHUNKS_SIZE),
            "chunks_size": CHUNKS_SIZE,
            "fps": int(self.fps) if float(self.fps).is_integer() else self.fps,
            "splits": {"train": f"0:{episodes}"},
            "data_path": V2_DATA_PATH,
            "video_path": V2_VIDEO_PATH if cameras else None,
            "features": {
                name: spec.to_json() for name, spec in {**self.features, **DEFAULT_FEATURES}.items()
            },
        }
        return {**info, **self.extra_info}

    def _write_info(self) -> None:
        write_json_atomically(self.root / INFO_PATH, self._info())


def _declared_features(features: Mapping[str, FeatureSpec], fps: float) -> dict[str, FeatureSpec]:
    declared: dict[str, FeatureSpec] = {}
    for name, spec in features.items():
        if name in DEFAULT_FEATURES:
            raise ValueError(f"feature {name} is LeRobot's own bookkeeping column")
        if spec.dtype == "image":
            raise ValueError(f"{name}: the writer stores cameras as video, declare dtype 'video'")
        if spec.dtype == "video":
            if len(spec.shape) != 3 or spec.shape[2] != 3:
                raise ValueError(f"{name}: a video feature has shape (height, width, 3)")
            spec = with_video_info(spec, fps)
        if spec.is_string and spec.shape != (1,):
            raise ValueError(f"{name}: a string feature has shape (1,), one text per frame")
        declared[name] = spec
    return declared


def _check_same_settings(
    root: Path, fps: float, robot_type: str, features: Mapping[str, FeatureSpec]
) -> None:
    info = load_info(root)
    stored = {
        name: raw for name, raw in info.get("features", {}).items() if name not in DEFAULT_FEATURES
    }
    wanted = {name: spec.to_json() for name, spec in features.items()}
    differences = []
    if info.get("codebase_version") != WRITTEN_VERSION:
        differences.append(f"codebase_version {info.get('codebase_version')}")
    if float(info.get("fps", 0)) != float(fps):
        differences.append(f"fps {info.get('fps')} instead of {fps}")
    if info.get("robot_type") != robot_type:
        differences.append(f"robot_type {info.get('robot_type')} instead of {robot_type}")
    changed = sorted(name for name in {*stored, *wanted} if stored.get(name) != wanted.get(name))
    if changed:
        differences.append(f"different features {changed}")
    if differences:
        raise HarnessError(
            f"{root} holds a dataset written with other settings: {'; '.join(differences)}",
            "collect into a new directory, or resume with the settings the dataset was made with",
        )


def _check_fresh_folder(root: Path) -> None:
    if root.exists() and any(path.is_file() and not is_partial(path) for path in root.rglob("*")):
        raise HarnessError(
            f"{root} has files but no {INFO_PATH}, so it is not a dataset this writer can extend",
            "choose a new or empty directory for the dataset",
        )


def _recover(root: Path) -> tuple[list[EpisodeRow], dict[str, int]]:
    """The committed episodes and tasks; every trace of an uncommitted episode removed."""
    for meta_file in (TASKS_PATH, EPISODES_PATH, EPISODES_STATS_PATH):
        drop_torn_tail(root / meta_file)
    rows = read_episode_rows(root)
    if [row.index for row in rows] != list(range(len(rows))):
        raise HarnessError(
            f"{root / EPISODES_PATH} does not list episodes 0..{len(rows) - 1} in order",
            "collect into a new directory; this one was not written by refinevla-bench",
        )
    _remove_uncommitted_files(root, committed=len(rows))
    stats_path = root / EPISODES_STATS_PATH
    stats = read_json_lines(stats_path)
    kept = [line for line in stats if int(line["episode_index"]) < len(rows)]
    if len(kept) != len(stats):
        lines = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in kept)
        write_bytes_atomically(stats_path, lines.encode())
    tasks = {task: index for index, task in read_task_lines(root).items()}
    return rows, tasks


def _remove_uncommitted_files(root: Path, committed: int) -> None:
    for folder in ("data", "videos", "meta"):
        for path in sorted((root / folder).rglob("*")):
            if not path.is_file():
                continue
            number = EPISODE_FILE_NUMBER.match(path.name)
            if is_partial(path) or (number is not None and int(number.group(1)) >= committed):
                path.unlink()
