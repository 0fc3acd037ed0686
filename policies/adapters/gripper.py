"""Gripper commands from models trained on absolute open/close labels.

WidowX's controller takes an absolute command (+1 open, -1 closed). Google Robot's takes a
relative one (+1 close, -1 open, small values keep the last target); upstream evaluates models
with absolute labels there by sending the change in openness (previous - current) and, once a
change exceeds 0.5, repeating it for a fixed number of steps ("sticky gripper", 15 for OpenVLA
and Octo on Google Robot).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

STICKY_REPEAT_GOOGLE = 15
_CHANGE_THRESHOLD = 0.5


def absolute_from_openness(openness: npt.ArrayLike, threshold: float = 0.5) -> FloatArray:
    """Openness in [0, 1] (1 = open) -> +1 open / -1 closed, binarised at `threshold`."""
    values = np.asarray(openness, dtype=np.float64)
    result: FloatArray = np.where(values > threshold, 1.0, -1.0)
    return result


class StickyRelativeGripper:
    """Per-row state turning openness (1 = open) into sticky relative commands (+1 close).

    Row i of every batch is the same episode between two `reset` calls, as the runner
    guarantees. The first step of an episode sends 0 (no change)."""

    def __init__(self, repeat: int = STICKY_REPEAT_GOOGLE) -> None:
        if repeat < 1:
            raise ValueError(f"sticky repeat must be at least 1, got {repeat}")
        self.repeat = repeat
        self._previous: FloatArray | None = None
        self._held = np.zeros(0)
        self._count = np.zeros(0, dtype=np.int64)

    def reset(self, rows: int) -> None:
        self._previous = None
        self._held = np.zeros(rows)
        self._count = np.zeros(rows, dtype=np.int64)

    def __call__(self, openness: npt.ArrayLike) -> FloatArray:
        # a copy: the caller may overwrite its array (the action's gripper column) afterwards
        current = np.array(openness, dtype=np.float64).reshape(-1)
        if self._held.shape != current.shape:
            self.reset(current.shape[0])
        change = np.zeros_like(current) if self._previous is None else self._previous - current
        self._previous = current
        starting = (np.abs(change) > _CHANGE_THRESHOLD) & (self._count == 0)
        self._held = np.where(starting, change, self._held)
        holding = starting | (self._count > 0)
        command = np.where(holding, self._held, change)
        self._count = np.where(holding, self._count + 1, 0)
        finished = self._count >= self.repeat
        self._count = np.where(finished, 0, self._count)
        self._held = np.where(finished, 0.0, self._held)
        return command
