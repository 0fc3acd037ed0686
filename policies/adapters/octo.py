"""The `octo` policy: Octo (octo-base, octo-small; JAX) evaluated the way SimplerEnv does.

Policy side, as simpler_env/policies/octo/octo_model.py does it: 256x256 images, a history
window of two frames, chunks of 4 normalised actions ensembled over their overlaps, a new random
key every step, mean/std un-normalisation with the statistics of `bridge_dataset` (WidowX) or
`fractal20220817_data` (Google Robot), roll/pitch/yaw rotation deltas (converted by the
harness), and the gripper binarised (WidowX) or sent as a sticky relative command (Google).

Published numbers: SimplerEnv reports Octo as the mean over three policy seeds, 0, 2 and 4
(its `--octo-init-rng`). Run once per `--policy-arg seed=0|2|4` and average the three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.normalization import MeanStdStatistics, pick_statistics
from refinevla_bench.policies.adapters.octo_decoding import (
    IMAGE_SIZE,
    OCTO_SETUPS,
    PRED_HORIZON,
    ChunkEnsembler,
    HistoryWindow,
    ImageHistory,
    KeySchedule,
    OctoActions,
)
from refinevla_bench.policies.adapters.octo_model import DEFAULT_CHECKPOINT, OctoRunner
from refinevla_bench.policies.adapters.robots import controller_gripper, parse_robot
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    ObservationBatch,
    PolicyConventions,
    Robot,
)


class ChunkSampler(Protocol):
    """What the policy needs from a model runner (OctoRunner, or a fake in tests)."""

    def action_statistics(self) -> Mapping[str, Mapping[str, Sequence[float]]]: ...

    def set_instructions(self, instructions: Sequence[str]) -> None: ...

    def set_instruction(self, row: int, instruction: str) -> None: ...

    def sample(self, windows: Sequence[HistoryWindow], seeds: Sequence[int]) -> npt.ArrayLike:
        """Normalised action chunks, (rows, PRED_HORIZON, ACTION_DIM)."""
        ...


def octo_conventions(robot: Robot | None) -> PolicyConventions:
    """Roll/pitch/yaw deltas; upstream resizes with TF lanczos3 (antialiased), PIL's LANCZOS
    is the nearest harness method."""
    return PolicyConventions(
        rotation="roll_pitch_yaw",
        gripper=controller_gripper(robot),
        image_size=IMAGE_SIZE,
        resize="lanczos",
        robot=robot,
    )


class OctoPolicy:
    """Octo from a local checkpoint directory or a hub id (default hf://rail-berkeley/octo-base).

    `seed` fixes the random keys: each episode draws its own from (seed, episode, step), so a
    run's actions do not depend on episode order. `unnorm_key` overrides the robot's statistics
    entry for fine-tuned checkpoints."""

    # a placeholder for `policies list`: each instance declares its robot's conventions
    conventions: PolicyConventions = octo_conventions(None)

    def __init__(
        self,
        robot: str = "widowx",
        checkpoint: str = DEFAULT_CHECKPOINT,
        seed: int = 0,
        unnorm_key: str | None = None,
    ) -> None:
        parsed = parse_robot(robot)
        self._setup(OctoRunner(checkpoint), parsed, seed, unnorm_key, checkpoint)

    @classmethod
    def with_runner(
        cls,
        runner: ChunkSampler,
        robot: str = "widowx",
        seed: int = 0,
        unnorm_key: str | None = None,
    ) -> OctoPolicy:
        """A policy around an already built runner (tests pass a fake one)."""
        policy = cls.__new__(cls)
        policy._setup(runner, parse_robot(robot), seed, unnorm_key, "the given runner")
        return policy

    def _setup(
        self,
        runner: ChunkSampler,
        robot: Robot,
        seed: int,
        unnorm_key: str | None,
        checkpoint: str,
    ) -> None:
        setup = OCTO_SETUPS[robot]
        name, stats = pick_statistics(
            runner.action_statistics(), unnorm_key or setup.dataset, checkpoint
        )
        if not isinstance(stats, Mapping):
            raise HarnessError(
                f"checkpoint {checkpoint} statistics '{name}' are not a mapping of mean and std",
                "use a checkpoint saved by octo (dataset_statistics.json)",
            )
        self.conventions = octo_conventions(robot)
        self.unnorm_key = name
        self._runner = runner
        self._history = ImageHistory()
        self._keys = KeySchedule(seed)
        self._ensembler = ChunkEnsembler(PRED_HORIZON, setup.ensemble_temperature)
        self._actions = OctoActions(
            MeanStdStatistics.from_mapping(stats, ACTION_DIM), setup.sticky_repeat
        )
        self._instructions: list[str] = []

    def reset(self, instructions: Sequence[str]) -> None:
        self._instructions = list(instructions)
        self._runner.set_instructions(self._instructions)
        rows = len(self._instructions)
        self._history.reset(rows)
        self._keys.reset(rows)
        self._ensembler.reset(rows)
        self._actions.reset(rows)

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        if observation.batch_size != len(self._instructions):
            raise ValueError(
                f"a batch of {observation.batch_size} rows after a reset for "
                f"{len(self._instructions)}"
            )
        self._follow_instructions(observation.instructions)
        windows = self._history.push(observation.images)
        seeds = self._keys.next(observation.episodes)
        chunks = np.asarray(self._runner.sample(windows, seeds), dtype=np.float64)
        return self._actions(self._ensembler.push(chunks))

    def _follow_instructions(self, instructions: Sequence[str]) -> None:
        """Upstream restarts its policy when an episode's instruction changes (multi-step
        tasks): history, ensembling and sticky gripper start over; the keys run on."""
        for row, text in enumerate(instructions):
            if text != self._instructions[row]:
                self._instructions[row] = text
                self._runner.set_instruction(row, text)
                self._history.reset_row(row)
                self._ensembler.reset_row(row)
                self._actions.reset_row(row)
