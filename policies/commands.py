"""`refinevla-bench policies new` and `policies check`: start a baseline adapter and check it
against the policy protocol before spending simulator time on it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from refinevla_bench.harness.cli_options import PolicyArgs
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.conformance import ConformanceReport, PolicyFactory, check_policy
from refinevla_bench.policies.registry import (
    convert_options,
    parse_policy_args,
    registered_policies,
)
from refinevla_bench.policies.scaffold import AdapterNames, scaffold_policy

out_console = Console(highlight=False)

_OUTCOME_STYLE = {"pass": "green", "fail": "red", "warn": "yellow", "skip": "dim"}


def policies_new(
    name: Annotated[str, typer.Argument(help="Policy name: lowercase letters, digits, _.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the package folder is created.")
    ] = Path(),
) -> None:
    """Create a pip-installable adapter package that passes `policies check` as generated."""
    root = scaffold_policy(name, directory)
    names = AdapterNames(name)
    out_console.print(f"created {root} (entry point '{name}' -> {names.module}.policy)")
    out_console.print(f"next: fill the TODOs in {root / 'src' / names.module / 'policy.py'}, then")
    out_console.print(f"  pip install -e {root}")
    out_console.print(f"  refinevla-bench policies check {name}")


def _factory_for(name: str, raw_options: dict[str, str]) -> PolicyFactory:
    """The registered class with its options bound, without create_policy's conventions
    gate, so a missing or invalid declaration shows up as a failed check in the table."""
    policies = registered_policies()
    if name not in policies:
        known = ", ".join(policies) or "none"
        raise HarnessError(
            f"unknown policy '{name}' (registered: {known})",
            f"pip install -e {AdapterNames(name).distribution} (the adapter's folder), "
            "or pick one from `refinevla-bench policies list`",
        )
    policy_class = policies[name].load_class()
    return functools.partial(policy_class, **convert_options(name, policy_class, raw_options))


def render_report(name: str, report: ConformanceReport) -> Table:
    table = Table(title=f"policy '{name}' against the protocol")
    for column in ("check", "result", "detail"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        style = _OUTCOME_STYLE[result.outcome]
        table.add_row(result.name, f"[{style}]{result.outcome}[/]", escape(result.detail))
    return table


def policies_check(
    name: Annotated[str, typer.Argument(help="Registered policy name (see `policies list`).")],
    policy_arg: PolicyArgs = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic episodes.")] = 0,
    batch: Annotated[int, typer.Option(min=2, help="Parallel episodes per act() call.")] = 3,
) -> None:
    """Check shapes, dtypes, conventions, seeding and batching; exit 1 if any check fails."""
    factory = _factory_for(name, parse_policy_args(policy_arg or []))
    try:
        report = check_policy(factory, seed=seed, batch=batch)
    except (OSError, ValueError) as error:
        raise HarnessError(
            f"policy '{name}' could not start: {error}", "check its --policy-arg values"
        ) from error
    out_console.print(render_report(name, report))
    if not report.passed:
        out_console.print(f"[red]failed: {', '.join(report.failed)}[/]")
        raise typer.Exit(1)
    out_console.print("[green]all checks passed[/]")
