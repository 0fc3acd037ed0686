"""Per-episode feature statistics, as LeRobot v2.1 keeps them in meta/episodes_stats.jsonl.

LeRobot normalises actions and states from these numbers when it trains, so their layout must
match its own: min/max/mean/std over the frames of one episode plus the frame count, each a
list of the feature's shape; camera statistics per colour channel in [0, 1], shape (3, 1, 1).
Cameras are measured over every frame (LeRobot samples a subset; the numbers agree closely).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt


def numeric_stats(values: npt.NDArray[Any]) -> dict[str, Any]:
    """Statistics over axis 0 of (frames, *shape) values; (frames,) gives shape (1,)."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    return {
        "min": data.min(axis=0).tolist(),
        "max": data.max(axis=0).tolist(),
        "mean": data.mean(axis=0).tolist(),
        "std": data.std(axis=0).tolist(),
        "count": [int(data.shape[0])],
    }


def camera_stats(frames: npt.NDArray[np.uint8]) -> dict[str, Any]:
    """Per-channel statistics of (frames, height, width, 3) uint8 images, scaled to [0, 1]."""
    pixels = frames.reshape(-1, frames.shape[-1]).astype(np.float64) / 255.0

    def per_channel(channel_values: npt.NDArray[np.float64]) -> list[list[list[float]]]:
        return [[[float(value)]] for value in channel_values]

    return {
        "min": per_channel(pixels.min(axis=0)),
        "max": per_channel(pixels.max(axis=0)),
        "mean": per_channel(pixels.mean(axis=0)),
        "std": per_channel(pixels.std(axis=0)),
        "count": [int(frames.shape[0])],
    }


def episode_stats(
    numeric: Mapping[str, npt.NDArray[Any]], cameras: Mapping[str, npt.NDArray[np.uint8]]
) -> dict[str, dict[str, Any]]:
    stats = {name: numeric_stats(values) for name, values in numeric.items()}
    stats.update({name: camera_stats(frames) for name, frames in cameras.items()})
    return stats
