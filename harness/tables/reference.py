"""The papers' published rows, read verbatim from `results/reference/`, with their means checked.

Published numbers are shown as printed and never recomputed. A printed mean that is not the
mean of its row's printed cells (beyond rounding) is flagged, with the computed value beside
it, so a reader can see the discrepancy instead of trusting either number silently.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import refinevla_bench
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.tables.layout import Layout

# Printed values have one decimal, so an honestly rounded mean is off by at most 0.05; the
# epsilon absorbs binary float error in cases such as 1.1 against 1.05.
ROUNDING_TOLERANCE = 0.05
_FLOAT_SLACK = 1e-9

METADATA_COLUMNS = ("source", "paper_version")


def reference_dir() -> Path:
    """The repository's `results/reference/`, shipped in the package through the link
    `refinevla_bench/results` so installed copies (wheels, Docker) read the same files."""
    return Path(refinevla_bench.__file__).parent / "results" / "reference"


@dataclass(frozen=True)
class MeanCheck:
    """A printed mean against the mean of its printed cells (None: a cell was not reported)."""

    computed: float | None
    flagged: bool


def check_mean(published: float | None, cells: Sequence[float | None]) -> MeanCheck:
    """Flag a published mean that differs from the mean of `cells` by more than rounding."""
    if not cells or any(cell is None for cell in cells):
        return MeanCheck(computed=None, flagged=False)
    computed = sum(cell for cell in cells if cell is not None) / len(cells)
    flagged = published is not None and (
        abs(published - computed) > ROUNDING_TOLERANCE + _FLOAT_SLACK
    )
    return MeanCheck(computed=computed, flagged=flagged)


@dataclass(frozen=True)
class ReferenceRow:
    """One published row: the printed text of each number (None where the paper has "-")."""

    model: str
    printed: dict[str, str | None]
    source: str
    paper_version: str
    mean_checks: dict[str, MeanCheck]

    def value(self, key: str) -> float | None:
        text = self.printed[key]
        return None if text is None else float(text)


def load_reference(layout: Layout) -> tuple[ReferenceRow, ...]:
    """The published rows of a layout's table, in the paper's order."""
    path = reference_dir() / layout.reference_file
    restore = f"restore {path} from the refinevla-bench repository"
    if not path.is_file():
        raise HarnessError(f"the published rows are missing ({path})", restore)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        expected = ["model", *(column.key for column in layout.columns), *METADATA_COLUMNS]
        if reader.fieldnames != expected:
            raise HarnessError(f"{path} does not have the columns {', '.join(expected)}", restore)
        return tuple(_row(layout, record, f"{path} line {reader.line_num}") for record in reader)


def _row(layout: Layout, record: dict[str, str], where: str) -> ReferenceRow:
    printed = {
        column.key: _printed(record[column.key], column.key, where) for column in layout.columns
    }
    values = {key: None if text is None else float(text) for key, text in printed.items()}
    checks = {
        mean.key: check_mean(values[mean.key], [values[key] for key in mean.of])
        for mean in layout.means
    }
    return ReferenceRow(record["model"], printed, record["source"], record["paper_version"], checks)


def _printed(cell: str | None, key: str, where: str) -> str | None:
    """The cell's text as printed, checked to be a number; None for an empty cell ("-")."""
    text = (cell or "").strip()
    if not text:
        return None
    try:
        float(text)
    except ValueError:
        raise HarnessError(
            f"{where}: '{text}' in column {key} is not a number",
            "copy the number as printed in the paper, or leave the cell empty",
        ) from None
    return text
