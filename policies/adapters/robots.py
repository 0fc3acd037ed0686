"""The robot an adapter drives: it picks statistics, scaling and gripper handling."""

from __future__ import annotations

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.protocol import ROBOTS, Robot


def parse_robot(text: str) -> Robot:
    """A `--policy-arg robot=...` value; the harness fills it from the suite when unset."""
    for robot in ROBOTS:
        if text == robot:
            return robot
    raise HarnessError(f"unknown robot '{text}'", f"pass --policy-arg robot={'|'.join(ROBOTS)}")
