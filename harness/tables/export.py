"""A table as flat records, CSV or JSON: the same numbers as the text table, for scripts.

Each number gets its own column (rate, Wilson bounds, k and n, and whether a run's cell or
mean reads part of a task's grid only; a published mean with its computed value and flag), so
nothing has to be parsed back out of a formatted cell.
"""

from __future__ import annotations

import csv
import io
import json

from refinevla_bench.harness.tables.layout import Cell
from refinevla_bench.harness.tables.reference import ReferenceRow
from refinevla_bench.harness.tables.stats import AveragedRate
from refinevla_bench.harness.tables.table import RunRow, Table

Record = dict[str, str | float | int | bool | None]


def records(table: Table) -> list[Record]:
    """One flat record per row, numbers as separate columns (rates and bounds in %)."""
    return [_run_record(table, row) for row in table.runs] + [
        _reference_record(table, row) for row in table.reference
    ]


def _base(model: str, kind: str) -> Record:
    keys = ("run_dir", "standins_used", "success_mode", "seeds", "source", "paper_version")
    return {"model": model, "kind": kind, **dict.fromkeys(keys)}


def _run_record(table: Table, row: RunRow) -> Record:
    run = row.run
    record = _base(run.label, "run")
    record.update(
        run_dir=" ".join(map(str, run.paths)),
        standins_used=run.standins_used,
        success_mode=run.success_mode,
        seeds=" ".join(map(str, run.seeds)),
    )
    for column in table.layout.columns:
        if isinstance(column, Cell):
            record.update(_proportion_fields(column.key, row.cells[column.key]))
        else:
            mean = row.means[column.key]
            record.update(_mean_fields(column.key, None if mean is None else round(mean, 2)))
        record[f"{column.key}_partial"] = column.key in row.partial
    for suite, task in table.layout.tasks:
        counts = run.tasks.get((suite, task))
        record[_errors_key(table, suite, task)] = counts.errors if counts else None
    return record


def _errors_key(table: Table, suite: str, task: str) -> str:
    """`<task>_errors`, qualified by the suite in tables that read several suites."""
    single = len(table.layout.run_suites) == 1
    return f"{task}_errors" if single else f"{suite}.{task}_errors"


def _proportion_fields(key: str, value: AveragedRate | None) -> Record:
    if value is None:
        return dict.fromkeys((key, f"{key}_low", f"{key}_high", f"{key}_k", f"{key}_n"))
    low, high = value.interval
    return {
        key: round(100 * value.rate, 2),
        f"{key}_low": round(100 * low, 2),
        f"{key}_high": round(100 * high, 2),
        f"{key}_k": value.successes,
        f"{key}_n": value.trials,
    }


def _mean_fields(
    key: str, value: float | None, computed: float | None = None, flagged: bool | None = None
) -> Record:
    return {key: value, f"{key}_computed": computed, f"{key}_flagged": flagged}


def _reference_record(table: Table, row: ReferenceRow) -> Record:
    record = _base(row.model, "published")
    record.update(source=row.source, paper_version=row.paper_version or None)
    for column in table.layout.columns:
        if isinstance(column, Cell):
            record.update(_proportion_fields(column.key, None))
            record[column.key] = row.value(column.key)
        else:
            check = row.mean_checks[column.key]
            computed = None if check.computed is None else round(check.computed, 4)
            record.update(_mean_fields(column.key, row.value(column.key), computed, check.flagged))
        record[f"{column.key}_partial"] = None
    for suite, task in table.layout.tasks:
        record[_errors_key(table, suite, task)] = None
    return record


def to_csv(table: Table) -> str:
    rows = records(table)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_json(table: Table) -> str:
    document = {"suite": table.layout.suite, "title": table.layout.title, "rows": records(table)}
    return json.dumps(document, indent=2) + "\n"
