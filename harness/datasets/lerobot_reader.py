"""Read a LeRobot dataset on disk (codebase v2.0, v2.1, v3.0) as `EpisodeView`s.

What an episode view takes from LeRobot's features, for any robot:
- instruction: the episode's first task;
- actions: the `action` feature;
- state: every other numeric feature named `observation.*` that is not a camera;
- cameras: the `video` features (mp4) and the `image` features (PNG/JPEG in the parquet);
- metadata: the `refinevla` entry of the episode's row (what `collect` recorded), else empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refinevla_bench.harness.datasets.episode import EpisodeView, FrameLoader
from refinevla_bench.harness.datasets.features import FeatureSpec, features_from_info
from refinevla_bench.harness.datasets.image_codec import decode_image
from refinevla_bench.harness.datasets.lerobot_episodes import (
    EpisodeLocation,
    locate_v2_episodes,
    locate_v3_episodes,
)
from refinevla_bench.harness.datasets.lerobot_meta import (
    CONSOLIDATED_VERSIONS,
    PER_EPISODE_VERSIONS,
    load_info,
)
from refinevla_bench.harness.datasets.parquet_columns import image_bytes, numpy_column
from refinevla_bench.harness.datasets.video_files import decode_mp4_frames
from refinevla_bench.harness.errors import HarnessError

ACTION_KEY = "action"
METADATA_KEY = "refinevla"
STATE_PREFIX = "observation."


def _is_numeric(spec: FeatureSpec) -> bool:
    if spec.is_camera or spec.is_string:
        return False
    try:
        return np.dtype(spec.dtype).kind in "biuf"
    except TypeError:
        return False


class LeRobotDataset:
    """An `EpisodeSource` over a dataset folder; episodes are looked up by episode_index."""

    def __init__(self, root: Path) -> None:
        info = load_info(root)
        self.root = root
        self.name = root.name
        self.fps = float(info["fps"])
        self.features = features_from_info(info)
        version = info.get("codebase_version")
        if version in PER_EPISODE_VERSIONS:
            locations = locate_v2_episodes(root, info, self.features)
        elif version in CONSOLIDATED_VERSIONS:
            locations = locate_v3_episodes(root, info, self.features)
        else:
            supported = ", ".join((*PER_EPISODE_VERSIONS, *CONSOLIDATED_VERSIONS))
            raise HarnessError(
                f"{root} is LeRobot codebase_version {version}; readable are {supported}",
                "convert it with LeRobot's dataset conversion script to v2.1 or v3.0",
            )
        if ACTION_KEY not in self.features:
            raise HarnessError(
                f"{root} has no '{ACTION_KEY}' feature, so its episodes have no actions",
                "use a dataset recorded with actions",
            )
        self._locations = {location.row.index: location for location in locations}
        self._table: tuple[Path, pa.Table] | None = None  # v3 files hold many episodes

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.features.items() if spec.is_camera)

    @property
    def episode_indices(self) -> tuple[int, ...]:
        return tuple(self._locations)

    def __len__(self) -> int:
        return len(self._locations)

    def __iter__(self) -> Iterator[EpisodeView]:
        for index in self._locations:
            yield self.episode(index)

    def episode(self, index: int) -> EpisodeView:
        location = self._locations.get(index)
        if location is None:
            raise IndexError(f"{self.root} has no episode {index}")
        table = self._episode_rows(location)
        state = {
            name: numpy_column(table[name]).astype(np.float64)
            for name, spec in self.features.items()
            if name.startswith(STATE_PREFIX) and _is_numeric(spec) and name in table.column_names
        }
        actions = numpy_column(table[ACTION_KEY]).astype(np.float32)
        return EpisodeView(
            dataset=self.name,
            index=index,
            instruction=location.row.tasks[0] if location.row.tasks else "",
            fps=self.fps,
            actions=actions.reshape(len(actions), -1),
            state=state,
            cameras=self.cameras,
            metadata=dict(location.row.extra.get(METADATA_KEY) or {}),
            load_frames=self._frame_loader(location, table),
        )

    def _episode_rows(self, location: EpisodeLocation) -> pa.Table:
        """The episode's frames, in order, from its own file (v2) or a shared one (v3)."""
        path = location.data_file
        if self._table is None or self._table[0] != path:
            if not path.is_file():
                raise HarnessError(
                    f"episode {location.row.index}'s data file {path} is missing",
                    "download the dataset's data/ folder again",
                )
            self._table = (path, pq.read_table(path))
        table = self._table[1]
        if "episode_index" in table.column_names:
            table = table.filter(pc.equal(table["episode_index"], pa.scalar(location.row.index)))
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        if table.num_rows != location.row.length:
            raise HarnessError(
                f"{path} has {table.num_rows} frames of episode {location.row.index}, "
                f"its meta says {location.row.length}",
                "download the dataset again; its data and meta files do not match",
            )
        return table

    def _frame_loader(self, location: EpisodeLocation, table: pa.Table) -> FrameLoader:
        if "timestamp" in table.column_names:
            timestamps = numpy_column(table["timestamp"]).astype(np.float64).reshape(-1)
        else:
            timestamps = np.arange(table.num_rows) / self.fps
        encoded = {
            name: image_bytes(table[name])
            for name, spec in self.features.items()
            if spec.dtype == "image" and name in table.column_names
        }

        def load_frames(camera: str, steps: Sequence[int]) -> npt.NDArray[np.uint8]:
            if camera in encoded:
                return np.stack([_decode_stored(encoded[camera], step, camera) for step in steps])
            segment = location.videos[camera]
            video_fps = float(self.features[camera].info.get("video.fps", self.fps))
            numbers = [
                round((segment.start_seconds + float(timestamps[step])) * video_fps)
                for step in steps
            ]
            return decode_mp4_frames(segment.path, numbers, video_fps)

        return load_frames


def _decode_stored(images: Sequence[bytes | None], step: int, camera: str) -> npt.NDArray[Any]:
    data = images[step]
    if data is None:
        raise HarnessError(
            f"camera {camera} has no image bytes at step {step} (only a path)",
            "use a dataset with images embedded in its parquet files",
        )
    return decode_image(data)
