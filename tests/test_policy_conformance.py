"""The conformance checker passes the built-in policies and names the check each broken
adapter fails; `policies check` prints the table and exits 1 on a failure."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from importlib.metadata import EntryPoint
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pytest
import typer
from typer.testing import CliRunner

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies import commands
from refinevla_bench.policies.conformance import (
    BATCH,
    CHECK_NAMES,
    CONTROLLER,
    CONVENTIONS,
    DETERMINISM,
    DTYPE,
    FINITE,
    GRIPPER,
    PRIVILEGED,
    ROTATION,
    SHAPE,
    ConformanceReport,
    check_policy,
)
from refinevla_bench.policies.protocol import ACTION_DIM, ObservationBatch, PolicyConventions
from refinevla_bench.policies.random import RandomPolicy
from refinevla_bench.policies.registry import ENTRY_POINT_GROUP, PolicyEntry
from refinevla_bench.policies.scripted import ScriptedExpert
from refinevla_bench.policies.zero import ZeroPolicy

Actions = npt.NDArray[np.floating]


class _Still:
    """A valid base: subclasses break one rule each."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions()

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions

    def act(self, observation: ObservationBatch) -> Actions:
        return np.zeros((observation.batch_size, ACTION_DIM))


class WrongShapePolicy(_Still):
    def act(self, observation: ObservationBatch) -> Actions:
        return np.zeros((observation.batch_size, 6))


class NanPolicy(_Still):
    def act(self, observation: ObservationBatch) -> Actions:
        return np.full((observation.batch_size, ACTION_DIM), np.nan)


_unseeded = itertools.count()


class UnseededPolicy(_Still):
    """Draws from state shared across instances: fresh instances act differently."""

    def act(self, observation: ObservationBatch) -> Actions:
        return np.full((observation.batch_size, ACTION_DIM), next(_unseeded) * 1e-3)


class BatchCoupledPolicy(_Still):
    """Moves faster the more episodes run at once: deterministic, but rows are coupled."""

    def act(self, observation: ObservationBatch) -> Actions:
        actions = np.zeros((observation.batch_size, ACTION_DIM))
        actions[:, 0] = observation.batch_size * 1e-3
        return actions


class StatePeekingPolicy(_Still):
    """Reads simulator ground truth without declaring privileged_state."""

    def act(self, observation: ObservationBatch) -> Actions:
        actions = np.zeros((observation.batch_size, ACTION_DIM))
        actions[:, :3] = observation.state["tcp_pose"][:, :3] * 0.0
        return actions


class UndeclaredPolicy:
    def reset(self, instructions: Sequence[str]) -> None:
        del instructions

    def act(self, observation: ObservationBatch) -> Actions:
        return np.zeros((observation.batch_size, ACTION_DIM))


class TextPolicy(_Still):
    def act(self, observation: ObservationBatch) -> Actions:
        return np.full((observation.batch_size, ACTION_DIM), "0", dtype=object)


class ByteGripperPolicy(_Still):
    """A 0..255 gripper, as a model that forgot to rescale it would give."""

    def act(self, observation: ObservationBatch) -> Actions:
        actions = np.zeros((observation.batch_size, ACTION_DIM))
        actions[:, 6] = 255.0
        return actions


class DegreesPolicy(_Still):
    def act(self, observation: ObservationBatch) -> Actions:
        actions = np.zeros((observation.batch_size, ACTION_DIM))
        actions[:, 5] = 30.0
        return actions


class RelativeGripperPolicy(_Still):
    conventions: ClassVar[PolicyConventions] = PolicyConventions(gripper="relative")


class SmallImagePolicy(_Still):
    """Checks that observations arrive at its declared size and resampling."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions(
        rotation="roll_pitch_yaw", image_size=(224, 224), resize="lanczos"
    )

    def act(self, observation: ObservationBatch) -> Actions:
        if observation.images.shape[1:] != (224, 224, 3):
            raise ValueError(f"got images of shape {observation.images.shape}")
        return np.zeros((observation.batch_size, ACTION_DIM), dtype=np.float32)


def _outcomes(report: ConformanceReport) -> dict[str, str]:
    return {result.name: result.outcome for result in report.results}


@pytest.mark.parametrize(
    "policy_class", [ZeroPolicy, RandomPolicy, ScriptedExpert, SmallImagePolicy]
)
def test_conforming_policies_pass_every_check(policy_class: type) -> None:
    report = check_policy(policy_class, seed=3, batch=3)
    assert report.passed, report.summary()
    assert [result.name for result in report.results] == list(CHECK_NAMES)
    assert set(_outcomes(report).values()) == {"pass"}


def test_privileged_state_reaches_only_policies_that_declare_it() -> None:
    assert "declared" in check_policy(ScriptedExpert).result(PRIVILEGED).detail
    report = check_policy(StatePeekingPolicy)
    assert report.failed == (PRIVILEGED,)
    assert "tcp_pose" in report.result(PRIVILEGED).detail


@pytest.mark.parametrize(
    ("policy_class", "failed"),
    [
        (WrongShapePolicy, SHAPE),
        (NanPolicy, FINITE),
        (UnseededPolicy, DETERMINISM),
        (BatchCoupledPolicy, BATCH),
        (UndeclaredPolicy, CONVENTIONS),
        (TextPolicy, DTYPE),
        (ByteGripperPolicy, GRIPPER),
        (RelativeGripperPolicy, CONTROLLER),
    ],
)
def test_each_broken_policy_fails_the_check_it_breaks(policy_class: type, failed: str) -> None:
    report = check_policy(policy_class, seed=0, batch=3)
    assert report.failed == (failed,), report.summary()


def test_checks_after_a_blocking_failure_are_skipped_not_passed() -> None:
    outcomes = _outcomes(check_policy(WrongShapePolicy))
    assert outcomes[SHAPE] == "fail"
    assert {outcomes[name] for name in (FINITE, GRIPPER, DETERMINISM, BATCH)} == {"skip"}


def test_a_nondeterministic_policy_skips_the_batch_comparison() -> None:
    assert _outcomes(check_policy(UnseededPolicy))[BATCH] == "skip"


def test_rotations_larger_than_a_radian_per_step_warn_without_failing() -> None:
    report = check_policy(DegreesPolicy)
    assert report.passed
    assert report.result(ROTATION).outcome == "warn"
    assert "degrees" in report.result(ROTATION).detail


def test_a_batch_of_one_cannot_test_batching() -> None:
    with pytest.raises(HarnessError, match="batch 1"):
        check_policy(ZeroPolicy, batch=1)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("new")(commands.policies_new)
    app.command("check")(commands.policies_check)
    return app


def test_check_command_prints_the_table_and_exits_zero_when_all_pass() -> None:
    result = CliRunner().invoke(_cli(), ["check", "random", "--policy-arg", "seed=4"])
    assert result.exit_code == 0, result.output
    assert "batch consistency" in result.output
    assert "all checks passed" in result.output


def test_check_command_exits_one_and_names_the_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    target = f"{__name__}:NanPolicy"
    entry = PolicyEntry("nan", target, EntryPoint("nan", target, ENTRY_POINT_GROUP))
    monkeypatch.setattr(commands, "registered_policies", lambda: {"nan": entry})
    result = CliRunner().invoke(_cli(), ["check", "nan"])
    assert result.exit_code == 1
    assert "failed: finite" in result.output


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["check", "nope"], "unknown policy 'nope'"),
        (["check", "random", "--policy-arg", "speed=2"], "no option 'speed'"),
    ],
)
def test_check_command_refuses_with_one_line_errors(arguments: list[str], problem: str) -> None:
    result = CliRunner().invoke(_cli(), arguments)
    assert isinstance(result.exception, HarnessError)
    assert problem in result.exception.problem
