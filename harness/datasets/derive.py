"""A copy of a LeRobot v2.x dataset with extra per-frame text columns (reasoning annotations).

The copy is built in a hidden folder beside the destination and renamed into place only when
complete, so a kill never leaves a half-derived dataset under the destination's name. Videos
are hard links to the source's (copied when the destination is on another filesystem): the
copy costs the parquet files and meta only.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from refinevla_bench.harness.datasets.atomic_files import (
    is_partial,
    read_json_lines,
    write_json_atomically,
)
from refinevla_bench.harness.datasets.features import FeatureSpec, features_from_info
from refinevla_bench.harness.datasets.lerobot_meta import (
    EPISODES_PATH,
    EPISODES_STATS_PATH,
    INFO_PATH,
    PER_EPISODE_VERSIONS,
    EpisodeRow,
    load_info,
    read_episode_rows,
    v2_data_file,
    v2_video_file,
)
from refinevla_bench.harness.datasets.parquet_columns import arrow_column
from refinevla_bench.harness.errors import HarnessError

TextColumns = Mapping[str, Sequence[str]]  # feature name -> one text per frame
ColumnSource = Mapping[int, TextColumns] | Callable[[int, int], TextColumns]

TEXT_FEATURE = FeatureSpec("string", (1,))


def derive_with_columns(
    source_root: Path,
    dest_root: Path,
    columns: ColumnSource,
    feature_info: Mapping[str, FeatureSpec] | None = None,
) -> None:
    """Write `source_root` plus new string features to `dest_root`, replacing what is there.

    `columns` gives every episode's new columns, as a mapping from episode_index or as a
    function of (episode_index, length); `feature_info` declares the new features (default:
    one string per frame each). Every episode must get exactly the declared columns.
    """
    if dest_root.resolve() == source_root.resolve():
        raise ValueError("derive into a new folder: the source is read while the copy is built")
    info = load_info(source_root)
    if info.get("codebase_version") not in PER_EPISODE_VERSIONS:
        raise HarnessError(
            f"{source_root} is LeRobot {info.get('codebase_version')}; deriving needs v2.0/v2.1",
            "derive from the v2.1 dataset `collect` wrote",
        )
    rows = read_episode_rows(source_root)
    if info.get("total_episodes") != len(rows):
        raise HarnessError(
            f"{source_root} lists {len(rows)} episodes, its info.json {info.get('total_episodes')}",
            "finish the dataset first: rerun the `collect` command that made it",
        )
    features = features_from_info(info)
    new_features = dict(feature_info) if feature_info else {}
    not_text = sorted(name for name, spec in new_features.items() if not spec.is_string)
    if not_text:
        raise ValueError(f"derived columns are text; features {not_text} are not 'string'")
    staging = dest_root.with_name(f".{dest_root.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _copy_meta(source_root, staging, rows)
        for row in rows:
            texts = columns(row.index, row.length) if callable(columns) else columns.get(row.index)
            if texts is None:
                raise ValueError(f"no columns given for episode {row.index}")
            # Without feature_info, the first episode's column names declare the features.
            new_features = new_features or dict.fromkeys(texts, TEXT_FEATURE)
            _check_columns(row, texts, new_features, features)
            _write_episode(source_root, staging, info, row, texts, new_features)
        info["features"] = {
            **info["features"],
            **{name: spec.to_json() for name, spec in new_features.items()},
        }
        write_json_atomically(staging / INFO_PATH, info)
        _replace_folder(staging, dest_root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_meta(source_root: Path, staging: Path, rows: Sequence[EpisodeRow]) -> None:
    """The source's meta files, without what a kill during its collection may have left:
    temporary files, a torn last line, stats of an episode that was never committed."""
    shutil.copytree(source_root / "meta", staging / "meta", ignore=_partial_files)
    _write_lines(staging / EPISODES_PATH, [row.to_json() for row in rows])
    if (source_root / EPISODES_STATS_PATH).is_file():
        stats = read_json_lines(source_root / EPISODES_STATS_PATH)
        kept = [line for line in stats if int(line["episode_index"]) < len(rows)]
        _write_lines(staging / EPISODES_STATS_PATH, kept)


def _partial_files(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if is_partial(Path(folder) / name)]


def _write_lines(path: Path, lines: Sequence[Mapping[str, Any]]) -> None:
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")


def _check_columns(
    row: EpisodeRow,
    texts: TextColumns,
    new_features: Mapping[str, FeatureSpec],
    features: Mapping[str, FeatureSpec],
) -> None:
    if set(texts) != set(new_features):
        raise ValueError(
            f"episode {row.index} has columns {sorted(texts)}, expected {sorted(new_features)}"
        )
    clashes = sorted(set(new_features) & set(features))
    if clashes:
        raise ValueError(f"the source dataset already has features {clashes}")
    short = {name: len(values) for name, values in texts.items() if len(values) != row.length}
    if short:
        raise ValueError(f"episode {row.index} has {row.length} frames; column lengths {short}")


def _write_episode(
    source_root: Path,
    staging: Path,
    info: Mapping[str, Any],
    row: EpisodeRow,
    texts: TextColumns,
    new_features: Mapping[str, FeatureSpec],
) -> None:
    data_file = v2_data_file(info, row.index)
    if not (source_root / data_file).is_file():
        raise HarnessError(
            f"episode {row.index}'s data file {source_root / data_file} is missing",
            "derive from a complete dataset (rerun `collect` on it to finish it)",
        )
    table = pq.read_table(source_root / data_file)
    for name, spec in new_features.items():
        table = table.append_column(name, arrow_column(texts[name], spec, row.length))
    (staging / data_file).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, staging / data_file)
    for name, spec in features_from_info(info).items():
        if spec.dtype == "video":
            video_file = v2_video_file(info, name, row.index)
            _link_or_copy(source_root / video_file, staging / video_file)


def _link_or_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(source, destination)


def _replace_folder(complete: Path, destination: Path) -> None:
    """Two renames: a kill between them leaves the old copy beside, never a mix of both."""
    retired = destination.with_name(f".{destination.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if destination.exists():
        destination.rename(retired)
    complete.rename(destination)
    shutil.rmtree(retired, ignore_errors=True)
