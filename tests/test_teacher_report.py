"""The annotation report of a hand-made folder: coverage, failures, low scores, cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from refinevla_bench.teacher import annotation_store as store
from refinevla_bench.teacher.report import build_report, render_report, report_json
from refinevla_bench.teacher.schema import (
    AnnotationRecord,
    EpisodeRationale,
    SegmentRationale,
    SegmentSpan,
    Usage,
)

SPANS = [
    SegmentSpan(segment=0, subtask="reach", start=0, end=12),
    SegmentSpan(segment=1, subtask="grasp", start=12, end=20),
]
RATIONALE = EpisodeRationale(
    segments=[
        SegmentRationale(
            segment=span.segment,
            subtask=span.subtask,
            observation="The gripper is open.",
            situation_analysis="Nothing is held yet.",
            spatial_reasoning="The gripper is above the carrot.",
            task_plan=["grasp the carrot"],
            next_step="Close the gripper.",
        )
        for span in SPANS
    ]
)


def ok_record(
    index: int, consistency: float | None, issues: list[str] | None = None
) -> AnnotationRecord:
    return AnnotationRecord(
        episode_index=index,
        status="ok",
        teacher="openai",
        model="gpt-test",
        prompt_version="3",
        request_key=f"key-{index}",
        spans=SPANS,
        rationale=RATIONALE,
        usage=Usage(input_tokens=1000, output_tokens=200, requests=1, cost_usd=0.01),
        cached=index == 4,
        consistency=consistency,
        consistency_issues=issues or [],
    )


@pytest.fixture
def annotation_dir(tmp_path: Path) -> Path:
    """Eight episodes: four scored, one unscored, one failed, one unreadable, one missing."""
    store.write_manifest(
        tmp_path,
        {"teacher": "openai", "model": "gpt-test", "prompt_version": "3", "counts": {"total": 8}},
    )
    for record in (
        ok_record(0, 1.0),
        ok_record(1, 0.95),
        ok_record(
            2, 0.4, ["objects: segment 1 observation names a banana, which is not in the scene"]
        ),
        ok_record(3, 0.65, ["relations: segment 0 puts the carrot to the right of the plate"]),
        ok_record(4, None),
    ):
        store.write_record(tmp_path, record)
    store.write_record(
        tmp_path,
        AnnotationRecord(
            episode_index=5,
            status="failed",
            teacher="openai",
            model="gpt-test",
            prompt_version="3",
            request_key="key-5",
            spans=SPANS,
            error="gave up after 5 attempts: 429 rate limited",
            usage=Usage(requests=5),
        ),
    )
    store.record_path(tmp_path, 6).write_text("{ not json", encoding="utf-8")
    return tmp_path


def test_coverage_failures_and_usage(annotation_dir: Path) -> None:
    report = build_report(annotation_dir)
    assert (report.total_episodes, report.annotated, report.failed) == (8, 5, 1)
    assert (report.unreadable, report.missing) == (1, 2)
    assert report.steps_covered == 5 * 20
    assert [(failure.episode_index, failure.error) for failure in report.failures] == [
        (5, "gave up after 5 attempts: 429 rate limited")
    ]
    assert (report.requests, report.cached) == (10, 1)
    assert (report.input_tokens, report.output_tokens) == (5000, 1000)
    assert report.cost_usd == pytest.approx(0.05)


def test_consistency_distribution_and_worst(annotation_dir: Path) -> None:
    report = build_report(annotation_dir, worst=3, threshold=0.7)
    consistency = report.consistency
    assert (consistency.scored, consistency.unscored, consistency.below_threshold) == (4, 1, 2)
    assert consistency.mean == pytest.approx((1.0 + 0.95 + 0.4 + 0.65) / 4)
    assert consistency.minimum == pytest.approx(0.4)
    assert consistency.histogram == (0, 0, 0, 0, 1, 0, 1, 0, 0, 2)
    assert [entry.episode_index for entry in report.worst] == [2, 3, 1]
    assert "banana" in report.worst[0].issues[0]
    assert any("carry no consistency score" in note for note in report.notes)
    assert any("could not be read" in note for note in report.notes)


def test_json_names_failures_and_low_scores(annotation_dir: Path) -> None:
    data = report_json(build_report(annotation_dir, worst=2))
    assert json.loads(json.dumps(data)) == data
    assert data["coverage"]["missing"] == 2
    assert data["failures"] == [
        {"episode_index": 5, "error": "gave up after 5 attempts: 429 rate limited"}
    ]
    assert [(entry["episode_index"], entry["below_threshold"]) for entry in data["worst"]] == [
        (2, True),
        (3, True),
    ]
    assert data["usage"]["cost_usd"] == pytest.approx(0.05)
    assert sum(bucket["count"] for bucket in data["consistency"]["histogram"]) == 4


def test_rendering_shows_what_needs_attention(annotation_dir: Path) -> None:
    console = Console(record=True, width=200)
    console.print(render_report(build_report(annotation_dir)))
    text = console.export_text()
    assert "5 of 8 episodes" in text
    assert "429 rate limited" in text
    assert "names a banana" in text
    assert "carrot to the right of the plate" in text
    assert "no consistency score" in text


def test_folder_without_manifest_or_scores_says_so(tmp_path: Path) -> None:
    store.write_record(tmp_path, ok_record(0, None))
    report = build_report(tmp_path)
    assert report.total_episodes is None
    assert report.missing is None
    assert report.consistency.mean is None
    assert report.worst == ()
    assert any("no readable manifest.json" in note for note in report.notes)
    console = Console(record=True, width=200)
    console.print(render_report(report))
    assert "1 episodes (dataset size unknown)" in console.export_text()
