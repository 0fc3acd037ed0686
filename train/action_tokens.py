"""Continuous actions as discrete tokens: per-dimension uniform bins over the 1st-99th
percentile range of the training split, so rare outliers do not stretch the bins.

The statistics travel with every checkpoint: a model trained on one split must decode its
tokens with that split's ranges, never with the evaluation data's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]
BinArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ActionStats:
    """Per action dimension: the clipping range (q01, q99) and moments for reports."""

    q01: tuple[float, ...]
    q99: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        lengths = {len(self.q01), len(self.q99), len(self.mean), len(self.std)}
        if len(lengths) != 1 or not self.q01:
            raise ValueError(f"action statistics need equal, non-zero lengths, got {lengths}")
        if any(low > high for low, high in zip(self.q01, self.q99, strict=True)):
            raise ValueError("action statistics have q01 above q99")

    @property
    def action_dim(self) -> int:
        return len(self.q01)

    @classmethod
    def from_actions(cls, actions: FloatArray) -> ActionStats:
        """Statistics of an (N, D) array of actions, one row per step."""
        values = np.asarray(actions, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] == 0:
            raise ValueError(f"expected a non-empty (N, D) array of actions, got {values.shape}")
        return cls(
            q01=_floats(np.quantile(values, 0.01, axis=0)),
            q99=_floats(np.quantile(values, 0.99, axis=0)),
            mean=_floats(values.mean(axis=0)),
            std=_floats(values.std(axis=0)),
        )

    def to_json(self) -> dict[str, Any]:
        return {key: list(getattr(self, key)) for key in _STAT_KEYS}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> ActionStats:
        try:
            return cls(*(tuple(float(v) for v in payload[key]) for key in _STAT_KEYS))
        except (KeyError, TypeError) as error:
            raise ValueError(f"action statistics need lists {_STAT_KEYS}: {error}") from error


_STAT_KEYS = ("q01", "q99", "mean", "std")


def _floats(values: FloatArray) -> tuple[float, ...]:
    return tuple(float(value) for value in values)


class ActionTokenizer:
    """Maps each action number to one of `n_bins` tokens and back to the bin centre.

    Values are clipped to [q01, q99] first; a dimension whose range is empty (a constant in
    the training data) always maps to bin 0 and decodes to that constant.
    """

    def __init__(self, stats: ActionStats, n_bins: int = 256) -> None:
        if n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {n_bins}")
        self.stats = stats
        self.n_bins = n_bins
        self.token_strings: list[str] = [f"<act_{index}>" for index in range(n_bins)]
        self._low = np.asarray(stats.q01, dtype=np.float64)
        self._high = np.asarray(stats.q99, dtype=np.float64)
        self._width = (self._high - self._low) / n_bins

    @property
    def action_dim(self) -> int:
        return self.stats.action_dim

    def bin_width(self) -> FloatArray:
        """Width of one bin per dimension (0 for constant dimensions)."""
        return self._width.copy()

    def bins(self, actions: FloatArray) -> BinArray:
        """(N, D) float actions -> (N, D) bin indices in [0, n_bins)."""
        values = self._checked(np.asarray(actions, dtype=np.float64))
        clipped = np.clip(values, self._low, self._high)
        safe_width = np.where(self._width > 0, self._width, 1.0)
        raw = np.floor((clipped - self._low) / safe_width)
        indices = np.where(self._width > 0, raw, 0.0)
        return np.clip(indices, 0, self.n_bins - 1).astype(np.int64)

    def values(self, bins: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float64]:
        """(N, D) bin indices -> (N, D) float bin centres."""
        indices = self._checked(np.asarray(bins))
        if indices.size and (indices.min() < 0 or indices.max() >= self.n_bins):
            raise ValueError(f"bin indices must lie in [0, {self.n_bins})")
        return self._low + (indices.astype(np.float64) + 0.5) * self._width

    def _checked(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if array.ndim != 2 or array.shape[1] != self.action_dim:
            raise ValueError(f"expected shape (N, {self.action_dim}), got {array.shape}")
        return array
