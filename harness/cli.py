"""The `refinevla-bench` command line: one Typer app, user errors as one line and exit 2."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from refinevla_bench import __version__
from refinevla_bench.harness.assets.commands import assets_app
from refinevla_bench.harness.backends.maniskill import ManiSkillBackend, resolve_device
from refinevla_bench.harness.errors import INSTALL_SIM_FIX, USER_ERROR_EXIT_CODE, HarnessError
from refinevla_bench.harness.paths import assets_root
from refinevla_bench.harness.records import EpisodeRecord, TaskSummary
from refinevla_bench.harness.suites import SUITES, SuiteSpec, get_suite

app = typer.Typer(
    name="refinevla-bench",
    help="Evaluate Vision-Language-Action policies on SimplerEnv, headless, on CPU or GPU.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(assets_app, name="assets")
policies_app = typer.Typer(
    help="List the registered policies and their action conventions.", no_args_is_help=True
)
app.add_typer(policies_app, name="policies")

err_console = Console(stderr=True)
out_console = Console(highlight=False)


def _show_version(value: bool) -> None:
    if value:
        out_console.print(f"refinevla-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    del version


def _split_tasks(tasks: str | None) -> list[str] | None:
    return [name.strip() for name in tasks.split(",") if name.strip()] if tasks else None


def _fraction(summary: TaskSummary) -> str:
    """Successes over scored episodes (errors are counted apart, not as failures)."""
    scored = summary.episodes - summary.errors
    return f"{summary.successes}/{scored} ({100 * summary.success_rate:.1f}%)"


def _summary_line(suite: str, summary: TaskSummary) -> str:
    return (
        f"{suite} {summary.task}: success {_fraction(summary)}, "
        f"grasped {summary.grasps}/{summary.episodes}, errors {summary.errors}, "
        f"{summary.seconds:.1f} s"
    )


@app.command()
def run(
    suite: Annotated[str, typer.Option(help=f"Suite to evaluate: {', '.join(SUITES)}.")] = "widowx",
    policy: Annotated[
        str, typer.Option(help="Registered policy name (see `policies list`).")
    ] = "zero",
    episodes: Annotated[
        int | None, typer.Option(min=1, help="Run only the first N episodes of each task's grid.")
    ] = None,
    tasks: Annotated[
        str | None, typer.Option(help="Comma-separated task names (default: all).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Simulator seed for every episode.")] = 0,
    success_mode: Annotated[
        str, typer.Option(help="truncation (success at the last step), early_stop or accumulate.")
    ] = "truncation",
    device: Annotated[
        str, typer.Option(help="auto, cpu or cuda (simulation and rendering).")
    ] = "auto",
    verbose: Annotated[bool, typer.Option(help="Show the simulator's own log messages.")] = False,
) -> None:
    """Run a policy on a suite and print a result line per task."""
    from refinevla_bench.harness.runner import check_success_mode, run_task
    from refinevla_bench.policies.registry import create_policy

    spec = get_suite(suite)
    mode = check_success_mode(success_mode)
    selected = spec.select_tasks(_split_tasks(tasks))
    the_policy = create_policy(policy)
    backend = _open_backend(spec, device, verbose)

    plan = [
        (task, task.episode_ids[:episodes] if episodes else task.episode_ids) for task in selected
    ]
    total_steps = sum(task.max_steps * len(ids) for task, ids in plan)
    started = time.perf_counter()
    all_records: list[EpisodeRecord] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[episodes]}"),
        TextColumn("{task.fields[successes]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        bar = progress.add_task("building", total=total_steps, episodes="", successes="")
        for task, episode_ids in plan:
            records: list[EpisodeRecord] = []
            progress.update(
                bar,
                description=f"{spec.name}/{task.name}",
                episodes=f"0/{len(episode_ids)} episodes",
            )
            with backend.open_task(task) as env:
                for record in run_task(
                    env,
                    spec,
                    the_policy,
                    episode_ids,
                    seed,
                    mode,
                    on_step=lambda _: progress.advance(bar),
                ):
                    progress.advance(bar, task.max_steps - record.steps)
                    records.append(record)
                    done = sum(r.success for r in records)
                    progress.update(
                        bar,
                        episodes=f"{len(records)}/{len(episode_ids)} episodes",
                        successes=f"{done} successes",
                    )
            summary = TaskSummary.of(task.name, records)
            progress.console.print(
                _summary_line(spec.name, summary), highlight=False, soft_wrap=True
            )
            all_records.extend(records)
    overall = TaskSummary.of("all tasks", all_records)
    wall = time.perf_counter() - started
    out_console.print(
        f"result: suite={spec.name} policy={policy} success_mode={mode} "
        f"episodes={overall.episodes} success={_fraction(overall)} grasped={overall.grasps} "
        f"errors={overall.errors} wall={wall:.1f}s",
        soft_wrap=True,
    )


def _open_backend(spec: SuiteSpec, device: str, verbose: bool) -> ManiSkillBackend:
    """Build the simulator backend, turning a missing simulator install into its fix."""
    try:
        return ManiSkillBackend(spec, assets_root(), resolve_device(device), verbose)
    except ImportError as error:
        raise HarnessError(
            f"the simulator is not installed ({error.name} missing)", INSTALL_SIM_FIX
        ) from error


@app.command()
def doctor(
    suite: Annotated[
        list[str] | None, typer.Option(help="Check only this suite (repeatable; default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check Python, torch, CUDA, Vulkan render devices and assets; exit 1 if a suite cannot run."""
    from refinevla_bench.harness.doctor import run_doctor

    specs = [get_suite(name) for name in suite] if suite else list(SUITES.values())
    with err_console.status("checking") as status:
        report = run_doctor(
            assets_root(), specs, progress=lambda name: status.update(f"checked {name}")
        )
    if as_json:
        out_console.print_json(json.dumps(report.to_json()))
    else:
        table = Table(title="refinevla-bench doctor", show_lines=False)
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        colours = {"ok": "green", "warn": "yellow", "fail": "red"}
        for check in report.checks:
            table.add_row(
                check.name,
                f"[{colours[check.status]}]{check.status}[/]",
                escape(check.detail),  # details hold brackets, e.g. the Vulkan driver name
                escape(check.fix),
            )
        out_console.print(table)
        for name, runnable in report.suites.items():
            verdict = "[green]can run[/]" if runnable else "[red]cannot run[/]"
            out_console.print(f"suite {name}: {verdict}")
    if not report.ok:
        raise typer.Exit(1)


@policies_app.command("list")
def policies_list() -> None:
    """Show each registered policy with its declared action conventions."""
    from refinevla_bench.policies.registry import registered_policies

    table = Table(title="policies (entry point group refinevla_bench.policies)")
    for column in ("name", "target", "rotation", "gripper", "image size"):
        table.add_column(column)
    for name, entry in registered_policies().items():
        conventions = entry.conventions()
        size = "x".join(map(str, conventions.image_size)) if conventions.image_size else "native"
        table.add_row(name, entry.target, conventions.rotation, conventions.gripper, size)
    out_console.print(table)


def main() -> None:
    """Console-script entry: fixable problems print one line and exit 2, never a traceback."""
    try:
        app()
    except HarnessError as error:
        err_console.print(error.one_line(), highlight=False, markup=False, soft_wrap=True)
        sys.exit(USER_ERROR_EXIT_CODE)
