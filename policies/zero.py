"""The `zero` policy: never moves, so a run measures the harness and simulator alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.protocol import ACTION_DIM, ObservationBatch, PolicyConventions


class ZeroPolicy:
    """Outputs all-zero actions: no arm motion, gripper at the midpoint of its range."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions()
    stateless: ClassVar[bool] = True  # rows of many clients may share one act() when served

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        return np.zeros((observation.batch_size, ACTION_DIM), dtype=np.float32)
