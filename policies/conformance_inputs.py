"""Synthetic episodes for the conformance checker: camera-sized random images, the suite's
instructions, plausible privileged state and proprio, all fixed by one seed so two runs see the
same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.observations import for_policy
from refinevla_bench.harness.suites import SuiteSpec
from refinevla_bench.policies.protocol import (
    EpisodeKey,
    ObservationBatch,
    PolicyConventions,
)

FloatArray = npt.NDArray[np.float64]

# a gripper pointing down above the table, objects 10-20 cm in front of the base (metres)
_TCP_POSITION = (0.25, 0.0, 0.15)
_TABLE_HEIGHT = 0.02


@dataclass(frozen=True)
class SyntheticEpisodes:
    """`batch` parallel episodes of `steps` control steps; `observation` slices any rows."""

    instructions: tuple[str, ...]
    episodes: tuple[EpisodeKey, ...]
    images: tuple[npt.NDArray[np.uint8], ...]  # one (batch, height, width, 3) array per step
    states: tuple[Mapping[str, FloatArray], ...]  # one per step

    @property
    def steps(self) -> int:
        return len(self.images)

    def observation(
        self,
        step: int,
        rows: Sequence[int],
        conventions: PolicyConventions,
        privileged: bool,
    ) -> ObservationBatch:
        """Rows `rows` at `step`, resized as the policy declared; state only if it asked."""
        picked = list(rows)
        state = {key: value[picked] for key, value in self.states[step].items()}
        observation = ObservationBatch(
            images=self.images[step][picked],
            instructions=tuple(self.instructions[row] for row in picked),
            episodes=tuple(self.episodes[row] for row in picked),
            state=state if privileged else {},
            proprio={
                "tcp_pose": state["tcp_pose"],
                "gripper_opening": 1.0 - state["source_grasped"],
            },
        )
        return for_policy(observation, conventions)


def _unit_quaternions(rng: np.random.Generator, batch: int) -> FloatArray:
    quaternions = rng.normal(size=(batch, 4))
    normalised: FloatArray = quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True)
    return normalised


def _pose(
    rng: np.random.Generator, centre: Sequence[float], spread: float, batch: int
) -> FloatArray:
    positions = np.asarray(centre) + rng.uniform(-spread, spread, size=(batch, 3))
    return np.concatenate([positions, _unit_quaternions(rng, batch)], axis=1)


def synthetic_state(rng: np.random.Generator, batch: int) -> dict[str, FloatArray]:
    """Every PRIVILEGED_STATE_KEYS entry with the documented shape and plausible values."""
    return {
        "tcp_pose": _pose(rng, _TCP_POSITION, 0.03, batch),
        "source_pose": _pose(rng, (0.3, 0.05, _TABLE_HEIGHT), 0.05, batch),
        "target_pose": _pose(rng, (0.3, -0.1, _TABLE_HEIGHT), 0.05, batch),
        "source_size": rng.uniform(0.02, 0.08, size=(batch, 3)),
        "target_size": rng.uniform(0.05, 0.15, size=(batch, 3)),
        "source_grasped": np.zeros(batch),
    }


def synthetic_episodes(suite: SuiteSpec, *, seed: int, batch: int, steps: int) -> SyntheticEpisodes:
    """Rows cycle through the suite's tasks; each row is its own episode of the grid."""
    rng = np.random.default_rng(seed)
    tasks = [suite.tasks[row % len(suite.tasks)] for row in range(batch)]
    shape = (batch, suite.camera.height, suite.camera.width, 3)
    return SyntheticEpisodes(
        instructions=tuple(task.instruction for task in tasks),
        episodes=tuple(
            EpisodeKey(task=task.name, episode_id=row, seed=seed) for row, task in enumerate(tasks)
        ),
        images=tuple(rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(steps)),
        states=tuple(synthetic_state(rng, batch) for _ in range(steps)),
    )
