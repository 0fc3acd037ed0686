"""The `refinevla-bench` command line: one Typer app, user errors as one line and exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from refinevla_bench import __version__
from refinevla_bench.harness.assets.commands import assets_app
from refinevla_bench.harness.backends.maniskill import ManiSkillBackend, resolve_device
from refinevla_bench.harness.cli_options import PolicyArgs
from refinevla_bench.harness.collect_command import collect as collect_command
from refinevla_bench.harness.doctor import run_doctor
from refinevla_bench.harness.errors import (
    INSTALL_SIM_FIX,
    USER_ERROR_EXIT_CODE,
    HarnessError,
    missing_extra,
)
from refinevla_bench.harness.evaluate import RunListener, default_run_dir, evaluate
from refinevla_bench.harness.manifest import run_manifest
from refinevla_bench.harness.paths import assets_root
from refinevla_bench.harness.records import EpisodeRecord, TaskSummary
from refinevla_bench.harness.rundir import RunDirectory
from refinevla_bench.harness.runner import check_success_mode
from refinevla_bench.harness.seeds import parse_seeds
from refinevla_bench.harness.serving.commands import serve as serve_command
from refinevla_bench.harness.suites import SUITES, SuiteSpec, TaskSpec, get_suite
from refinevla_bench.harness.tables.command import render_table
from refinevla_bench.harness.tables.command import tables as tables_command
from refinevla_bench.policies.commands import policies_check, policies_new
from refinevla_bench.policies.registry import (
    create_policy,
    parse_policy_args,
    policy_options,
    registered_policies,
)
from refinevla_bench.teacher.commands import annotate_app
from refinevla_bench.train.attention_command import attention as attention_command
from refinevla_bench.train.commands import train as train_command

app = typer.Typer(
    name="refinevla-bench",
    help="Evaluate Vision-Language-Action policies on SimplerEnv, headless, on CPU or GPU.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(assets_app, name="assets")
app.command("tables")(tables_command)
app.command("collect")(collect_command)
app.add_typer(annotate_app, name="annotate")
app.command("train")(train_command)
app.command("attention")(attention_command)
app.command("serve")(serve_command)
policies_app = typer.Typer(
    help="List, scaffold and check policies (action conventions, protocol conformance).",
    no_args_is_help=True,
)
app.add_typer(policies_app, name="policies")
policies_app.command("new")(policies_new)
policies_app.command("check")(policies_check)

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
    """Successes over all episodes; errors are failed trials, and also counted on their own."""
    return f"{summary.successes}/{summary.episodes} ({100 * summary.success_rate:.1f}%)"


def _summary_line(summary: TaskSummary) -> str:
    return (
        f"{summary.task}: success {_fraction(summary)}, "
        f"grasped {summary.grasps}/{summary.episodes}, errors {summary.errors}, "
        f"{summary.seconds:.1f} s"
    )


class _ProgressDisplay(RunListener):
    """Rich progress: task, episodes done, successes so far, elapsed and ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bar = progress.add_task("starting", total=None, episodes="", successes="")
        self.task: TaskSpec | None = None
        self.expected = 0
        self.records: list[EpisodeRecord] = []

    def run_started(self, total_steps: int, resumed: int) -> None:
        self.progress.update(self.bar, total=total_steps)
        if resumed:
            self.progress.console.print(f"resuming: {resumed} episode(s) already done")

    def task_started(self, task: TaskSpec, episodes: int) -> None:
        self._finish_task()
        self.task, self.expected, self.records = task, episodes, []
        self.progress.update(self.bar, description=task.name, episodes=f"0/{episodes} episodes")

    def step_done(self, active: int) -> None:
        self.progress.advance(self.bar, active)

    def episode_done(self, record: EpisodeRecord) -> None:
        assert self.task is not None
        self.records.append(record)
        self.progress.advance(self.bar, self.task.max_steps - record.steps)
        successes = sum(r.success for r in self.records)
        errors = sum(r.termination == "error" for r in self.records)
        self.progress.update(
            self.bar,
            episodes=f"{len(self.records)}/{self.expected} episodes",
            successes=f"{successes} successes" + (f", {errors} errors" if errors else ""),
        )

    def _finish_task(self) -> None:
        if self.task is not None and self.records:
            summary = TaskSummary.of(self.task.name, self.records)
            self.progress.console.print(_summary_line(summary), highlight=False, soft_wrap=True)

    def close(self) -> None:
        self._finish_task()
        self.task = None


@app.command()
def run(
    suite: Annotated[str, typer.Option(help=f"Suite to evaluate: {', '.join(SUITES)}.")] = "widowx",
    policy: Annotated[
        str, typer.Option(help="Registered policy name (see `policies list`).")
    ] = "zero",
    policy_arg: PolicyArgs = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated seeds; each repeats the task grid "
            "(default: the suite's, 0,1,2 on WidowX, 0 on Google Robot).",
            show_default=False,
        ),
    ] = None,
    episodes: Annotated[
        int | None, typer.Option(min=1, help="Run only the first N episodes of each task's grid.")
    ] = None,
    tasks: Annotated[
        str | None, typer.Option(help="Comma-separated task names (default: all).")
    ] = None,
    success_mode: Annotated[
        str, typer.Option(help="truncation (success at the last step), early_stop or accumulate.")
    ] = "truncation",
    device: Annotated[
        str, typer.Option(help="auto, cpu or cuda (simulation and rendering).")
    ] = "auto",
    num_envs: Annotated[
        int, typer.Option(min=1, help="Episodes simulated at once (CUDA only; CPU runs 1).")
    ] = 1,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run directory; an existing one is resumed. Default runs/<suite>-<policy>-<time>."
        ),
    ] = None,
    video: Annotated[bool, typer.Option(help="Write one mp4 per episode under videos/.")] = False,
    record_actions: Annotated[
        bool, typer.Option(help="Save each episode's raw actions under actions/ (for replay).")
    ] = False,
    verbose: Annotated[bool, typer.Option(help="Show the simulator's own log messages.")] = False,
) -> None:
    """Evaluate a policy on a suite; the same command on the same --out resumes."""
    spec = get_suite(suite)
    mode = check_success_mode(success_mode)
    selected = spec.select_tasks(_split_tasks(tasks))
    seed_list = parse_seeds(seeds) if seeds is not None else list(spec.default_seeds)
    options = parse_policy_args(policy_arg or [])
    the_policy = create_policy(policy, options, robot=spec.robot)
    backend = _open_backend(spec, device, verbose)
    if num_envs > 1 and backend.device == "cpu":
        raise HarnessError(
            f"--num-envs {num_envs} needs GPU simulation (the CPU runs one episode at a time)",
            "drop --num-envs, or use --device cuda on an NVIDIA machine",
        )
    run_dir = RunDirectory(out or default_run_dir(spec.name, policy))
    manifest = run_manifest(
        suite=spec,
        policy_name=policy,
        policy_options=options,
        policy=the_policy,
        seeds=seed_list,
        success_mode=mode,
        tasks=[task.name for task in selected],
        episodes_per_task=episodes,
        device=backend.device,
        num_envs=num_envs,
        assets_root=assets_root(),
        output=run_dir.path,
        argv=["refinevla-bench", *sys.argv[1:]],
    )
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
        display = _ProgressDisplay(progress)
        outcome = evaluate(
            suite=spec,
            tasks=selected,
            policy=the_policy,
            backend=backend,
            run_dir=run_dir,
            manifest=manifest,
            seeds=seed_list,
            episodes_per_task=episodes,
            success_mode=mode,
            num_envs=num_envs,
            video=video,
            record_actions=record_actions,
            listener=display,
        )
        display.close()
    overall = TaskSummary.of("all tasks", outcome.records)
    typer.echo(render_table([run_dir.path], "md", compare_paper=False))
    out_console.print(
        f"result: suite={spec.name} policy={policy} success_mode={mode} "
        f"episodes={overall.episodes}/{outcome.planned} success={_fraction(overall)} "
        f"grasped={overall.grasps} errors={overall.errors} wall={outcome.wall_seconds:.1f}s "
        f"out={run_dir.path}",
        soft_wrap=True,
        markup=False,
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
    """Show each registered policy with its declared action conventions and options."""

    table = Table(title="policies (entry point group refinevla_bench.policies)")
    for column in ("name", "target", "rotation", "gripper", "image size", "options"):
        table.add_column(column, overflow="fold")
    for name, entry in registered_policies().items():
        try:
            conventions = entry.conventions()
            options = policy_options(entry.load_class())
        except Exception as error:  # one broken plugin must not hide the others
            table.add_row(name, entry.target, f"[red]cannot load: {escape(str(error))}[/]")
            continue
        size = (
            f"{'x'.join(map(str, conventions.image_size))} {conventions.resize}"
            if conventions.image_size
            else "native"
        )
        described = ", ".join(
            key if option.default is option.empty else f"{key}={option.default}"
            for key, option in options.items()
        )
        table.add_row(
            name, entry.target, conventions.rotation, conventions.gripper, size, described or "-"
        )
    out_console.print(table)


def main() -> None:
    """Console-script entry: fixable problems print one line and exit 2, never a traceback."""
    try:
        app()
    except HarnessError as error:
        err_console.print(error.one_line(), highlight=False, markup=False, soft_wrap=True)
        sys.exit(USER_ERROR_EXIT_CODE)
    except ModuleNotFoundError as error:
        missing = missing_extra(error)
        if missing is None:
            raise
        err_console.print(missing.one_line(), highlight=False, markup=False, soft_wrap=True)
        sys.exit(USER_ERROR_EXIT_CODE)
