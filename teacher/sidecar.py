"""The sidecar table: one row per annotated step, joined to the dataset by
(episode_index, frame_index).

Each step carries the rationale of the segment it belongs to; every field stays its own
column (for analysis) beside the rendered `reasoning` text (for training).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from refinevla_bench.harness.datasets.atomic_files import replacing
from refinevla_bench.teacher.reasoning_text import render_reasoning
from refinevla_bench.teacher.schema import AnnotationRecord, SegmentRationale

SIDECAR_NAME = "reasoning.parquet"
COLUMNS = (
    "episode_index",
    "frame_index",
    "segment",
    "subtask",
    "observation",
    "situation_analysis",
    "spatial_reasoning",
    "task_plan",
    "next_step",
    "reasoning",
    "consistency",
)


def step_rationales(record: AnnotationRecord) -> list[SegmentRationale]:
    """The rationale of every step of an ok record, in step order."""
    if record.rationale is None:
        raise ValueError(f"episode {record.episode_index} has no rationale")
    by_segment = {rationale.segment: rationale for rationale in record.rationale.segments}
    steps: list[SegmentRationale] = []
    for span in record.spans:
        steps.extend([by_segment[span.segment]] * (span.end - span.start))
    return steps


def sidecar_frame(records: Iterable[AnnotationRecord]) -> pd.DataFrame:
    rows = []
    for record in records:
        if record.status != "ok":
            continue
        for frame_index, rationale in enumerate(step_rationales(record)):
            rows.append(
                (
                    record.episode_index,
                    frame_index,
                    rationale.segment,
                    rationale.subtask,
                    rationale.observation,
                    rationale.situation_analysis,
                    rationale.spatial_reasoning,
                    json.dumps(rationale.task_plan),
                    rationale.next_step,
                    render_reasoning(rationale),
                    record.consistency,
                )
            )
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"episode_index": "int64", "frame_index": "int64", "segment": "int64"})


def write_sidecar(records: Iterable[AnnotationRecord], out_dir: Path) -> Path:
    """Write the table atomically; returns its path."""
    path = out_dir / SIDECAR_NAME
    with replacing(path) as temporary:
        sidecar_frame(records).to_parquet(temporary, index=False)
    return path
