"""SpatialVLA's decoded action chunks -> one action per step, as SimplerEnv evaluates it
(pure numpy).

The published processor turns the spatial action tokens into a chunk of `action_chunk_size`
actions (4 for the published checkpoints) already un-normalised with its statistics: xyz, then
roll/pitch/yaw (declared `roll_pitch_yaw`; the harness converts), then gripper openness (0
closed, 1 open; the statistics leave it unmasked). SimplerEnv's SpatialVLA evaluation then:

- ensembles the chunks: the action for step t averages, over the last `chunk` predictions, each
  one's entry for step t, weighted by exp(-temperature * k) with k = 0 for the oldest, with
  temperature -0.8 (newer predictions weigh more);
- WidowX: absolute gripper, open when the openness exceeds 0.5;
- Google Robot: a sticky relative gripper (+1 close) of its own: the change is measured from
  the openness at the episode's first step or at the last hold's start (not the previous step),
  a change above 0.5 is held for 10 steps, smaller changes are sent as they are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.adapters.gripper import absolute_from_openness
from refinevla_bench.policies.adapters.normalization import pick_statistics
from refinevla_bench.policies.protocol import ACTION_DIM, Robot

FloatArray = npt.NDArray[np.float64]

# The statistics SimplerEnv's SpatialVLA evaluation decodes with on each robot.
DEFAULT_UNNORM_KEYS: Mapping[Robot, str] = {
    "widowx": "bridge_orig/1.0.0",
    "google_robot": "fractal20220817_data/0.1.0",
}
ENSEMBLE_TEMPERATURE = -0.8
STICKY_REPEAT_GOOGLE = 10
_CHANGE_THRESHOLD = 0.5


def select_unnorm_key(
    statistics: Mapping[str, object], wanted: str | None, robot: Robot, checkpoint: str
) -> str:
    """`wanted` when given; else the robot's SimplerEnv default when the processor has it;
    else the processor's only statistics (several: refused, naming them)."""
    key, _ = pick_statistics(statistics, wanted, checkpoint, default=DEFAULT_UNNORM_KEYS[robot])
    return key


class ChunkEnsembler:
    """Per-row temporal ensembling of action chunks (rows, chunk, 7) into (rows, 7)."""

    def __init__(self, horizon: int, temperature: float = ENSEMBLE_TEMPERATURE) -> None:
        if horizon < 1:
            raise ValueError(f"the ensemble horizon must be at least 1, got {horizon}")
        self.horizon = horizon
        self.temperature = temperature
        self._history: deque[FloatArray] = deque(maxlen=horizon)

    def reset(self) -> None:
        self._history.clear()

    def __call__(self, chunks: npt.ArrayLike) -> FloatArray:
        current = np.asarray(chunks, dtype=np.float64)
        if current.ndim != 3 or current.shape[1] < self.horizon:
            raise ValueError(
                f"expected chunks of shape (rows, >= {self.horizon}, dim), got {current.shape}"
            )
        if self._history and self._history[-1].shape[0] != current.shape[0]:
            self.reset()  # a new batch of episodes
        self._history.append(current)
        count = len(self._history)
        # the oldest prediction (k = 0) was made count - 1 steps ago: its entry for now is
        # at index count - 1; the newest's at index 0
        for_now = np.stack(
            [chunk[:, count - 1 - k] for k, chunk in enumerate(self._history)]
        )  # (count, rows, dim)
        weights = np.exp(-self.temperature * np.arange(count))
        weights /= weights.sum()
        ensembled: FloatArray = np.tensordot(weights, for_now, axes=1)
        return ensembled


class SpatialVLAStickyGripper:
    """Per-row openness (1 = open) -> SpatialVLA's sticky relative commands (+1 close)."""

    def __init__(self, repeat: int = STICKY_REPEAT_GOOGLE) -> None:
        if repeat < 1:
            raise ValueError(f"sticky repeat must be at least 1, got {repeat}")
        self.repeat = repeat
        self._reference: FloatArray | None = None
        self._held = np.zeros(0)
        self._count = np.zeros(0, dtype=np.int64)

    def reset(self, rows: int) -> None:
        self._reference = None
        self._held = np.zeros(rows)
        self._count = np.zeros(rows, dtype=np.int64)

    def __call__(self, openness: npt.ArrayLike) -> FloatArray:
        current = np.asarray(openness, dtype=np.float64).reshape(-1)
        if self._held.shape != current.shape:
            self.reset(current.shape[0])
        if self._reference is None:
            self._reference = current.copy()
        change = self._reference - current
        starting = (np.abs(change) > _CHANGE_THRESHOLD) & (self._count == 0)
        self._held = np.where(starting, change, self._held)
        self._reference = np.where(starting, current, self._reference)
        holding = starting | (self._count > 0)
        command: FloatArray = np.where(holding, self._held, change)
        self._count = np.where(holding, self._count + 1, 0)
        finished = self._count >= self.repeat
        self._count = np.where(finished, 0, self._count)
        self._held = np.where(finished, 0.0, self._held)
        return command


class SpatialVLAPostprocessor:
    """Decoded chunks (rows, chunk, 7) -> actions (rows, 7) in the declared conventions.
    Row i of every call is the same episode until `reset`."""

    def __init__(self, chunk_size: int, robot: Robot) -> None:
        self.ensembler = ChunkEnsembler(chunk_size)
        self.sticky = SpatialVLAStickyGripper() if robot == "google_robot" else None

    def reset(self, rows: int) -> None:
        self.ensembler.reset()
        if self.sticky is not None:
            self.sticky.reset(rows)

    def __call__(self, chunks: npt.ArrayLike) -> FloatArray:
        values = np.asarray(chunks, dtype=np.float64)
        if values.ndim != 3 or values.shape[2] != ACTION_DIM:
            raise ValueError(
                f"expected chunks of shape (rows, chunk, {ACTION_DIM}), got {values.shape}"
            )
        actions = self.ensembler(values)
        openness = actions[:, -1].copy()  # the gripper keeps it: not a view of actions
        actions[:, -1] = (
            absolute_from_openness(openness) if self.sticky is None else self.sticky(openness)
        )
        return actions
