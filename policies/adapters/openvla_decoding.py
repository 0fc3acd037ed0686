"""OpenVLA's action tokens -> actions in the harness's conventions (pure numpy).

OpenVLA reuses the last vocabulary ids as 256 action bins: its published `predict_action`
maps token id t to bin `vocab - t - 1` (vocab = the Llama text vocabulary without the
padding rows it was rounded up with), clipped to the 255 bin centres of linspace(-1, 1, 256),
then un-normalises [-1, 1] onto the dataset's [q01, q99] where the statistics' mask is set
(the gripper is not: it stays openness, 1 = open). SimplerEnv's evaluation then sends roll,
pitch and yaw on (declared `roll_pitch_yaw`; the harness converts) and maps the openness to an
absolute command on WidowX (open > 0.5) or to a sticky relative one on Google Robot.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.gripper import (
    StickyRelativeGripper,
    absolute_from_openness,
)
from refinevla_bench.policies.adapters.normalization import (
    BoundsStatistics,
    pick_statistics,
    unnormalize_bounds,
)
from refinevla_bench.policies.protocol import ACTION_DIM, Robot

FloatArray = npt.NDArray[np.float64]

# The statistics SimplerEnv's OpenVLA evaluation un-normalises with on each robot.
DEFAULT_UNNORM_KEYS: Mapping[Robot, str] = {
    "widowx": "bridge_orig",
    "google_robot": "fractal20220817_data",
}


def bin_centres(n_bins: int) -> FloatArray:
    """The n_bins - 1 centres between the edges linspace(-1, 1, n_bins)."""
    edges = np.linspace(-1.0, 1.0, n_bins)
    centres: FloatArray = (edges[:-1] + edges[1:]) / 2.0
    return centres


def normalized_actions(token_ids: npt.ArrayLike, action_vocab_size: int, n_bins: int) -> FloatArray:
    """Token ids -> values in [-1, 1]: bin `action_vocab_size - id - 1`, clipped to the bins."""
    ids = np.asarray(token_ids, dtype=np.int64)
    centres = bin_centres(n_bins)
    bins = np.clip(action_vocab_size - ids - 1, 0, centres.shape[0] - 1)
    values: FloatArray = centres[bins]
    return values


def select_unnorm_key(
    norm_stats: Mapping[str, object], wanted: str | None, robot: Robot, checkpoint: str
) -> str:
    """`wanted` when given; else the robot's SimplerEnv default when the checkpoint has it;
    else the checkpoint's only statistics (several: refused, naming them)."""
    key, _ = pick_statistics(norm_stats, wanted, checkpoint, default=DEFAULT_UNNORM_KEYS[robot])
    return key


def action_statistics(norm_stats: Mapping[str, object], key: str) -> BoundsStatistics:
    """The q01/q99/mask bounds of `norm_stats[key]["action"]` (the published layout)."""
    entry = norm_stats[key]
    action = entry.get("action") if isinstance(entry, Mapping) else None
    if not isinstance(action, Mapping) or not {"q01", "q99"} <= action.keys():
        raise HarnessError(
            f"statistics '{key}' hold no action q01/q99 bounds",
            "use the checkpoint's published config.json (norm_stats.<key>.action.q01/q99)",
        )
    return BoundsStatistics.from_mapping(action, ACTION_DIM)


class OpenVLADecoder:
    """Generated action tokens (rows, 7) -> actions (rows, 7): translation and roll/pitch/yaw
    un-normalised, gripper absolute (+1 open) on WidowX, sticky relative (+1 close, held for
    15 steps) on Google Robot. Row i of every call is the same episode until `reset`."""

    def __init__(
        self, action_vocab_size: int, n_bins: int, stats: BoundsStatistics, robot: Robot
    ) -> None:
        self.action_vocab_size = action_vocab_size
        self.n_bins = n_bins
        self.stats = stats
        self.sticky = StickyRelativeGripper() if robot == "google_robot" else None

    def reset(self, rows: int) -> None:
        if self.sticky is not None:
            self.sticky.reset(rows)

    def __call__(self, token_ids: npt.ArrayLike) -> FloatArray:
        ids = np.asarray(token_ids, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] != ACTION_DIM:
            raise ValueError(f"expected ({ACTION_DIM},) token ids per row, got {ids.shape}")
        actions = unnormalize_bounds(
            normalized_actions(ids, self.action_vocab_size, self.n_bins), self.stats
        )
        openness = actions[:, -1].copy()  # the gripper keeps it: not a view of actions
        actions[:, -1] = (
            absolute_from_openness(openness) if self.sticky is None else self.sticky(openness)
        )
        return actions
