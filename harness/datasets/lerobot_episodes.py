"""Where each episode of a LeRobot dataset lives: one answer for v2.x and v3.0 layouts.

v2.0/v2.1 list episodes in meta/episodes.jsonl and give each its own parquet and mp4 files.
v3.0 lists them in meta/episodes/chunk-*/file-*.parquet, with the data file and, per camera,
the video file and the time at which the episode starts inside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from refinevla_bench.harness.datasets.features import FeatureSpec
from refinevla_bench.harness.datasets.lerobot_meta import (
    EPISODE_ROW_KEYS,
    EpisodeRow,
    read_episode_rows,
    v2_data_file,
    v2_video_file,
)
from refinevla_bench.harness.errors import HarnessError

V3_EPISODES_DIR = Path("meta/episodes")
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
# Columns of a v3.0 episodes table that say where things are, rather than what the episode is.
V3_LOCATION_PREFIXES = ("data/", "videos/", "meta/", "stats/", "dataset_")


@dataclass(frozen=True)
class VideoSegment:
    path: Path
    start_seconds: float  # where the episode's first frame sits in the file


@dataclass(frozen=True)
class EpisodeLocation:
    row: EpisodeRow
    data_file: Path
    videos: Mapping[str, VideoSegment]


def _video_keys(features: Mapping[str, FeatureSpec]) -> list[str]:
    return [name for name, spec in features.items() if spec.dtype == "video"]


def locate_v2_episodes(
    root: Path, info: Mapping[str, Any], features: Mapping[str, FeatureSpec]
) -> list[EpisodeLocation]:
    return [
        EpisodeLocation(
            row=row,
            data_file=root / v2_data_file(info, row.index),
            videos={
                key: VideoSegment(root / v2_video_file(info, key, row.index), 0.0)
                for key in _video_keys(features)
            },
        )
        for row in read_episode_rows(root)
    ]


def locate_v3_episodes(
    root: Path, info: Mapping[str, Any], features: Mapping[str, FeatureSpec]
) -> list[EpisodeLocation]:
    data_template = str(info.get("data_path") or V3_DATA_PATH)
    video_template = str(info.get("video_path") or V3_VIDEO_PATH)
    tables = sorted((root / V3_EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not tables:
        raise HarnessError(
            f"{root} is a v3.0 dataset without episode tables in {V3_EPISODES_DIR}",
            "download the dataset's meta/ folder again",
        )
    locations = []
    for table_path in tables:
        schema = pq.read_schema(table_path)
        wanted = [name for name in schema.names if not name.startswith("stats/")]
        for line in pq.read_table(table_path, columns=wanted).to_pylist():
            try:
                locations.append(_v3_location(root, line, data_template, video_template, features))
            except KeyError as error:
                raise HarnessError(
                    f"{table_path} lacks the column {error} that v3.0 episode tables have",
                    "download the dataset's meta/ folder again",
                ) from error
    return sorted(locations, key=lambda location: location.row.index)


def _v3_location(
    root: Path,
    line: Mapping[str, Any],
    data_template: str,
    video_template: str,
    features: Mapping[str, FeatureSpec],
) -> EpisodeLocation:
    data_file = data_template.format(
        chunk_index=line["data/chunk_index"], file_index=line["data/file_index"]
    )
    videos = {
        key: VideoSegment(
            root
            / video_template.format(
                video_key=key,
                chunk_index=line[f"videos/{key}/chunk_index"],
                file_index=line[f"videos/{key}/file_index"],
            ),
            float(line[f"videos/{key}/from_timestamp"]),
        )
        for key in _video_keys(features)
    }
    return EpisodeLocation(_v3_row(line), root / data_file, videos)


def _v3_row(line: Mapping[str, Any]) -> EpisodeRow:
    extra = {
        key: value
        for key, value in line.items()
        if key not in EPISODE_ROW_KEYS and not key.startswith(V3_LOCATION_PREFIXES)
    }
    return EpisodeRow(
        index=int(line["episode_index"]),
        tasks=tuple(str(task) for task in line.get("tasks") or ()),
        length=int(line["length"]),
        extra=extra,
    )
