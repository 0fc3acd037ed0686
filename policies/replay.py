"""The `replay` policy: plays recorded action sequences, to reproduce or debug an episode.

`path` is either one `.npy` file of shape (steps, 7), played in every episode, or a folder
laid out as `<task>/<episode_id>-seed<seed>.npy` (or `<task>/<episode_id>.npy`), which
`refinevla-bench run --record-actions` writes into a run directory. Actions are in this
policy's declared conventions (axis-angle, absolute gripper). After the recording ends the
arm holds still and the gripper keeps its last command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    EpisodeKey,
    ObservationBatch,
    PolicyConventions,
)

FloatArray = npt.NDArray[np.float64]


def recording_path(root: Path, episode: EpisodeKey) -> Path:
    """Where the recording of one episode lives inside a recordings folder."""
    return root / episode.task / f"{episode.episode_id}-seed{episode.seed}.npy"


def load_recording(path: Path) -> FloatArray:
    actions = np.load(path, allow_pickle=False)
    if actions.ndim != 2 or actions.shape[1] != ACTION_DIM:
        raise ValueError(f"{path} holds shape {actions.shape}, expected (steps, {ACTION_DIM})")
    return np.asarray(actions, dtype=np.float64)


class ReplayPolicy:
    conventions: ClassVar[PolicyConventions] = PolicyConventions()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no recording at {self.path}")
        self._shared = load_recording(self.path) if self.path.is_file() else None
        self._playing: dict[EpisodeKey, FloatArray] = {}
        self._steps: dict[EpisodeKey, int] = {}

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions
        self._playing = {}
        self._steps = {}

    def _recording(self, episode: EpisodeKey) -> FloatArray:
        if self._shared is not None:
            return self._shared
        exact = recording_path(self.path, episode)
        fallback = self.path / episode.task / f"{episode.episode_id}.npy"
        for candidate in (exact, fallback):
            if candidate.is_file():
                return load_recording(candidate)
        raise FileNotFoundError(f"no recording {exact} (or {fallback})")

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        actions = np.zeros((observation.batch_size, ACTION_DIM))
        for row, episode in enumerate(observation.episodes):
            recording = self._playing.setdefault(episode, self._recording(episode))
            step = self._steps.get(episode, 0)
            if step < len(recording):
                actions[row] = recording[step]
            elif len(recording):
                actions[row, 6] = recording[-1, 6]
            self._steps[episode] = step + 1
        return actions
