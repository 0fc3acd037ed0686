"""The `zero` policy: never moves, so a run measures the harness and simulator alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.adapters.robots import controller_gripper, parse_robot
from refinevla_bench.policies.protocol import ACTION_DIM, ObservationBatch, PolicyConventions


class ZeroPolicy:
    """Outputs all-zero actions: no arm motion; the gripper at the midpoint of its range on
    WidowX (absolute), unchanged on Google Robot (relative: zero keeps the target)."""

    conventions = PolicyConventions()
    stateless: ClassVar[bool] = True  # rows of many clients may share one act() when served

    def __init__(self, robot: str | None = None) -> None:
        if robot is not None:
            self.conventions = PolicyConventions(gripper=controller_gripper(parse_robot(robot)))

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        return np.zeros((observation.batch_size, ACTION_DIM), dtype=np.float32)
