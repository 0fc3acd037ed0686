"""`refinevla-bench tables`: the paper's table from run folders, optionally with its rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.tables.export import to_csv, to_json
from refinevla_bench.harness.tables.layout import layout_for_suite
from refinevla_bench.harness.tables.reference import load_reference
from refinevla_bench.harness.tables.render import to_latex, to_markdown
from refinevla_bench.harness.tables.runs import load_runs
from refinevla_bench.harness.tables.table import Table, build_table

FORMATS: dict[str, Callable[[Table], str]] = {
    "md": to_markdown,
    "csv": to_csv,
    "latex": to_latex,
    "json": to_json,
}


def render_table(run_dirs: Sequence[Path], fmt: str, compare_paper: bool) -> str:
    """The table of some run folders in one format; `run` prints this when it ends."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown table format '{fmt}'", f"use --format {'|'.join(FORMATS)}")
    first = load_runs(run_dirs[:1])
    layout = layout_for_suite(first[0].suite)
    runs = load_runs(run_dirs, layout.run_suites)
    reference = load_reference(layout) if compare_paper else ()
    return FORMATS[fmt](build_table(layout, runs, reference))


def tables(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR",
            help="Run folders made by `refinevla-bench run --out`.",
            show_default=False,
        ),
    ],
    format: Annotated[
        str, typer.Option("--format", help=f"Output format: {', '.join(FORMATS)}.")
    ] = "md",
    compare_paper: Annotated[
        bool,
        typer.Option("--compare-paper", help="Add the paper's published rows below the runs."),
    ] = False,
) -> None:
    """Regenerate the paper's table (grasp and success per task, mean success) from runs."""
    typer.echo(render_table(run_dirs, format, compare_paper), nl=False)
