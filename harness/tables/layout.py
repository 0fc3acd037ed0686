"""The column layouts of the papers' tables, built from suite specs so each suite is data.

A layout lists the table's columns in print order: cells measured on tasks (grasp or success
rate; a cell over several tasks or task variants averages them as SimplerEnv does: variants
first, then tasks) and means over some of those cells. The same layout names the columns of
the reference CSV in `results/reference/`, so run rows and published rows always line up.
A layout may read several suites (the Google Robot table: visual matching and variant
aggregation side by side); each cell says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.suites import SuiteSpec, get_suite

Measure = Literal["grasp", "success"]


@dataclass(frozen=True)
class Cell:
    """One measured column: the rate of `measure` on `tasks` of the run of `suite`.
    `grid` is each task's episodes per seed, so a cell can tell a full grid from a part."""

    key: str
    header: str
    tasks: tuple[str, ...]
    measure: Measure
    suite: str
    grid: tuple[int, ...]


@dataclass(frozen=True)
class Mean:
    """An unweighted mean of the rates in the cells named by `of`."""

    key: str
    header: str
    of: tuple[str, ...]


Column = Cell | Mean


@dataclass(frozen=True)
class Layout:
    suite: str  # the table's name (a suite, or the family of suites it reads)
    run_suites: tuple[str, ...]  # the suites whose runs fill it
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
    def tasks(self) -> tuple[tuple[str, str], ...]:
        """Every (suite, task) a cell reads, in column order."""
        return tuple(
            dict.fromkeys((cell.suite, task) for cell in self.cells for task in cell.tasks)
        )


def grasp_success_layout(spec: SuiteSpec, title: str) -> Layout:
    """Per task grasp then success, then the mean success over all tasks (the WidowX table)."""
    cells = tuple(
        Cell(
            f"{task.name}_{measure}",
            f"{task.title} {measure}",
            (task.name,),
            measure,
            spec.name,
            (len(task.episode_ids),),
        )
        for task in spec.tasks
        for measure in ("grasp", "success")
    )
    mean = Mean(
        "mean_success", "mean success", tuple(c.key for c in cells if c.measure == "success")
    )
    return Layout(spec.name, (spec.name,), title, f"{spec.name}.csv", (*cells, mean))


def _google_setting(spec: SuiteSpec, prefix: str, label: str) -> tuple[Column, ...]:
    """One setting of the paper's Google Robot table: coke can (mean of the orientations),
    move near, drawer (mean of open and close over top, middle, bottom), their mean; then
    put-in-drawer, which the papers report apart from the mean when at all."""

    def cell(name: str, title: str, family: str) -> Cell:
        tasks = tuple(task for task in spec.tasks if task.family == family)
        return Cell(
            f"{prefix}_{name}",
            f"{label} {title}",
            tuple(task.name for task in tasks),
            "success",
            spec.name,
            tuple(len(task.episode_ids) for task in tasks),
        )

    averaged = (
        cell("coke_can", "coke can", "pick_coke_can"),
        cell("move_near", "move near", "move_near"),
        cell("drawer", "drawer", "drawer"),
    )
    mean = Mean(f"{prefix}_mean", f"{label} mean", tuple(column.key for column in averaged))
    return (*averaged, mean, cell("apple_in_drawer", "put in drawer", "apple_in_drawer"))


def google_robot_layout(vm: SuiteSpec, va: SuiteSpec) -> Layout:
    return Layout(
        "google_robot",
        (vm.name, va.name),
        "SimplerEnv Google Robot: success rates in %",
        "google_robot.csv",
        (*_google_setting(vm, "vm", "VM"), *_google_setting(va, "va", "VA")),
    )


GOOGLE_ROBOT_LAYOUT = google_robot_layout(
    get_suite("google_robot_vm"), get_suite("google_robot_va")
)
LAYOUTS: tuple[Layout, ...] = (
    grasp_success_layout(
        get_suite("widowx"),
        "SimplerEnv WidowX (visual matching): grasp and success rates in %",
    ),
    GOOGLE_ROBOT_LAYOUT,
)
RUN_LAYOUTS: dict[str, Layout] = {
    suite: layout for layout in LAYOUTS for suite in layout.run_suites
}


def layout_for_suite(name: str) -> Layout:
    """The table layout of a suite whose runs can be tabulated."""
    if name not in RUN_LAYOUTS:
        raise HarnessError(
            f"no table layout for suite '{name}'",
            f"tables can be made for runs of suite: {', '.join(RUN_LAYOUTS)}",
        )
    return RUN_LAYOUTS[name]
