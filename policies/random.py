"""The `random` policy: seeded uniform actions, a floor that any learned policy must beat."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.adapters.robots import controller_gripper, parse_robot
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    EpisodeKey,
    ObservationBatch,
    PolicyConventions,
)


def episode_rng(seed: int, episode: EpisodeKey) -> np.random.Generator:
    """A generator fixed by (seed, task, episode id, episode seed) alone, not by run order."""
    text = f"{seed}/{episode.task}/{episode.episode_id}/{episode.seed}".encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text).digest()[:8], "little"))


class RandomPolicy:
    """Uniform translation (+-max_translation m), axis-angle rotation (+-max_rotation rad) and
    a random open/close gripper (in the robot's own gripper convention); each episode draws
    from its own seeded generator."""

    conventions = PolicyConventions()

    def __init__(
        self,
        seed: int = 0,
        max_translation: float = 0.02,
        max_rotation: float = 0.1,
        robot: str | None = None,
    ):
        if robot is not None:
            self.conventions = PolicyConventions(gripper=controller_gripper(parse_robot(robot)))
        self.seed = seed
        self.max_translation = max_translation
        self.max_rotation = max_rotation
        self._rngs: dict[EpisodeKey, np.random.Generator] = {}

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions
        self._rngs = {}

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        if len(observation.episodes) != observation.batch_size:
            raise ValueError("the random policy needs episode keys to stay deterministic")
        actions = np.empty((observation.batch_size, ACTION_DIM))
        for row, episode in enumerate(observation.episodes):
            rng = self._rngs.setdefault(episode, episode_rng(self.seed, episode))
            actions[row, :3] = rng.uniform(-self.max_translation, self.max_translation, 3)
            actions[row, 3:6] = rng.uniform(-self.max_rotation, self.max_rotation, 3)
            actions[row, 6] = rng.choice([-1.0, 1.0])
        return actions
