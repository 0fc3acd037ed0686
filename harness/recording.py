"""Per-episode outputs beside the records: mp4 videos and raw action recordings.

Each file is written under a temporary name and renamed when its episode ends, so a killed
run never leaves a truncated video or recording that looks finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.datasets.atomic_files import replacing
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.policies.protocol import EpisodeKey, ObservationBatch
from refinevla_bench.policies.replay import recording_path

VIDEO_DIR = "videos"
ACTIONS_DIR = "actions"


def video_path(run_dir: Path, episode: EpisodeKey) -> Path:
    return run_dir / VIDEO_DIR / episode.task / f"{episode.episode_id}-seed{episode.seed}.mp4"


class EpisodeFiles:
    """Collects frames and actions per episode and writes them when the episode finishes."""

    def __init__(self, run_dir: Path, fps: float, video: bool, actions: bool) -> None:
        self.run_dir = run_dir
        self.fps = fps
        self.video = video
        self.record_actions = actions
        self._frames: dict[EpisodeKey, list[npt.NDArray[np.uint8]]] = {}
        self._actions: dict[EpisodeKey, list[npt.NDArray[np.float64]]] = {}

    def observed(self, observation: ObservationBatch) -> None:
        if self.video:
            for episode, image in zip(observation.episodes, observation.images, strict=True):
                self._frames.setdefault(episode, []).append(image.copy())

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None:
        if self.record_actions:
            for episode, action in zip(episodes, actions, strict=True):
                self._actions.setdefault(episode, []).append(action.copy())

    def step_done(self, active: int) -> None:
        del active

    def episode_done(self, record: EpisodeRecord) -> None:
        key = EpisodeKey(record.task, record.episode_id, record.seed)
        frames = self._frames.pop(key, [])
        actions = self._actions.pop(key, [])
        if self.video and frames:
            self._write_video(video_path(self.run_dir, key), frames)
        if self.record_actions:
            path = recording_path(self.run_dir / ACTIONS_DIR, key)
            with replacing(path) as partial:
                np.save(partial, np.asarray(actions, dtype=np.float64).reshape(-1, 7))

    def _write_video(self, path: Path, frames: list[npt.NDArray[np.uint8]]) -> None:
        import imageio.v2 as imageio

        with replacing(path) as partial:
            writer: Any = imageio.get_writer(
                partial, fps=self.fps, codec="libx264", macro_block_size=1
            )
            with writer:
                for frame in frames:
                    writer.append_data(frame)
