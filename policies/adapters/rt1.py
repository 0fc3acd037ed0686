"""The `rt1` and `rt1x` policies: RT-1 (Converged) and RT-1-X TensorFlow SavedModels, evaluated
the way SimplerEnv does (simpler_env/policies/rt1/rt1_model.py).

The two differ only in the checkpoint they load by default. Checkpoints are local directories
downloaded from the Open X-Embodiment release bucket (see RT1Release.download_fix).

Termination: upstream's evaluator ends an episode as soon as the model's `terminate_episode`
asks for it (or moves a multi-step task to its next subtask). The policy reports each step's
requests through `last_terminations()` (the TerminatingPolicy protocol); the runner executes
that step's action, then ends the episode there (termination "policy"), as upstream does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.robots import parse_robot
from refinevla_bench.policies.adapters.rt1_decoding import decode, rt1_conventions
from refinevla_bench.policies.adapters.rt1_model import (
    DEFAULT_LANGUAGE_MODEL,
    RT1_CONVERGED,
    RT1_X,
    RT1Release,
    RT1Runner,
)
from refinevla_bench.policies.protocol import ObservationBatch, PolicyConventions, Robot


class RT1Stepper(Protocol):
    """What the policy needs from a model runner (RT1Runner, or a fake in tests)."""

    def reset(self, instructions: Sequence[str]) -> None: ...

    def reset_row(self, row: int, instruction: str) -> None: ...

    def act(self, images: npt.NDArray[np.uint8]) -> Mapping[str, npt.ArrayLike]:
        """Per-row stacked model outputs (world_vector, rotation_delta, ...)."""
        ...


def _check_action_scale(robot: Robot, action_scale: float) -> None:
    """Upstream scales the axis-angle vector after converting roll/pitch/yaw on WidowX; the
    harness converts rotations itself, so there only 1.0 keeps that rule."""
    if robot == "widowx" and action_scale != 1.0:
        raise HarnessError(
            f"action_scale={action_scale} is only supported on google_robot for RT-1",
            "leave action_scale at 1.0 on widowx (every SimplerEnv script does)",
        )


class RT1Policy:
    """RT-1 from a local SavedModel directory (default checkpoints/rt_1_tf_trained_for_000400120,
    RT-1-Converged). `action_scale` multiplies translation and rotation on Google Robot;
    `language_model` is the Universal Sentence Encoder to embed instructions (a tfhub URL or a
    local copy)."""

    release: ClassVar[RT1Release] = RT1_CONVERGED
    # a placeholder for `policies list`: each instance declares its robot's conventions
    conventions: PolicyConventions = rt1_conventions(None)

    def __init__(
        self,
        robot: str = "widowx",
        checkpoint: str | None = None,
        action_scale: float = 1.0,
        language_model: str = DEFAULT_LANGUAGE_MODEL,
    ) -> None:
        parsed = parse_robot(robot)
        _check_action_scale(parsed, action_scale)
        runner = RT1Runner(checkpoint or self.release.default_path, self.release, language_model)
        self._setup(runner, parsed, action_scale)

    @classmethod
    def with_runner(
        cls, runner: RT1Stepper, robot: str = "widowx", action_scale: float = 1.0
    ) -> RT1Policy:
        """A policy around an already built runner (tests pass a fake one)."""
        parsed = parse_robot(robot)
        _check_action_scale(parsed, action_scale)
        policy = cls.__new__(cls)
        policy._setup(runner, parsed, action_scale)
        return policy

    def _setup(self, runner: RT1Stepper, robot: Robot, action_scale: float) -> None:
        self.conventions = rt1_conventions(robot)
        self.robot = robot
        self.action_scale = action_scale
        self._runner = runner
        self._instructions: list[str] = []
        self._terminations: tuple[bool, ...] | None = None

    def reset(self, instructions: Sequence[str]) -> None:
        self._instructions = list(instructions)
        self._runner.reset(self._instructions)
        self._terminations = None

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        if observation.batch_size != len(self._instructions):
            raise ValueError(
                f"a batch of {observation.batch_size} rows after a reset for "
                f"{len(self._instructions)}"
            )
        for row, text in enumerate(observation.instructions):
            if text != self._instructions[row]:
                # upstream restarts the policy state and embedding on a new instruction
                self._instructions[row] = text
                self._runner.reset_row(row, text)
        decoded = decode(self._runner.act(observation.images), self.robot, self.action_scale)
        self._terminations = tuple(bool(flag) for flag in decoded.terminate)
        return decoded.actions

    def last_terminations(self) -> tuple[bool, ...] | None:
        """Per row of the last act(): did the model ask to end its episode (None before any)."""
        return self._terminations


class RT1XPolicy(RT1Policy):
    """RT-1-X: as RT-1, loading checkpoints/rt_1_x_tf_trained_for_002272480_step by default."""

    release: ClassVar[RT1Release] = RT1_X
