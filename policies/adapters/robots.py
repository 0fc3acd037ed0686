"""The robot an adapter drives: it picks statistics, scaling and gripper handling."""

from __future__ import annotations

from refinevla_bench.harness.choices import one_of
from refinevla_bench.policies.protocol import ROBOTS, GripperMode, Robot


def parse_robot(text: str) -> Robot:
    """A `--policy-arg robot=...` value; the harness fills it from the suite when unset."""
    return one_of(text, ROBOTS, "--policy-arg robot")


def controller_gripper(robot: Robot | None) -> GripperMode:
    """The gripper command each robot's controller takes: absolute on WidowX, relative on Google
    Robot (an adapter with no robot yet, the `policies list` placeholder, says absolute)."""
    return "relative" if robot == "google_robot" else "absolute"
