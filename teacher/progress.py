"""A live progress bar for an annotation run, and its one-line summary at the end.

Annotating a large dataset takes hours and costs money, so the bar shows what a user needs to
decide whether to let it run: episodes done of the total, the rate, the ETA, tokens and cost
so far, and failures as they happen.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from refinevla_bench.teacher.engine_types import AnnotationSummary, EpisodeOutcome


def format_cost(cost_usd: float | None) -> str:
    return "cost unknown" if cost_usd is None else f"${cost_usd:.4f}"


def summary_line(summary: AnnotationSummary) -> str:
    if summary.dry_run:
        return (
            f"dry run: {summary.estimated} episode(s) to annotate "
            f"({summary.skipped} done, {summary.cached} in the cache); estimated "
            f"{summary.input_tokens} input + {summary.output_tokens} output tokens, "
            f"{format_cost(summary.cost_usd)}"
        )
    total = "?" if summary.total is None else str(summary.total)
    return (
        f"annotated {summary.done}/{total}: {summary.ok} ok, {summary.cached} cached, "
        f"{summary.skipped} skipped, {summary.failed} failed; {summary.requests} request(s), "
        f"{summary.input_tokens} input + {summary.output_tokens} output tokens, "
        f"{format_cost(summary.cost_usd)}; stopped: {summary.stopped}"
    )


class RichProgress:
    """An AnnotationListener that draws on `console` (stderr in the CLI)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]annotate"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.fields[total_text]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[spend]}"),
            TextColumn("{task.fields[trouble]}"),
            console=console,
            transient=True,
        )
        self.bar = self.progress.add_task(
            "annotate", total=None, total_text="?", rate="", spend="", trouble=""
        )
        self.summary = AnnotationSummary(total=None, dry_run=False)
        self.started = time.monotonic()
        self.worked = 0  # episodes that took a request: the rate that predicts the rest
        self.retries = 0

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def run_started(self, total: int | None) -> None:
        self.summary = AnnotationSummary(total=total, dry_run=False)
        self.started = time.monotonic()
        self.progress.update(self.bar, total=total, total_text="?" if total is None else total)

    def episode_finished(self, outcome: EpisodeOutcome) -> None:
        self.summary.add(outcome)
        if outcome.kind in ("ok", "failed"):
            self.worked += 1
        if outcome.error is not None:
            self.progress.console.print(
                f"episode {outcome.episode_index} failed: {escape(outcome.error)}", highlight=False
            )
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.progress.update(
            self.bar,
            completed=self.summary.done + self.summary.estimated,
            rate=f"{self.worked / elapsed:.2f} ep/s",
            spend=f"{self.summary.input_tokens + self.summary.output_tokens} tok "
            f"{format_cost(self.summary.cost_usd)}",
        )
        self._show_trouble()

    def retry_scheduled(self, episode_index: int, reason: str, delay_s: float) -> None:
        """Counted, not printed: a rate limit at high concurrency would flood the terminal."""
        self.retries += 1
        self._show_trouble()

    def _show_trouble(self) -> None:
        parts = [f"{self.retries} retries"] if self.retries else []
        if self.summary.failed:
            parts.append(f"[red]{self.summary.failed} failed[/red]")
        self.progress.update(self.bar, trouble=", ".join(parts))

    def run_finished(self, summary: AnnotationSummary) -> None:
        self.progress.console.print(escape(summary_line(summary)), highlight=False)
