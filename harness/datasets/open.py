"""Open any supported dataset folder by what it contains, so commands take just a path."""

from __future__ import annotations

from pathlib import Path

from refinevla_bench.harness.datasets.episode import EpisodeSource
from refinevla_bench.harness.datasets.lerobot_meta import INFO_PATH
from refinevla_bench.harness.datasets.tfds_layout import is_tfds_folder
from refinevla_bench.harness.errors import HarnessError


def open_dataset(path: Path, *, split: str = "train", fps: float | None = None) -> EpisodeSource:
    """A LeRobot dataset (meta/info.json) or a TFDS/RLDS one (dataset_info.json, *.tfrecord*,
    or version folders of those). `split` and `fps` apply to RLDS only: LeRobot records both.

    Each reader is imported only when used: LeRobot needs pyarrow, RLDS the `rlds` extra.
    """
    if (path / INFO_PATH).is_file():
        from refinevla_bench.harness.datasets.lerobot_reader import LeRobotDataset

        return LeRobotDataset(path)
    if path.is_dir() and (
        is_tfds_folder(path)
        or any(child.is_dir() and is_tfds_folder(child) for child in path.iterdir())
    ):
        from refinevla_bench.harness.datasets.rlds_reader import RldsDataset

        return RldsDataset(path, split=split, fps=fps)
    raise HarnessError(
        f"{path} is neither a LeRobot dataset (meta/info.json) nor a TFDS/RLDS one "
        "(dataset_info.json or *.tfrecord* files)",
        "pass the dataset's root folder (LeRobot) or its version folder (TFDS, e.g. 1.0.0/)",
    )
