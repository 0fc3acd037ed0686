"""Un-normalising model outputs with the statistics of the dataset a checkpoint was trained on.

Two schemes are in use: bounds (OpenVLA, SpatialVLA: [-1, 1] mapped onto [q01, q99] per
dimension) and mean/std (Octo, pi0). A mask leaves dimensions that were never normalised (the
gripper, in the published statistics) as the model produced them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BoundsStatistics:
    """Per-dimension q01/q99 bounds; `mask[i]` False leaves dimension i untouched."""

    low: FloatArray
    high: FloatArray
    mask: npt.NDArray[np.bool_]

    @classmethod
    def from_mapping(cls, stats: Mapping[str, Sequence[float]], dim: int) -> BoundsStatistics:
        """From a published statistics entry ({"q01": [...], "q99": [...], "mask": [...]})."""
        low = np.asarray(stats["q01"], dtype=np.float64)
        high = np.asarray(stats["q99"], dtype=np.float64)
        mask = np.asarray(stats.get("mask", [True] * len(low)), dtype=bool)
        _check_dims({"q01": low, "q99": high, "mask": mask}, dim)
        return cls(low, high, mask)


@dataclass(frozen=True)
class MeanStdStatistics:
    """Per-dimension mean and standard deviation; `mask[i]` False leaves dimension i untouched."""

    mean: FloatArray
    std: FloatArray
    mask: npt.NDArray[np.bool_]

    @classmethod
    def from_mapping(cls, stats: Mapping[str, Sequence[float]], dim: int) -> MeanStdStatistics:
        mean = np.asarray(stats["mean"], dtype=np.float64)
        std = np.asarray(stats["std"], dtype=np.float64)
        mask = np.asarray(stats.get("mask", [True] * len(mean)), dtype=bool)
        _check_dims({"mean": mean, "std": std, "mask": mask}, dim)
        return cls(mean, std, mask)


def _check_dims(arrays: Mapping[str, npt.NDArray[np.generic]], dim: int) -> None:
    for name, array in arrays.items():
        if array.shape != (dim,):
            raise HarnessError(
                f"action statistics '{name}' has shape {array.shape}, expected ({dim},)",
                "use the statistics file that came with the checkpoint",
            )


def unnormalize_bounds(normalized: npt.ArrayLike, stats: BoundsStatistics) -> FloatArray:
    """[-1, 1] -> [q01, q99] where the mask is set (values outside [-1, 1] extrapolate)."""
    values = np.asarray(normalized, dtype=np.float64)
    scaled = 0.5 * (values + 1.0) * (stats.high - stats.low) + stats.low
    result: FloatArray = np.where(stats.mask, scaled, values)
    return result


def unnormalize_mean_std(normalized: npt.ArrayLike, stats: MeanStdStatistics) -> FloatArray:
    """z -> z * std + mean where the mask is set."""
    values = np.asarray(normalized, dtype=np.float64)
    result: FloatArray = np.where(stats.mask, values * stats.std + stats.mean, values)
    return result


def pick_statistics(
    available: Mapping[str, object],
    wanted: str | None,
    checkpoint: str,
    default: str | None = None,
) -> tuple[str, object]:
    """The statistics entry a checkpoint holds under `wanted`; unnamed, the `default` entry (the
    robot's SimplerEnv choice) when the checkpoint has it, else its only one."""
    if wanted is None and default is not None and default in available:
        wanted = default
    if wanted is None:
        if len(available) == 1:
            return next(iter(available.items()))
        raise HarnessError(
            f"checkpoint {checkpoint} holds statistics for {', '.join(sorted(available))}",
            "pick one with --policy-arg unnorm_key=NAME",
        )
    if wanted not in available:
        raise HarnessError(
            f"checkpoint {checkpoint} has no statistics '{wanted}' "
            f"(it has: {', '.join(sorted(available)) or 'none'})",
            "pass --policy-arg unnorm_key=NAME with one of those",
        )
    return wanted, available[wanted]
