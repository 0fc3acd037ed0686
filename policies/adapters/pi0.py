"""The `pi0` policy: transformers' PI0 (flow-matching action expert on PaliGemma) in the harness.

A pi0 fine-tuned for SimplerEnv predicts chunks of [dx, dy, dz, droll, dpitch, dyaw, openness];
the adapter executes the first `action_horizon` actions of each chunk before asking again (as
SimplerEnv's pi0 evaluation does), un-normalises with the statistics in the checkpoint's
processor_config.json and maps the openness to the robot's gripper command. The denoising noise
comes from a generator per episode, seeded from `seed` and the episode key, so runs repeat and a
row acts the same alone or in a batch. `checkpoint=tiny:random` is a tiny random model built
locally: the whole path runs on a CPU without a download.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.choices import one_of
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.framework import family_environment_fix, import_framework
from refinevla_bench.policies.adapters.pi0_decoding import (
    Pi0ActionDecoder,
    check_action_horizon,
    model_state,
    parse_state_encoding,
)
from refinevla_bench.policies.adapters.robots import controller_gripper, parse_robot
from refinevla_bench.policies.protocol import (
    PROPRIO_KEYS,
    EpisodeKey,
    ObservationBatch,
    PolicyConventions,
    RotationFormat,
)
from refinevla_bench.policies.random import episode_rng

FAMILY = "pi0"
ROTATIONS: tuple[RotationFormat, ...] = ("roll_pitch_yaw", "axis_angle")
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")


class Pi0Policy:
    """Action chunks from a PI0 checkpoint, executed `action_horizon` steps at a time."""

    # A placeholder for `policies list`: each instance declares its robot's gripper handling.
    conventions: PolicyConventions = PolicyConventions(
        rotation="roll_pitch_yaw", gripper="absolute"
    )

    def __init__(
        self,
        checkpoint: str,
        robot: str = "widowx",
        rotation: str = "roll_pitch_yaw",
        action_horizon: int = 4,
        state: str = "pos_rpy_gripper",
        num_steps: int | None = None,
        device: str = "auto",
        seed: int = 0,
        dtype: str = "auto",
    ) -> None:
        chosen_robot = parse_robot(robot)
        chosen_rotation = one_of(rotation, ROTATIONS, "--policy-arg rotation")
        self.state = parse_state_encoding(state)
        one_of(dtype, DTYPE_NAMES, "--policy-arg dtype")
        if action_horizon < 1:
            raise HarnessError(
                f"action_horizon={action_horizon} is below 1",
                "pass --policy-arg action_horizon=N with 1 <= N <= the model's chunk size",
            )
        if num_steps is not None and num_steps < 1:
            raise HarnessError(
                f"num_steps={num_steps} is below 1",
                "pass --policy-arg num_steps=N with N >= 1, or leave it unset",
            )
        self.conventions = PolicyConventions(
            rotation=chosen_rotation,
            gripper=controller_gripper(chosen_robot),
            image_size=None,  # the runner resizes keeping the aspect and pads, as PI0 trains
            robot=chosen_robot,
        )
        self.seed = seed

        import_framework("torch", FAMILY)
        transformers = import_framework("transformers", FAMILY)
        if not hasattr(transformers, "PI0ForConditionalGeneration"):
            raise HarnessError(
                f"transformers {transformers.__version__} has no PI0 model",
                family_environment_fix(FAMILY),
            )
        from refinevla_bench.policies.adapters.pi0_model import Pi0Runner

        self.runner = Pi0Runner(checkpoint, device=device, dtype=dtype)
        check_action_horizon(action_horizon, self.runner.chunk_size)
        self.runner.statistics.check_state(
            self.state, self.runner.source, self.runner.max_state_dim
        )
        self.num_steps = num_steps or self.runner.default_steps
        self.decoder = Pi0ActionDecoder(
            action_horizon, chosen_robot, self.runner.statistics.actions
        )
        self._rngs: dict[EpisodeKey, np.random.Generator] = {}

    def reset(self, instructions: Sequence[str]) -> None:
        self.decoder.reset(len(instructions))
        self._rngs = {}

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        if self.decoder.rows != observation.batch_size:
            self.reset(observation.instructions)
        rows = self.decoder.empty_rows()
        if rows:
            self.decoder.add_chunks(rows, self._sample(observation, rows))
        return self.decoder.next_actions()

    def _sample(self, observation: ObservationBatch, rows: list[int]) -> npt.NDArray[np.float64]:
        missing = [key for key in PROPRIO_KEYS if key not in observation.proprio]
        if self.state != "none" and missing:
            raise HarnessError(
                f"state={self.state} needs the robot's state but the observation lacks "
                f"{', '.join(missing)}",
                "evaluate through `refinevla-bench run` (its simulator reports proprio), or pass "
                "--policy-arg state=none",
            )
        proprio = {key: np.asarray(values)[rows] for key, values in observation.proprio.items()}
        state = model_state(
            proprio, self.state, self.runner.statistics, (len(rows), self.runner.max_state_dim)
        )
        shape = (self.runner.chunk_size, self.runner.max_action_dim)
        noise = np.stack([self._rng(observation, row).standard_normal(shape) for row in rows])
        return self.runner.sample(
            observation.images[rows],
            [observation.instructions[row] for row in rows],
            state,
            noise,
            self.num_steps,
        )

    def _rng(self, observation: ObservationBatch, row: int) -> np.random.Generator:
        """The row's episode's noise generator; rows without episode keys go by position."""
        key = observation.episodes[row] if observation.episodes else EpisodeKey("", row, 0)
        return self._rngs.setdefault(key, episode_rng(self.seed, key))
