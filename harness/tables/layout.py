"""The column layouts of the papers' tables, built from suite specs so each suite is data.

A layout lists the table's columns in print order: cells measured on one task (grasp or
success rate) and means over some of those cells. The same layout names the columns of the
reference CSV in `results/reference/`, so run rows and published rows always line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.suites import SuiteSpec, get_suite

Measure = Literal["grasp", "success"]


@dataclass(frozen=True)
class Cell:
    """One measured column: a rate of `measure` over the episodes of `task`."""

    key: str
    header: str
    task: str
    measure: Measure


@dataclass(frozen=True)
class Mean:
    """An unweighted mean of the rates in the cells named by `of`."""

    key: str
    header: str
    of: tuple[str, ...]


Column = Cell | Mean


@dataclass(frozen=True)
class Layout:
    suite: str
    title: str
    reference_file: str  # a file name in results/reference/
    columns: tuple[Column, ...]

    @property
    def cells(self) -> tuple[Cell, ...]:
        return tuple(column for column in self.columns if isinstance(column, Cell))

    @property
    def means(self) -> tuple[Mean, ...]:
        return tuple(column for column in self.columns if isinstance(column, Mean))

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(cell.task for cell in self.cells))


def grasp_success_layout(spec: SuiteSpec, title: str) -> Layout:
    """Per task grasp then success, then the mean success over all tasks (the WidowX table)."""
    cells = tuple(
        Cell(f"{task.name}_{measure}", f"{task.title} {measure}", task.name, measure)
        for task in spec.tasks
        for measure in ("grasp", "success")
    )
    mean = Mean(
        "mean_success", "mean success", tuple(c.key for c in cells if c.measure == "success")
    )
    return Layout(spec.name, title, f"{spec.name}.csv", (*cells, mean))


def _setting_columns(prefix: str, label: str) -> tuple[Column, ...]:
    cells = tuple(
        Cell(f"{prefix}_{task}", f"{label} {title}", f"{prefix}_{task}", "success")
        for task, title in (
            ("coke_can", "coke can"),
            ("move_near", "move near"),
            ("drawer", "drawer"),
        )
    )
    return (*cells, Mean(f"{prefix}_mean", f"{label} mean", tuple(c.key for c in cells)))


# The published Google Robot table. Only its reference rows are used until the Google Robot
# suite exists; that suite's layout is then built from its spec, as WidowX's is.
GOOGLE_ROBOT_LAYOUT = Layout(
    "google_robot",
    "SimplerEnv Google Robot: success rates in %",
    "google_robot.csv",
    (*_setting_columns("vm", "VM"), *_setting_columns("va", "VA")),
)


RUN_LAYOUTS: dict[str, Layout] = {
    layout.suite: layout
    for layout in (
        grasp_success_layout(
            get_suite("widowx"),
            "SimplerEnv WidowX (visual matching): grasp and success rates in %",
        ),
    )
}


def layout_for_suite(name: str) -> Layout:
    """The table layout of a suite whose runs can be tabulated."""
    if name not in RUN_LAYOUTS:
        raise HarnessError(
            f"no table layout for suite '{name}'",
            f"tables can be made for runs of suite: {', '.join(RUN_LAYOUTS)}",
        )
    return RUN_LAYOUTS[name]
