"""`refinevla-bench assets ...`: fill and inspect the asset root. HarnessError reaches the CLI."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from refinevla_bench.harness.assets.catalog import ALL_SUITES, ASSET_SOURCES, SUITE_NAMES
from refinevla_bench.harness.assets.fetch import TRASH_DIR, fetch_assets
from refinevla_bench.harness.assets.store import (
    AssetStatus,
    asset_status,
    fetch_command,
    suite_asset_status,
)
from refinevla_bench.harness.paths import ASSETS_ENV_VAR, assets_root, maniskill_asset_dir

assets_app = typer.Typer(
    name="assets",
    help="Download, install and inspect the simulator assets ManiSkill reads.",
    no_args_is_help=True,
)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help=f"Asset root (default: ${ASSETS_ENV_VAR}, else ~/.cache/refinevla-bench/assets).",
        file_okay=False,
    ),
]

_STATE_STYLES = {
    "installed": "green",
    "unmanaged": "cyan",
    "incomplete": "red",
    "missing": "yellow",
}


@assets_app.command()
def fetch(
    suite: Annotated[
        str, typer.Option(help=f"Suite to fetch for: {', '.join((*SUITE_NAMES, ALL_SUITES))}.")
    ] = "widowx",
    dir_: DirOption = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Install from a local asset tree (like ../shared/assets) or a folder of the "
            "upstream archives instead of downloading.",
            file_okay=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(help="Replace existing folders; old ones move to <root>/.trash."),
    ] = False,
) -> None:
    """Download (or copy) the assets a suite needs and lay them out as ManiSkill expects."""
    root = assets_root(dir_)
    statuses = fetch_assets(
        root, suite, from_dir=from_dir, force=force, console=Console(stderr=True)
    )
    out = Console()
    out.print(f"Asset root (paths below are under it): {escape(str(root))}", highlight=False)
    _print_statuses(out, root, statuses, list_standins=False)
    if root != assets_root(None):
        out.print(f"Runs find this folder through ${ASSETS_ENV_VAR}; set it with:")
        out.print(
            f"export {ASSETS_ENV_VAR}={shlex.quote(str(root))}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@assets_app.command()
def status(
    dir_: DirOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
    ] = False,
) -> None:
    """Show which assets are present, where, and which files are stand-ins."""
    root = assets_root(dir_)
    statuses = [asset_status(root, source) for source in ASSET_SOURCES]
    if json_output:
        typer.echo(json.dumps(_status_json(root, statuses), indent=1))
        return
    out = Console()
    out.print(
        f"Asset root (paths below are under it): {escape(str(root))} ({_root_origin(dir_)})",
        highlight=False,
    )
    out.print(f"ManiSkill asset dir (MS_ASSET_DIR): {escape(str(maniskill_asset_dir(root)))}")
    _print_statuses(out, root, statuses)
    for suite in SUITE_NAMES:
        if all(item.ready for item in suite_asset_status(root, suite)):
            out.print(f"suite {suite}: [green]ready[/green]")
        else:
            command = escape(fetch_command(root, suite))
            out.print(f"suite {suite}: [red]not ready[/red]; run `{command}`", soft_wrap=True)
    trash = root / TRASH_DIR
    old = sorted(trash.iterdir()) if trash.is_dir() else []
    if old:
        out.print(
            f"{len(old)} old folder(s) in {escape(str(trash))} were moved aside by --force; "
            "delete them when you no longer need them.",
            soft_wrap=True,
        )


def _root_origin(dir_: Path | None) -> str:
    if dir_ is not None:
        return "from --dir"
    if os.environ.get(ASSETS_ENV_VAR):
        return f"from ${ASSETS_ENV_VAR}"
    return "default"


def _status_json(root: Path, statuses: Sequence[AssetStatus]) -> dict[str, Any]:
    suites = {
        suite: {
            "ready": all(item.ready for item in suite_asset_status(root, suite)),
            "fetch_command": fetch_command(root, suite),
        }
        for suite in SUITE_NAMES
    }
    return {
        "root": str(root),
        "maniskill_asset_dir": str(maniskill_asset_dir(root)),
        "suites": suites,
        "assets": [item.to_json() for item in statuses],
    }


def _print_statuses(
    out: Console, root: Path, statuses: Sequence[AssetStatus], *, list_standins: bool = True
) -> None:
    table = Table(
        Column(
            "asset", no_wrap=True, min_width=max((len(item.id) for item in statuses), default=0)
        ),
        Column("suites", no_wrap=True),
        Column("state", no_wrap=True),
        Column("where", overflow="fold"),
        Column("source", overflow="fold"),
        Column("stand-ins", justify="right"),
    )
    for item in statuses:
        style = _STATE_STYLES[item.state]
        source = item.source or ("no marker: copied by hand" if item.state == "unmanaged" else "-")
        table.add_row(
            item.id,
            ", ".join(item.suites),
            f"[{style}]{item.state}[/{style}]",
            escape(str(item.target.relative_to(root))),
            escape(source),
            str(len(item.standins)),
        )
    out.print(table)
    for item in statuses:
        if item.missing_files:
            out.print(
                f"[red]{item.id} lacks {escape(', '.join(item.missing_files))}[/red]",
                soft_wrap=True,
            )
    standins = [standin for item in statuses for standin in item.standins]
    if standins and not list_standins:
        out.print(
            f"[yellow]{len(standins)} stand-in file(s)[/yellow] (not upstream; fine for tests and "
            "smoke runs): `refinevla-bench assets status` lists them",
            soft_wrap=True,
        )
        return
    if standins:
        out.print(
            "Stand-in files (not upstream; fine for tests and smoke runs, "
            "never tune numbers against them):"
        )
    for standin in standins:
        out.print(f"  [yellow]{escape(standin.path)}[/yellow]", soft_wrap=True, highlight=False)
        out.print(
            f"    stands in for {escape(standin.stand_in_for)}: {escape(standin.what)}",
            soft_wrap=True,
            highlight=False,
        )
