"""Octo's policy-side rules as SimplerEnv evaluates it, in numpy: per-row image history, the
random key schedule, ensembling of overlapping action chunks, un-normalisation and the gripper.

Facts from simpler_env/policies/octo/octo_model.py and simpler_env/utils/action/action_ensemble.py
(simpler-env/SimplerEnv). Every class keeps one state per batch row, since row i of every act()
batch is the same episode between two resets, and a row can be restarted alone (upstream
restarts its policy when an episode's instruction changes).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.adapters.gripper import (
    STICKY_REPEAT_GOOGLE,
    StickyRelativeGripper,
    absolute_from_openness,
)
from refinevla_bench.policies.adapters.normalization import (
    MeanStdStatistics,
    unnormalize_mean_std,
)
from refinevla_bench.policies.protocol import ACTION_DIM, EpisodeKey, Robot

FloatArray = npt.NDArray[np.float64]
ImageArray = npt.NDArray[np.uint8]

IMAGE_SIZE = (256, 256)  # upstream resizes to 256x256 with TF lanczos3, antialiased
HISTORY_WINDOW = 2  # frames of image history the model sees
PRED_HORIZON = 4  # actions per predicted chunk
_KEY_SEED_BITS = 31  # seeds stay non-negative int32 for jax.random.PRNGKey


@dataclass(frozen=True)
class OctoSetup:
    """What SimplerEnv's `policy_setup` fixes per robot."""

    dataset: str  # the statistics entry in the checkpoint's dataset_statistics
    ensemble_temperature: float
    sticky_repeat: int | None  # None: absolute gripper; else sticky relative with this repeat


OCTO_SETUPS: dict[Robot, OctoSetup] = {
    "widowx": OctoSetup("bridge_dataset", ensemble_temperature=0.0, sticky_repeat=None),
    "google_robot": OctoSetup(
        "fractal20220817_data", ensemble_temperature=0.0, sticky_repeat=STICKY_REPEAT_GOOGLE
    ),
}


@dataclass(frozen=True)
class HistoryWindow:
    """One row's model input: frames oldest first and the float timestep pad mask."""

    frames: ImageArray  # (n, height, width, 3), 1 <= n <= HISTORY_WINDOW
    pad_mask: FloatArray  # (n,): 1.0 for a real frame, 0.0 for padding


class ImageHistory:
    """The last `window` frames per row, as upstream keeps them.

    Upstream does not pad a short history: the first step of an episode feeds a window of one
    frame, the next ones a window of two. Its pad mask zeroes the leading `window - filled`
    entries, none since the window holds only filled frames, so every entry is 1.0; the mask
    is float (upstream notes it must not be bool)."""

    def __init__(self, window: int = HISTORY_WINDOW) -> None:
        self.window = window
        self._frames: list[deque[ImageArray]] = []

    def reset(self, rows: int) -> None:
        self._frames = [deque(maxlen=self.window) for _ in range(rows)]

    def reset_row(self, row: int) -> None:
        self._frames[row].clear()

    def push(self, images: ImageArray) -> list[HistoryWindow]:
        if images.shape[0] != len(self._frames):
            raise ValueError(
                f"a batch of {images.shape[0]} images after a reset for {len(self._frames)} rows"
            )
        windows = []
        for frames, image in zip(self._frames, images, strict=True):
            frames.append(image)
            windows.append(HistoryWindow(np.stack(frames), np.ones(len(frames))))
        return windows


def step_seed(seed: int, episode: EpisodeKey, step: int) -> int:
    """The random key seed for one episode's step: fixed by (policy seed, episode, step) alone.

    Upstream draws a new jax key every step by splitting one generator seeded with
    `--octo-init-rng` that runs on across episodes, so an episode's keys depend on the episodes
    before it. Here each episode restarts its own schedule, so resumed and batched runs act the
    same as uninterrupted ones while every step still gets a different key."""
    text = f"octo/{seed}/{episode.task}/{episode.episode_id}/{episode.seed}/{step}".encode()
    digest = int.from_bytes(hashlib.sha256(text).digest()[:8], "little")
    return digest % (1 << _KEY_SEED_BITS)


class KeySchedule:
    """Per-row step counters turned into key seeds; steps count from the batch's reset."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._steps: list[int] = []

    def reset(self, rows: int) -> None:
        self._steps = [0] * rows

    def next(self, episodes: Sequence[EpisodeKey]) -> list[int]:
        """Seeds for this step; rows without an episode key are told apart by their index."""
        if episodes and len(episodes) != len(self._steps):
            raise ValueError(f"{len(episodes)} episode keys for {len(self._steps)} rows")
        keys = episodes or [EpisodeKey("", row, 0) for row in range(len(self._steps))]
        seeds = [
            step_seed(self.seed, key, step) for key, step in zip(keys, self._steps, strict=True)
        ]
        self._steps = [step + 1 for step in self._steps]
        return seeds


def ensemble_weights(count: int, temperature: float) -> FloatArray:
    """Normalised weights for `count` overlapping predictions, OLDEST first: exp(-temp * i).

    With a positive temperature the newer predictions weigh exponentially less; upstream uses
    0.0 on both robots, a plain mean."""
    weights = np.exp(-temperature * np.arange(count, dtype=np.float64))
    normalised: FloatArray = weights / weights.sum()
    return normalised


class ChunkEnsembler:
    """Averages, per row, what the last `horizon` chunks predicted for the current step.

    The chunk predicted i steps ago contributes its action at index i; the oldest chunk kept is
    `horizon - 1` steps old."""

    def __init__(self, horizon: int = PRED_HORIZON, temperature: float = 0.0) -> None:
        self.horizon = horizon
        self.temperature = temperature
        self._chunks: list[deque[FloatArray]] = []

    def reset(self, rows: int) -> None:
        self._chunks = [deque(maxlen=self.horizon) for _ in range(rows)]

    def reset_row(self, row: int) -> None:
        self._chunks[row].clear()

    def push(self, chunks: npt.ArrayLike) -> FloatArray:
        """(rows, horizon, dim) new predictions -> (rows, dim) ensembled actions."""
        array = np.asarray(chunks, dtype=np.float64)
        if array.ndim != 3 or array.shape[:2] != (len(self._chunks), self.horizon):
            raise ValueError(
                f"chunks of shape {array.shape}, expected ({len(self._chunks)}, {self.horizon}, "
                "action dim)"
            )
        out = np.empty((array.shape[0], array.shape[2]))
        for row, (history, chunk) in enumerate(zip(self._chunks, array, strict=True)):
            history.append(chunk)
            count = len(history)
            # oldest first: the chunk made count-1 steps ago supplies its action at count-1
            aligned = np.stack([past[count - 1 - age] for age, past in enumerate(history)])
            out[row] = ensemble_weights(count, self.temperature) @ aligned
        return out


class OctoActions:
    """Ensembled normalised actions -> the 7 numbers sent on: un-normalised (z * std + mean),
    then the gripper openness mapped per robot.

    Upstream un-normalises all 7 numbers and ignores any mask in the statistics; a mask a
    checkpoint records is honoured here, as octo's own `sample_actions` does (without one,
    the two agree).

    WidowX: absolute, open when openness > 0.5. Google Robot: sticky relative (previous minus
    current openness, held for `sticky_repeat` steps once it exceeds 0.5)."""

    def __init__(self, statistics: MeanStdStatistics, sticky_repeat: int | None) -> None:
        self.statistics = statistics
        self.sticky_repeat = sticky_repeat
        self._sticky: list[StickyRelativeGripper] = []

    def reset(self, rows: int) -> None:
        repeat = self.sticky_repeat
        self._sticky = (
            [] if repeat is None else [StickyRelativeGripper(repeat) for _ in range(rows)]
        )

    def reset_row(self, row: int) -> None:
        if self._sticky:
            self._sticky[row] = StickyRelativeGripper(self._sticky[row].repeat)

    def __call__(self, normalized: npt.ArrayLike) -> FloatArray:
        raw = unnormalize_mean_std(normalized, self.statistics)
        if raw.ndim != 2 or raw.shape[1] != ACTION_DIM:
            raise ValueError(f"actions of shape {raw.shape}, expected (rows, {ACTION_DIM})")
        actions = raw.copy()
        openness = raw[:, 6]
        if self.sticky_repeat is None:
            actions[:, 6] = absolute_from_openness(openness)
        else:
            if len(self._sticky) != raw.shape[0]:
                raise ValueError(f"{raw.shape[0]} rows after a reset for {len(self._sticky)}")
            actions[:, 6] = [
                sticky(value[None])[0] for sticky, value in zip(self._sticky, openness, strict=True)
            ]
        return actions
