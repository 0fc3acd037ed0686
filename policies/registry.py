"""Policies are found through Python entry points, so other packages add their own."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.protocol import ActionConventions, Policy

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

    def conventions(self) -> ActionConventions:
        declared = getattr(self.load_class(), "conventions", None)
        if not isinstance(declared, ActionConventions):
            raise HarnessError(
                f"policy '{self.name}' declares no ActionConventions",
                "set a class attribute `conventions = ActionConventions(...)` on the policy",
            )
        return declared


def registered_policies() -> dict[str, PolicyEntry]:
    found = entry_points(group=ENTRY_POINT_GROUP)
    return {
        ep.name: PolicyEntry(ep.name, ep.value, ep) for ep in sorted(found, key=lambda e: e.name)
    }


def create_policy(name: str) -> Policy:
    """Instantiate a registered policy by name, or fail naming the policies that exist."""
    policies = registered_policies()
    if name not in policies:
        known = ", ".join(policies) or "none"
        raise HarnessError(
            f"unknown policy '{name}' (registered: {known})",
            "pick one from `refinevla-bench policies list`",
        )
    entry = policies[name]
    entry.conventions()
    policy = entry.load_class()()
    if not isinstance(policy, Policy):
        raise HarnessError(
            f"policy '{name}' ({entry.target}) lacks reset() or act()",
            "implement the protocol in refinevla_bench.policies.protocol.Policy",
        )
    return policy
