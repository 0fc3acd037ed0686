"""Suites are declarative data; the runner reads them and holds no per-suite code paths."""

from __future__ import annotations

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.suites.google_robot import GOOGLE_ROBOT_VA, GOOGLE_ROBOT_VM
from refinevla_bench.harness.suites.spec import SuiteSpec, TaskSpec
from refinevla_bench.harness.suites.widowx import WIDOWX

SUITES: dict[str, SuiteSpec] = {
    suite.name: suite for suite in (WIDOWX, GOOGLE_ROBOT_VM, GOOGLE_ROBOT_VA)
}

__all__ = ["SUITES", "SuiteSpec", "TaskSpec", "get_suite"]


def get_suite(name: str) -> SuiteSpec:
    if name not in SUITES:
        raise HarnessError(
            f"unknown suite '{name}'",
            f"use --suite with one of: {', '.join(SUITES)}",
        )
    return SUITES[name]
