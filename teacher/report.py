"""What an annotation folder holds: coverage, failures, consistency, the worst rationales, cost.

The report reads only what the engine wrote (the manifest and one record per episode); it never
re-annotates or re-scores, so it is instant on any machine and shows exactly what training will
read. Consistency comes from each record's stored score; records without one are counted, not
guessed at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from refinevla_bench.teacher import annotation_store as store
from refinevla_bench.teacher.schema import AnnotationRecord

BUCKETS = 10  # the consistency histogram's bins: tenths of [0, 1], the last one closed


@dataclass(frozen=True)
class FailedEpisode:
    episode_index: int
    error: str


@dataclass(frozen=True)
class ScoredEpisode:
    episode_index: int
    consistency: float
    issues: tuple[str, ...]


@dataclass(frozen=True)
class ConsistencySummary:
    scored: int
    unscored: int  # ok records the engine stored no score for
    mean: float | None
    minimum: float | None
    below_threshold: int
    histogram: tuple[int, ...]  # counts per tenth, [0, 0.1) ... [0.9, 1.0]


@dataclass(frozen=True)
class AnnotationReport:
    directory: Path
    teacher: str | None
    model: str | None
    prompt_version: str | None
    total_episodes: int | None  # None: no manifest says how many the dataset has
    annotated: int  # ok records
    failed: int
    unreadable: int  # record files that did not parse
    steps_covered: int  # steps of the ok records
    failures: tuple[FailedEpisode, ...]
    consistency: ConsistencySummary
    threshold: float
    worst: tuple[ScoredEpisode, ...]
    requests: int
    cached: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    notes: tuple[str, ...]

    @property
    def missing(self) -> int | None:
        """Episodes of the dataset with no record at all."""
        if self.total_episodes is None:
            return None
        return max(0, self.total_episodes - self.annotated - self.failed)


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(store.manifest_path(directory).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _read_records(directory: Path) -> tuple[list[AnnotationRecord], int]:
    records: list[AnnotationRecord] = []
    unreadable = 0
    for path in sorted((directory / store.EPISODES_DIR).glob("episode_*.json")):
        record = store.read_record(path)
        if record is None:
            unreadable += 1
        else:
            records.append(record)
    return records, unreadable


def _histogram(scores: list[float]) -> tuple[int, ...]:
    counts = [0] * BUCKETS
    for score in scores:
        counts[min(BUCKETS - 1, max(0, int(score * BUCKETS)))] += 1
    return tuple(counts)


def _consistency(ok: list[AnnotationRecord], threshold: float) -> ConsistencySummary:
    scores = [record.consistency for record in ok if record.consistency is not None]
    return ConsistencySummary(
        scored=len(scores),
        unscored=len(ok) - len(scores),
        mean=sum(scores) / len(scores) if scores else None,
        minimum=min(scores) if scores else None,
        below_threshold=sum(score < threshold for score in scores),
        histogram=_histogram(scores),
    )


def _notes(
    manifest: dict[str, Any] | None, consistency: ConsistencySummary, unreadable: int
) -> list[str]:
    notes: list[str] = []
    if manifest is None:
        notes.append("no readable manifest.json: the dataset's episode count is unknown")
    if consistency.unscored:
        notes.append(
            f"{consistency.unscored} ok record(s) carry no consistency score; "
            "their rationales were not checked against the facts"
        )
    if unreadable:
        notes.append(f"{unreadable} record file(s) could not be read; they count as missing")
    return notes


def build_report(annotation_dir: Path, worst: int = 10, threshold: float = 0.7) -> AnnotationReport:
    """Summarise an annotation folder; `worst` lowest-scoring rationales are listed in full."""
    manifest = _read_manifest(annotation_dir)
    records, unreadable = _read_records(annotation_dir)
    ok = [record for record in records if record.status == "ok"]
    failed = [record for record in records if record.status == "failed"]
    consistency = _consistency(ok, threshold)
    scored = sorted(
        (
            ScoredEpisode(
                record.episode_index, record.consistency, tuple(record.consistency_issues)
            )
            for record in ok
            if record.consistency is not None
        ),
        key=lambda entry: (entry.consistency, entry.episode_index),
    )
    counts = (manifest or {}).get("counts") or {}
    total = counts.get("total")
    return AnnotationReport(
        directory=annotation_dir,
        teacher=(manifest or {}).get("teacher"),
        model=(manifest or {}).get("model"),
        prompt_version=(manifest or {}).get("prompt_version"),
        total_episodes=total if isinstance(total, int) else None,
        annotated=len(ok),
        failed=len(failed),
        unreadable=unreadable,
        steps_covered=sum(span.end - span.start for record in ok for span in record.spans),
        failures=tuple(
            FailedEpisode(record.episode_index, record.error or "no error recorded")
            for record in failed
        ),
        consistency=consistency,
        threshold=threshold,
        worst=tuple(scored[:worst]),
        requests=sum(record.usage.requests for record in records),
        cached=sum(record.cached for record in ok),
        input_tokens=sum(record.usage.input_tokens for record in records),
        output_tokens=sum(record.usage.output_tokens for record in records),
        cost_usd=sum(record.usage.cost_usd for record in records),
        notes=tuple(_notes(manifest, consistency, unreadable)),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def report_json(report: AnnotationReport) -> dict[str, Any]:
    """The report as plain JSON (for `--json` and for scripts that gate on it)."""
    consistency = report.consistency
    return {
        "directory": str(report.directory),
        "teacher": report.teacher,
        "model": report.model,
        "prompt_version": report.prompt_version,
        "coverage": {
            "total_episodes": report.total_episodes,
            "annotated": report.annotated,
            "failed": report.failed,
            "missing": report.missing,
            "unreadable": report.unreadable,
            "steps_covered": report.steps_covered,
        },
        "failures": [
            {"episode_index": failure.episode_index, "error": failure.error}
            for failure in report.failures
        ],
        "consistency": {
            "scored": consistency.scored,
            "unscored": consistency.unscored,
            "mean": _round(consistency.mean),
            "min": _round(consistency.minimum),
            "threshold": report.threshold,
            "below_threshold": consistency.below_threshold,
            "histogram": [
                {"from": index / BUCKETS, "to": (index + 1) / BUCKETS, "count": count}
                for index, count in enumerate(consistency.histogram)
            ],
        },
        "worst": [
            {
                "episode_index": entry.episode_index,
                "consistency": _round(entry.consistency),
                "below_threshold": entry.consistency < report.threshold,
                "issues": list(entry.issues),
            }
            for entry in report.worst
        ],
        "usage": {
            "requests": report.requests,
            "cached": report.cached,
            "input_tokens": report.input_tokens,
            "output_tokens": report.output_tokens,
            "cost_usd": round(report.cost_usd, 6),
        },
        "notes": list(report.notes),
    }


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _summary_table(report: AnnotationReport) -> Table:
    table = Table(title=f"Annotations in {report.directory}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    annotated = (
        f"{report.annotated} episodes (dataset size unknown)"
        if report.total_episodes is None
        else f"{report.annotated} of {report.total_episodes} episodes"
    )
    table.add_row("teacher", f"{report.teacher or '-'} / {report.model or '-'}")
    table.add_row("annotated", annotated)
    table.add_row("steps covered", str(report.steps_covered))
    table.add_row("failed", str(report.failed))
    if report.missing is not None:
        table.add_row("missing", str(report.missing))
    consistency = report.consistency
    table.add_row(
        "consistency",
        f"mean {_score(consistency.mean)}, min {_score(consistency.minimum)}, "
        f"{consistency.below_threshold} below {report.threshold:g} "
        f"({consistency.scored} scored, {consistency.unscored} unscored)",
    )
    table.add_row(
        "usage",
        f"{report.requests} requests ({report.cached} cached), {report.input_tokens} in / "
        f"{report.output_tokens} out tokens, ${report.cost_usd:.4f}",
    )
    return table


def _histogram_table(report: AnnotationReport) -> Table:
    table = Table(title="Consistency")
    table.add_column("score")
    table.add_column("episodes", justify="right")
    table.add_column("")
    histogram = report.consistency.histogram
    widest = max(histogram) or 1
    for index, count in enumerate(histogram):
        closing = "]" if index == BUCKETS - 1 else ")"
        label = f"[{index / BUCKETS:.1f}, {(index + 1) / BUCKETS:.1f}{closing}"
        table.add_row(label, str(count), "#" * round(30 * count / widest))
    return table


def _failures_table(report: AnnotationReport) -> Table:
    table = Table(title="Failed episodes")
    table.add_column("episode", justify="right")
    table.add_column("error", style="red")
    for failure in report.failures:
        table.add_row(str(failure.episode_index), failure.error)
    return table


def _worst_table(report: AnnotationReport) -> Table:
    table = Table(title=f"Lowest consistency (threshold {report.threshold:g})")
    table.add_column("episode", justify="right")
    table.add_column("score", justify="right")
    table.add_column("issues")
    for entry in report.worst:
        style = "red" if entry.consistency < report.threshold else ""
        issues = "\n".join(entry.issues) if entry.issues else "-"
        table.add_row(str(entry.episode_index), Text(_score(entry.consistency), style), issues)
    return table


def render_report(report: AnnotationReport) -> Group:
    """Tables for the terminal: summary, histogram, failures and worst rationales when any."""
    parts: list[RenderableType] = [_summary_table(report)]
    if report.consistency.scored:
        parts.append(_histogram_table(report))
    if report.failures:
        parts.append(_failures_table(report))
    if report.worst:
        parts.append(_worst_table(report))
    parts.extend(Text(f"note: {note}", style="yellow") for note in report.notes)
    return Group(*parts)
