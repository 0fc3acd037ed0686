"""`refinevla-bench annotate`: rationales for every episode of a dataset, and their report.

    refinevla-bench annotate D [--teacher grounded|openai] [--out A]   (re-run: sends nothing new)
    refinevla-bench annotate report D|A

Annotations of dataset D go to D/annotations/<teacher>[-<model>] unless --out says otherwise:
per-episode records, the reply cache, manifest.json, the prompt text, the sidecar table
`reasoning.parquet` and the merged dataset `dataset/` the trainer reads.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from refinevla_bench.harness.choices import one_of
from refinevla_bench.harness.cli_default_group import DefaultCommandGroup
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.teacher.endpoint_defaults import DEFAULT_API_KEY_ENV, DEFAULT_MODEL

if TYPE_CHECKING:
    from refinevla_bench.harness.datasets.episode import EpisodeSource, EpisodeView
    from refinevla_bench.teacher.protocol import Teacher
    from refinevla_bench.teacher.token_estimate import ImageDetail

ANNOTATIONS_DIR = "annotations"

TeacherChoice = Literal["grounded", "openai"]

annotate_app = typer.Typer(
    cls=DefaultCommandGroup,
    help="Write reasoning rationales for a dataset's episodes (`annotate D`), or report on "
    "them (`annotate report D`).",
    no_args_is_help=True,
)
err_console = Console(stderr=True)
out_console = Console(highlight=False)


def choose_teacher(requested: str | None, base_url: str | None, key_env: str) -> TeacherChoice:
    """Unless told, the `openai` teacher when it can reach a model, else `grounded`."""
    if requested is None:
        return "openai" if base_url or os.environ.get(key_env) else "grounded"
    if requested in ("grounded", "openai"):
        return "grounded" if requested == "grounded" else "openai"
    raise HarnessError(f"unknown teacher '{requested}'", "use --teacher grounded or openai")


def default_out(dataset: Path, teacher: Teacher) -> Path:
    label = teacher.name if teacher.name == "grounded" else f"{teacher.name}-{teacher.model}"
    return dataset / ANNOTATIONS_DIR / re.sub(r"[^A-Za-z0-9._-]+", "_", label)


def _image_detail(text: str) -> ImageDetail:
    from refinevla_bench.teacher.token_estimate import IMAGE_DETAILS

    return one_of(text, IMAGE_DETAILS, "--image-detail")


class _FirstEpisodes:
    """The first `count` episodes of a source, still sized for the progress bar."""

    def __init__(self, source: EpisodeSource, count: int) -> None:
        self.source = source
        self.count = min(count, len(source))

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[EpisodeView]:
        for position, episode in enumerate(self.source):
            if position >= self.count:
                return
            yield episode


@annotate_app.command("run")
def annotate(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder: LeRobot, or RLDS/TFDS.")],
    teacher: Annotated[
        str | None,
        typer.Option(
            help="grounded (offline) or openai; default: openai when a key or "
            "--base-url is given, else grounded."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Annotation folder (default D/annotations/<teacher>).")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")
    ] = None,
    model: Annotated[str, typer.Option(help="Model name the endpoint serves.")] = DEFAULT_MODEL,
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key (never stored).")
    ] = DEFAULT_API_KEY_ENV,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 120.0,
    max_attempts: Annotated[int, typer.Option(help="Attempts per episode (429/5xx/timeouts).")] = 5,
    frames_per_episode: Annotated[int, typer.Option(help="Frames sent per episode.")] = 8,
    frame_max_side: Annotated[int, typer.Option(help="Longest frame side sent, pixels.")] = 320,
    image_detail: Annotated[str, typer.Option(help="low, high or auto.")] = "low",
    json_schema: Annotated[
        bool, typer.Option(help="Strict structured output (json_schema) instead of JSON mode.")
    ] = False,
    episodes: Annotated[
        int | None, typer.Option(min=1, help="Only the first N episodes (smoke runs).")
    ] = None,
    split: Annotated[str, typer.Option(help="RLDS split to read.")] = "train",
    dry_run: Annotated[
        bool, typer.Option(help="Estimate tokens and cost; send and write nothing.")
    ] = False,
    max_cost: Annotated[
        float | None, typer.Option(help="Stop starting requests once this many USD are spent.")
    ] = None,
    price_input: Annotated[float | None, typer.Option(help="USD per 1M input tokens.")] = None,
    price_output: Annotated[float | None, typer.Option(help="USD per 1M output tokens.")] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Reply cache folder (default <out>/cache); share it "
            "between runs to never pay twice."
        ),
    ] = None,
) -> None:
    """Annotate every episode once; the same command again sends nothing and changes nothing."""
    # the teacher stack (pydantic, openai, pyarrow) loads only when annotating
    from refinevla_bench.harness.datasets.open import open_dataset
    from refinevla_bench.teacher.engine import run_annotation
    from refinevla_bench.teacher.engine_types import AnnotationSettings
    from refinevla_bench.teacher.facts import extract_facts
    from refinevla_bench.teacher.grounded import GroundedTeacher
    from refinevla_bench.teacher.openai_teacher import OpenAITeacher, OpenAITeacherSettings
    from refinevla_bench.teacher.outputs import write_outputs
    from refinevla_bench.teacher.progress import RichProgress
    from refinevla_bench.teacher.retry import RetryPolicy

    source = open_dataset(dataset, split=split)
    chosen = choose_teacher(teacher, base_url, api_key_env)
    the_teacher: Teacher
    if chosen == "grounded":
        the_teacher = GroundedTeacher()
    else:
        the_teacher = OpenAITeacher(
            OpenAITeacherSettings(
                model=model,
                base_url=base_url,
                api_key_env=api_key_env,
                timeout_s=timeout,
                frames_per_episode=frames_per_episode,
                frame_max_side=frame_max_side,
                image_detail=_image_detail(image_detail),
                json_schema=json_schema,
            ),
            require_key=not dry_run,
        )
    settings = AnnotationSettings(
        concurrency=concurrency,
        timeout_s=timeout,
        retry=RetryPolicy(max_attempts=max_attempts),
        max_cost=max_cost,
        dry_run=dry_run,
        cache_dir=cache,
        price_input=price_input,
        price_output=price_output,
    )
    out_dir = out or default_out(dataset, the_teacher)
    selected = _FirstEpisodes(source, episodes) if episodes else source
    err_console.print(f"teacher {the_teacher.name} ({the_teacher.model}) -> {out_dir}")
    with RichProgress(err_console) as progress:
        summary = run_annotation(
            selected, extract_facts, the_teacher, out_dir, settings, listener=progress
        )
    if dry_run:
        return
    wrote = summary.ok + summary.failed + summary.cached > 0
    outputs_exist = (out_dir / "outputs.json").is_file()
    if wrote or not outputs_exist:
        outputs = write_outputs(dataset, out_dir)
        out_console.print(
            f"sidecar: {outputs.sidecar} ({outputs.annotated_steps} steps); {outputs.note}",
            soft_wrap=True,
            markup=False,
        )
    else:
        out_console.print(f"nothing new: outputs in {out_dir} unchanged", markup=False)


def annotation_dirs(path: Path) -> list[Path]:
    """`path` itself when it is an annotation folder, else the ones under path/annotations."""
    from refinevla_bench.teacher.annotation_store import manifest_path

    if manifest_path(path).is_file() or (path / "episodes").is_dir():
        return [path]
    found = sorted(
        child
        for child in (path / ANNOTATIONS_DIR).glob("*")
        if manifest_path(child).is_file() or (child / "episodes").is_dir()
    )
    if not found:
        raise HarnessError(
            f"no annotations in {path}",
            f"run `refinevla-bench annotate {path}` first, or pass the annotation folder",
        )
    return found


@annotate_app.command("report")
def report(
    path: Annotated[Path, typer.Argument(help="A dataset (its annotations/*) or one annotation.")],
    worst: Annotated[int, typer.Option(help="How many of the lowest-scoring to show.")] = 10,
    threshold: Annotated[float, typer.Option(help="Consistency below this counts as low.")] = 0.7,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Coverage, failures, consistency scores and the worst rationales, with their issues."""
    from refinevla_bench.teacher.report import build_report, render_report, report_json

    reports = [build_report(directory, worst, threshold) for directory in annotation_dirs(path)]
    if as_json:
        out_console.print_json(json.dumps([report_json(item) for item in reports]))
        return
    for item in reports:
        out_console.print(render_report(item))
