"""`refinevla-bench collect`: record demonstrations from the simulator as a LeRobot dataset."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from refinevla_bench.harness.backends.maniskill import ManiSkillBackend, resolve_device
from refinevla_bench.harness.cli_options import PolicyArgs
from refinevla_bench.harness.collect import (
    Demonstration,
    DemonstrationRecorder,
    check_keep_mode,
    collect_demonstrations,
    plan_demonstrations,
)
from refinevla_bench.harness.errors import INSTALL_SIM_FIX, HarnessError
from refinevla_bench.harness.paths import assets_root
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.runner import EpisodeObserver
from refinevla_bench.harness.seeds import parse_seeds
from refinevla_bench.harness.suites import SUITES, get_suite
from refinevla_bench.policies.protocol import EpisodeKey, ObservationBatch
from refinevla_bench.policies.registry import create_policy, parse_policy_args

err_console = Console(stderr=True)
out_console = Console(highlight=False)


class _EpisodeProgress(EpisodeObserver):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bar = progress.add_task("collecting", total=None)

    def observed(self, observation: ObservationBatch) -> None:
        del observation

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None:
        del episodes, actions

    def step_done(self, active: int) -> None:
        del active

    def episode_done(self, record: EpisodeRecord) -> None:
        self.progress.advance(self.bar)
        self.progress.update(self.bar, description=f"{record.task} #{record.episode_id}")


def collect(
    out: Annotated[
        Path, typer.Option(help="Dataset folder (LeRobot v2.1); an existing one grows.")
    ],
    episodes: Annotated[int, typer.Option(min=1, help="How many episodes to plan.")],
    suite: Annotated[str, typer.Option(help=f"Suite: {', '.join(SUITES)}.")] = "widowx",
    policy: Annotated[str, typer.Option(help="Registered policy that acts.")] = "scripted",
    policy_arg: PolicyArgs = None,
    tasks: Annotated[
        str | None, typer.Option(help="Comma-separated task names (default: all).")
    ] = None,
    seeds: Annotated[str, typer.Option(help="Seeds, used after every grid scene.")] = "0",
    keep: Annotated[
        str, typer.Option(help="success (default): keep successful episodes only; all.")
    ] = "success",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    num_envs: Annotated[int, typer.Option(min=1, help="Episodes simulated at once (CUDA).")] = 1,
    verbose: Annotated[bool, typer.Option(help="Show the simulator's log messages.")] = False,
) -> None:
    """Record demonstrations (frames, actions, object poses, grasp state) as a LeRobot dataset.

    Episodes go round-robin over the tasks, then the grid, then the seeds; each is written
    when it ends, so a killed collection keeps what finished and the same command resumes it.
    """
    # the dataset writer (pyarrow) and the simulator load only when collecting
    from refinevla_bench.harness.collect_dataset import (
        check_resumable,
        collected_ids,
        dataset_info,
        demonstration_features,
        episode_data,
    )
    from refinevla_bench.harness.datasets.lerobot_meta import INFO_PATH
    from refinevla_bench.harness.datasets.lerobot_writer import LeRobotWriter

    spec = get_suite(suite)
    keep_mode = check_keep_mode(keep)
    names = [name.strip() for name in tasks.split(",") if name.strip()] if tasks else None
    selected = spec.select_tasks(names)
    planned = plan_demonstrations(selected, parse_seeds(seeds), episodes)
    options = parse_policy_args(policy_arg or [])
    actor = create_policy(policy, options, robot=spec.robot)
    info_path = out / INFO_PATH
    if info_path.is_file():
        check_resumable(json.loads(info_path.read_text(encoding="utf-8")), spec.name, policy)
    writer = LeRobotWriter.create_or_resume(
        out,
        fps=spec.control_hz,
        robot_type=spec.name,
        features=demonstration_features(spec, actor.conventions),
        extra_info=dataset_info(spec, policy, options, actor.conventions),
    )
    done = collected_ids(writer.episodes)
    todo = [item for item in planned if (item[0].name, item[1], item[2]) not in done]

    def write(demo: Demonstration, record: EpisodeRecord) -> None:
        writer.add_episode(episode_data(demo, record, spec, policy, actor.conventions))

    recorder = DemonstrationRecorder(write, keep_mode)
    if todo:
        try:
            backend = ManiSkillBackend(spec, assets_root(), resolve_device(device), verbose)
        except ImportError as error:
            raise HarnessError(
                f"the simulator is not installed ({error.name} missing)", INSTALL_SIM_FIX
            ) from error
        if num_envs > 1 and backend.device == "cpu":
            raise HarnessError(
                f"--num-envs {num_envs} needs GPU simulation",
                "drop --num-envs or use --device cuda",
            )
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            display = _EpisodeProgress(progress)
            progress.update(display.bar, total=len(todo))
            collect_demonstrations(
                suite=spec,
                planned=todo,
                policy=actor,
                backend=backend,
                recorder=recorder,
                num_envs=num_envs,
                listener=display,
            )
    dropped = ", ".join(
        f"{record.task}#{record.episode_id}/seed{record.seed}"
        + (" error" if record.error else " failed")
        for record in recorder.dropped
    )
    out_console.print(
        f"collected: kept={recorder.kept} already={len(planned) - len(todo)} "
        f"dropped={len(recorder.dropped)}{f' ({dropped})' if dropped else ''} "
        f"episodes={len(writer.episodes)} frames={sum(row.length for row in writer.episodes)} "
        f"out={out}",
        soft_wrap=True,
        markup=False,
    )
