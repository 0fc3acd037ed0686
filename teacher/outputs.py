"""What an annotation run leaves for training: the sidecar table, and the merged
reasoning-enriched dataset (the source plus per-step `reasoning` text), both rebuilt from the
per-episode records so they always agree with them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from refinevla_bench.harness.datasets.atomic_files import write_json_atomically
from refinevla_bench.harness.datasets.derive import derive_with_columns
from refinevla_bench.harness.datasets.lerobot_meta import INFO_PATH, PER_EPISODE_VERSIONS
from refinevla_bench.teacher.annotation_store import load_records
from refinevla_bench.teacher.reasoning_text import REASONING_FORMAT_VERSION, render_reasoning
from refinevla_bench.teacher.schema import AnnotationRecord
from refinevla_bench.teacher.sidecar import SIDECAR_NAME, step_rationales, write_sidecar

MERGED_DIR = "dataset"
OUTPUTS_NAME = "outputs.json"
REASONING_COLUMN = "reasoning"  # rendered rationale per step; "" where the teacher failed
SUBTASK_COLUMN = "reasoning.subtask"


@dataclass(frozen=True)
class Outputs:
    sidecar: Path
    merged: Path | None  # None when the source is not a LeRobot v2.x folder
    annotated_steps: int
    note: str


def _is_per_episode_lerobot(root: Path) -> bool:
    info = root / INFO_PATH
    if not info.is_file():
        return False
    version = json.loads(info.read_text(encoding="utf-8")).get("codebase_version")
    return version in PER_EPISODE_VERSIONS


def _text_columns(
    records: dict[int, AnnotationRecord], episode_index: int, length: int
) -> dict[str, list[str]]:
    record = records.get(episode_index)
    if record is None or record.status != "ok":
        return {REASONING_COLUMN: [""] * length, SUBTASK_COLUMN: [""] * length}
    steps = step_rationales(record)
    if len(steps) != length:
        raise RuntimeError(
            f"episode {episode_index}: the record covers {len(steps)} steps, the dataset {length}"
        )
    return {
        REASONING_COLUMN: [render_reasoning(step) for step in steps],
        SUBTASK_COLUMN: [step.subtask for step in steps],
    }


def write_outputs(dataset_root: Path, out_dir: Path) -> Outputs:
    records = {record.episode_index: record for record in load_records(out_dir)}
    sidecar = write_sidecar(records.values(), out_dir)
    annotated = sum(
        span.end - span.start
        for record in records.values()
        if record.status == "ok"
        for span in record.spans
    )
    merged: Path | None = None
    if _is_per_episode_lerobot(dataset_root):
        merged = out_dir / MERGED_DIR
        derive_with_columns(
            dataset_root, merged, lambda index, length: _text_columns(records, index, length)
        )
        note = f"merged dataset: {merged} (columns {REASONING_COLUMN}, {SUBTASK_COLUMN})"
    else:
        note = (
            f"no merged copy for this format: join {SIDECAR_NAME} on (episode_index, frame_index)"
        )
    write_json_atomically(
        out_dir / OUTPUTS_NAME,
        {
            "source_dataset": str(dataset_root.resolve()),
            "sidecar": SIDECAR_NAME,
            "merged_dataset": MERGED_DIR if merged else None,
            "reasoning_column": REASONING_COLUMN,
            "reasoning_format_version": REASONING_FORMAT_VERSION,
            "annotated_steps": annotated,
        },
    )
    return Outputs(sidecar, merged, annotated, note)
