"""Does a policy adapter keep the protocol? Named checks, each with a reason, run on synthetic
episodes so an adapter can be checked before any simulator or GPU is involved.

A failure here is a bug the benchmark would otherwise turn into silently wrong numbers: a
misdeclared convention, a batch row that depends on its neighbours, a seed that does not fix
the actions (resumed runs would then differ from uninterrupted ones).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.actions import PolicyOutputError, to_controller_actions
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.suites import SuiteSpec
from refinevla_bench.harness.suites.widowx import WIDOWX
from refinevla_bench.policies.conformance_inputs import SyntheticEpisodes, synthetic_episodes
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    PRIVILEGED_STATE_KEYS,
    GripperMode,
    Policy,
    PolicyConventions,
    ReasoningPolicy,
    ResizeMethod,
    RotationFormat,
    wants_privileged_state,
)

FloatArray = npt.NDArray[np.float64]
PolicyFactory = Callable[[], object]
Outcome = Literal["pass", "fail", "warn", "skip"]

CONVENTIONS = "conventions"
PROTOCOL = "protocol"
RESET = "reset"
ACT = "act"
PRIVILEGED = "privileged state"
DTYPE = "dtype"
SHAPE = "shape"
FINITE = "finite"
GRIPPER = "gripper range"
ROTATION = "rotation magnitude"
CONTROLLER = "controller conversion"
RATIONALES = "rationales"
DETERMINISM = "determinism"
BATCH = "batch consistency"
CHECK_NAMES = (
    CONVENTIONS,
    PROTOCOL,
    RESET,
    ACT,
    PRIVILEGED,
    DTYPE,
    SHAPE,
    FINITE,
    GRIPPER,
    ROTATION,
    CONTROLLER,
    RATIONALES,
    DETERMINISM,
    BATCH,
)

MAX_IMAGE_SIDE = 4096
ROTATION_WARN_RADIANS = 1.0  # per 0.2 s control step: faster than any real arm turns
# rows computed alone vs in a batch: float32 kernels may sum in another order
BATCH_RTOL = 1e-4
BATCH_ATOL = 1e-5


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True)
class ConformanceReport:
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(result.name for result in self.results if result.outcome == "fail")

    @property
    def passed(self) -> bool:
        return not self.failed

    def result(self, name: str) -> CheckResult:
        return next(result for result in self.results if result.name == name)

    def summary(self) -> str:
        """One line per check that did not pass, for assertion messages."""
        return "\n".join(
            f"{result.name}: {result.outcome}: {result.detail}"
            for result in self.results
            if result.outcome != "pass"
        )


class _BlockedError(Exception):
    """A check failed that later checks depend on; they are reported as skipped."""


class _Checks:
    """Collects results in CHECK_NAMES order; `block` skips every check not yet reported."""

    def __init__(self) -> None:
        self.results: dict[str, CheckResult] = {}

    def add(self, name: str, outcome: Outcome, detail: str) -> None:
        self.results[name] = CheckResult(name, outcome, detail)

    def block(self, name: str, detail: str) -> _BlockedError:
        self.add(name, "fail", detail)
        return _BlockedError(name)

    def report(self, blocked_by: str | None) -> ConformanceReport:
        return ConformanceReport(
            tuple(
                self.results.get(name, CheckResult(name, "skip", f"needs '{blocked_by}' to pass"))
                for name in CHECK_NAMES
            )
        )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _conventions_problem(declared: object) -> str | None:
    if not isinstance(declared, PolicyConventions):
        return "no class attribute `conventions = PolicyConventions(...)`"
    allowed: tuple[tuple[str, object, object], ...] = (
        ("rotation", declared.rotation, RotationFormat),
        ("gripper", declared.gripper, GripperMode),
        ("resize", declared.resize, ResizeMethod),
    )
    for field, value, literal in allowed:
        choices = typing.get_args(literal)
        if value not in choices:
            return f"{field}={value!r} is not one of {', '.join(choices)}"
    size = declared.image_size
    if size is None:
        return None
    sane = (
        isinstance(size, tuple)
        and len(size) == 2
        and all(isinstance(side, int) and 0 < side <= MAX_IMAGE_SIDE for side in size)
    )
    return None if sane else f"image_size={size!r} is not (height, width) in 1..{MAX_IMAGE_SIDE}"


def _check_conventions(checks: _Checks, policy: object) -> PolicyConventions:
    declared = getattr(type(policy), "conventions", None)
    problem = _conventions_problem(declared)
    if problem is not None or not isinstance(declared, PolicyConventions):
        raise checks.block(CONVENTIONS, problem or "not a PolicyConventions")
    size = "x".join(map(str, declared.image_size)) if declared.image_size else "native"
    checks.add(
        CONVENTIONS,
        "pass",
        f"rotation {declared.rotation}, gripper {declared.gripper}, images {size} "
        f"({declared.resize})",
    )
    return declared


def _check_protocol(checks: _Checks, policy: object) -> Policy:
    if not isinstance(policy, Policy):
        raise checks.block(PROTOCOL, "lacks reset() or act()")
    checks.add(PROTOCOL, "pass", "has reset() and act()")
    return policy


def _roll_out(
    policy: Policy, inputs: SyntheticEpisodes, rows: Sequence[int], conventions: PolicyConventions
) -> list[object]:
    """Reset on the rows' instructions, then one `act` per step; raw outputs as returned."""
    privileged = wants_privileged_state(policy)
    policy.reset([inputs.instructions[row] for row in rows])
    return [
        policy.act(inputs.observation(step, rows, conventions, privileged))
        for step in range(inputs.steps)
    ]


def _first_run(
    checks: _Checks, policy: Policy, inputs: SyntheticEpisodes, conventions: PolicyConventions
) -> list[object]:
    batch = len(inputs.instructions)
    privileged = wants_privileged_state(policy)
    try:
        policy.reset(inputs.instructions)
    except Exception as error:  # any exception is the adapter's bug, reported by name
        raise checks.block(RESET, _describe(error)) from error
    checks.add(RESET, "pass", f"took {batch} instructions")
    outputs: list[object] = []
    try:
        for step in range(inputs.steps):
            observation = inputs.observation(step, range(batch), conventions, privileged)
            outputs.append(policy.act(observation))
    except KeyError as error:
        if not privileged and error.args and error.args[0] in PRIVILEGED_STATE_KEYS:
            raise checks.block(
                PRIVILEGED,
                f"reads state[{error.args[0]!r}] without `privileged_state = True`",
            ) from error
        raise checks.block(ACT, _describe(error)) from error
    except Exception as error:
        raise checks.block(ACT, _describe(error)) from error
    checks.add(ACT, "pass", f"{inputs.steps} steps of batch {batch}")
    checks.add(
        PRIVILEGED,
        "pass",
        "declared: given synthetic simulator state"
        if privileged
        else "not declared: acted without simulator state",
    )
    return outputs


def _as_actions(checks: _Checks, outputs: Sequence[object], batch: int) -> FloatArray:
    """(steps, batch, 7) float64 after the dtype, shape and finiteness checks."""
    arrays = [np.asarray(output) for output in outputs]
    for step, array in enumerate(arrays):
        if array.dtype.kind not in "fiu":
            raise checks.block(DTYPE, f"step {step}: dtype {array.dtype} is not a real number")
    checks.add(DTYPE, "pass", ", ".join(sorted({str(array.dtype) for array in arrays})))
    for step, array in enumerate(arrays):
        if array.shape != (batch, ACTION_DIM):
            raise checks.block(
                SHAPE, f"step {step}: shape {array.shape}, expected ({batch}, {ACTION_DIM})"
            )
    checks.add(SHAPE, "pass", f"({batch}, {ACTION_DIM})")
    actions = np.stack([array.astype(np.float64) for array in arrays])
    if not np.isfinite(actions).all():
        steps = sorted({int(step) for step in np.argwhere(~np.isfinite(actions))[:, 0]})
        raise checks.block(FINITE, f"NaN or inf at steps {steps}")
    checks.add(FINITE, "pass", "no NaN or inf")
    return actions


def _check_ranges(checks: _Checks, actions: FloatArray, conventions: PolicyConventions) -> None:
    gripper = actions[..., 6]
    if np.abs(gripper).max() > 1.0:
        checks.add(
            GRIPPER,
            "fail",
            f"{conventions.gripper} gripper reaches {gripper.min():.3g}..{gripper.max():.3g}, "
            "outside [-1, 1]",
        )
    else:
        checks.add(GRIPPER, "pass", f"{conventions.gripper}, within [-1, 1]")
    rotations = actions[..., 3:6]
    if conventions.rotation == "axis_angle":
        largest = float(np.linalg.norm(rotations, axis=-1).max())
    else:
        largest = float(np.abs(rotations).max())
    if largest > ROTATION_WARN_RADIANS:
        checks.add(
            ROTATION,
            "warn",
            f"{conventions.rotation} up to {largest:.3g} rad per step: are these degrees, "
            "or absolute angles instead of deltas?",
        )
    else:
        checks.add(ROTATION, "pass", f"{conventions.rotation} up to {largest:.3g} rad per step")


def _check_controller(
    checks: _Checks, actions: FloatArray, conventions: PolicyConventions, suite: SuiteSpec
) -> None:
    controller = suite.controller
    try:
        for step_actions in actions:
            to_controller_actions(step_actions, len(step_actions), conventions, controller)
    except (PolicyOutputError, ValueError) as error:
        checks.add(
            CONTROLLER,
            "fail",
            f"the {suite.name} controller ({controller.rotation}, {controller.gripper} gripper) "
            f"cannot take it: {error}",
        )
        return
    checks.add(
        CONTROLLER,
        "pass",
        f"{conventions.rotation} -> {controller.rotation} for the {suite.name} controller",
    )


def _check_rationales(checks: _Checks, policy: Policy, batch: int) -> None:
    if not isinstance(policy, ReasoningPolicy):
        checks.add(RATIONALES, "pass", "does not reason")
        return
    texts = policy.last_rationales()
    if texts is not None and (
        len(texts) != batch or not all(isinstance(text, str) for text in texts)
    ):
        checks.add(RATIONALES, "fail", f"last_rationales() must give {batch} strings or None")
        return
    checks.add(RATIONALES, "pass", "none" if texts is None else f"{batch} texts")


def _fresh_policy(factory: PolicyFactory) -> Policy:
    policy = factory()
    if not isinstance(policy, Policy):
        raise TypeError("the factory returned no policy")
    return policy


def _check_determinism(
    checks: _Checks,
    factory: PolicyFactory,
    inputs: SyntheticEpisodes,
    conventions: PolicyConventions,
    first: FloatArray,
) -> bool:
    rows = range(len(inputs.instructions))
    try:
        again = np.asarray(
            _roll_out(_fresh_policy(factory), inputs, rows, conventions), dtype=np.float64
        )
    except Exception as error:  # a second instance that fails is not deterministic either
        checks.add(DETERMINISM, "fail", f"a second instance failed: {_describe(error)}")
        return False
    if again.shape != first.shape or not np.array_equal(again, first):
        checks.add(
            DETERMINISM,
            "fail",
            "two fresh instances with the same options and episode keys acted differently",
        )
        return False
    checks.add(DETERMINISM, "pass", "two fresh instances gave identical actions")
    return True


def _check_batch_consistency(
    checks: _Checks,
    factory: PolicyFactory,
    inputs: SyntheticEpisodes,
    conventions: PolicyConventions,
    batched: FloatArray,
) -> None:
    for row in range(len(inputs.instructions)):
        try:
            alone = np.asarray(
                _roll_out(_fresh_policy(factory), inputs, [row], conventions), dtype=np.float64
            )
        except Exception as error:  # a batch of one is a batch like any other
            checks.add(BATCH, "fail", f"row {row} alone failed: {_describe(error)}")
            return
        if alone.shape != (inputs.steps, 1, ACTION_DIM) or not np.allclose(
            alone[:, 0], batched[:, row], rtol=BATCH_RTOL, atol=BATCH_ATOL
        ):
            checks.add(BATCH, "fail", f"row {row} acts differently alone than inside the batch")
            return
    checks.add(BATCH, "pass", "each row alone equals its row in the batch")


def check_policy(
    factory: PolicyFactory,
    *,
    seed: int = 0,
    batch: int = 3,
    steps: int = 3,
    suite: SuiteSpec = WIDOWX,
) -> ConformanceReport:
    """Run every check on instances from `factory` (a class, or a closure over its options)."""
    if batch < 2 or steps < 1:
        raise HarnessError(
            f"batch {batch} and steps {steps} cannot test batching",
            "use a batch of at least 2 and at least 1 step",
        )
    checks = _Checks()
    try:
        policy = factory()
        conventions = _check_conventions(checks, policy)
        checked = _check_protocol(checks, policy)
        inputs = synthetic_episodes(suite, seed=seed, batch=batch, steps=steps)
        actions = _as_actions(checks, _first_run(checks, checked, inputs, conventions), batch)
    except _BlockedError as blocked:
        return checks.report(blocked_by=str(blocked))
    _check_ranges(checks, actions, conventions)
    _check_controller(checks, actions, conventions, suite)
    _check_rationales(checks, checked, batch)
    if _check_determinism(checks, factory, inputs, conventions, actions):
        _check_batch_consistency(checks, factory, inputs, conventions, actions)
    else:
        checks.add(BATCH, "skip", "rows of a nondeterministic policy cannot be compared")
    return checks.report(blocked_by=None)
