"""Policies are found through Python entry points, so other packages add their own."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from refinevla_bench.harness.actions import check_policy_robot
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.protocol import Policy, PolicyConventions, Robot

ENTRY_POINT_GROUP = "refinevla_bench.policies"


@dataclass(frozen=True)
class PolicyEntry:
    name: str
    target: str  # "module:attribute", shown to users so they know what will be imported
    entry_point: EntryPoint

    def load_class(self) -> type[Policy]:
        loaded = self.entry_point.load()
        if not isinstance(loaded, type):
            raise HarnessError(
                f"entry point '{self.name}' ({self.target}) is not a class",
                f"point the '{ENTRY_POINT_GROUP}' entry point at a policy class",
            )
        return loaded

    def conventions(self) -> PolicyConventions:
        declared = getattr(self.load_class(), "conventions", None)
        if not isinstance(declared, PolicyConventions):
            raise HarnessError(
                f"policy '{self.name}' declares no PolicyConventions",
                "set a class attribute `conventions = PolicyConventions(...)` on the policy",
            )
        return declared


def registered_policies() -> dict[str, PolicyEntry]:
    found = entry_points(group=ENTRY_POINT_GROUP)
    return {
        ep.name: PolicyEntry(ep.name, ep.value, ep) for ep in sorted(found, key=lambda e: e.name)
    }


_CONVERTERS: dict[type, Any] = {int: int, float: float, str: str, Path: Path}


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def policy_options(policy_class: type) -> dict[str, inspect.Parameter]:
    """The keyword options a policy's constructor takes (what --policy-arg can set)."""
    parameters = inspect.signature(policy_class, eval_str=True).parameters
    return {
        name: parameter
        for name, parameter in parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    }


def _without_none(annotation: Any) -> Any:
    """`int | None` -> int: an optional option given on the command line has a value."""
    members = [member for member in typing.get_args(annotation) if member is not type(None)]
    is_union = typing.get_origin(annotation) in (types.UnionType, typing.Union)
    return members[0] if is_union and len(members) == 1 else annotation


def convert_options(name: str, policy_class: type, raw: Mapping[str, str]) -> dict[str, Any]:
    options = policy_options(policy_class)
    converted: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in options:
            known = ", ".join(options) or "none"
            raise HarnessError(
                f"policy '{name}' has no option '{key}' (options: {known})",
                "pass --policy-arg KEY=VALUE with one of those keys",
            )
        wanted = _without_none(options[key].annotation)
        convert = _parse_bool if wanted is bool else _CONVERTERS.get(wanted, str)
        type_name = getattr(wanted, "__name__", "value")
        try:
            converted[key] = convert(text)
        except ValueError as error:
            raise HarnessError(
                f"policy '{name}' option '{key}'={text!r} is not a valid {type_name}",
                f"pass --policy-arg {key}=<{type_name}>",
            ) from error
    return converted


REMOTE_SCHEMES = ("ws://", "wss://")


def create_policy(
    name: str, raw_options: Mapping[str, str] | None = None, robot: Robot | None = None
) -> Policy:
    """Instantiate a registered policy by name with string options typed by its constructor;
    a `ws://HOST:PORT` name connects to a policy served by `refinevla-bench serve`.

    With `robot` (the suite's), a policy taking a `robot` option is told which robot it drives
    unless the user set it, and a policy declared for another robot is refused."""
    if name.startswith(REMOTE_SCHEMES):
        if raw_options:
            raise HarnessError(
                f"--policy-arg does not apply to the served policy at {name}",
                "pass the options to `refinevla-bench serve --policy-arg ...` instead",
            )
        from refinevla_bench.harness.serving.client import remote_policy

        served = remote_policy(name)
        if robot is not None:
            check_policy_robot(served.conventions, robot, name)
        return served
    policies = registered_policies()
    if name not in policies:
        known = ", ".join(policies) or "none"
        raise HarnessError(
            f"unknown policy '{name}' (registered: {known})",
            "pick one from `refinevla-bench policies list`",
        )
    entry = policies[name]
    entry.conventions()
    policy_class = entry.load_class()
    options = convert_options(name, policy_class, raw_options or {})
    if robot is not None and "robot" in policy_options(policy_class) and "robot" not in options:
        options["robot"] = robot
    try:
        policy = policy_class(**options)
    except (OSError, ValueError) as error:
        raise HarnessError(
            f"policy '{name}' could not start: {error}", "check its --policy-arg values"
        ) from error
    if not isinstance(policy, Policy):
        raise HarnessError(
            f"policy '{name}' ({entry.target}) lacks reset() or act()",
            "implement the protocol in refinevla_bench.policies.protocol.Policy",
        )
    if robot is not None:
        check_policy_robot(policy.conventions, robot, name)
    return policy


def parse_policy_args(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings from the command line into a mapping."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise HarnessError(
                f"--policy-arg '{pair}' is not KEY=VALUE", "write e.g. --policy-arg seed=3"
            )
        parsed[key.strip()] = value
    return parsed
