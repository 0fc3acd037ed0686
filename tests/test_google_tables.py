"""The Google Robot table: SimplerEnv's aggregation (variants, then tasks) and one row per
policy across the visual-matching and variant-aggregation runs.

Run folders are written by hand as the runner writes them, with known counts per variant, so
every cell is checked against a mean computed here the way upstream's metrics script does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.suites import get_suite
from refinevla_bench.harness.tables.command import render_table
from refinevla_bench.harness.tables.layout import GOOGLE_ROBOT_LAYOUT
from refinevla_bench.harness.tables.runs import load_runs
from refinevla_bench.harness.tables.stats import AveragedRate, Proportion, wilson_interval
from refinevla_bench.harness.tables.table import run_row
from tests.test_tables import md_rows, write_run

VM = get_suite("google_robot_vm")
VA = get_suite("google_robot_va")


def records(
    suite: str, task: str, successes: dict[str, tuple[int, int]]
) -> list[dict[str, object]]:
    """Episodes of `task` with (successes, trials) per variant name."""
    spec = get_suite(suite).select_tasks([task])[0]
    names = [variant.name for variant in spec.variants]
    out: list[dict[str, object]] = []
    for name, (hits, trials) in successes.items():
        index = names.index(name)
        for k in range(trials):
            out.append(
                EpisodeRecord(
                    suite=suite,
                    task=task,
                    episode_id=index + k * len(names),
                    seed=0,
                    instruction="x",
                    success=k < hits,
                    grasped=False,
                    steps=80,
                    termination="max_steps",
                    seconds=1.0,
                    variant=name,
                ).to_json()
            )
    return out


def full_vm(rate_by_task: dict[str, int]) -> list[dict[str, object]]:
    """Every VM task, `rate_by_task[family]` successes of 4 trials on each arm texture."""
    out: list[dict[str, object]] = []
    for task in VM.tasks:
        hits = rate_by_task[task.family]
        out += records(VM.name, task.name, {v.name: (hits, 4) for v in task.variants})
    return out


def test_a_cell_averages_variants_then_tasks() -> None:
    even = AveragedRate(((Proportion(1, 4), Proportion(3, 4)), (Proportion(4, 4),)))
    assert even.rate == pytest.approx((0.25 + 0.75) / 2 / 2 + 1.0 / 2)
    # equal-sized parts: the mean is the pooled rate and the interval is the pooled Wilson one
    assert even.trials == 12 and even.successes == 8
    pooled = AveragedRate(((Proportion(1, 4), Proportion(3, 4)),))
    assert pooled.rate == pytest.approx(4 / 8)
    assert pooled.interval == wilson_interval(4, 8)
    uneven = AveragedRate(((Proportion(1, 1), Proportion(0, 3)),))
    assert uneven.rate == pytest.approx(0.5)  # not the pooled 1/4
    low, high = uneven.interval
    assert 0.0 <= low < 0.5 < high <= 1.0


def test_vm_cells_follow_the_papers_columns(tmp_path: Path) -> None:
    rows = full_vm({"pick_coke_can": 3, "move_near": 2, "drawer": 1, "apple_in_drawer": 0})
    run = write_run(tmp_path / "vm", rows, policy="scripted", suite=VM.name)
    row = run_row(GOOGLE_ROBOT_LAYOUT, load_runs([run], GOOGLE_ROBOT_LAYOUT.run_suites)[0])
    rates = {key: None if cell is None else cell.rate for key, cell in row.cells.items()}
    assert rates["vm_coke_can"] == pytest.approx(0.75)
    assert rates["vm_move_near"] == pytest.approx(0.5)
    assert rates["vm_drawer"] == pytest.approx(0.25)
    assert rates["vm_apple_in_drawer"] == pytest.approx(0.0)
    assert row.means["vm_mean"] == pytest.approx(100 * (0.75 + 0.5 + 0.25) / 3)
    assert rates["va_coke_can"] is None and row.means["va_mean"] is None
    cell = row.cells["vm_coke_can"]
    assert cell is not None and cell.trials == 3 * 4 * 4


def test_drawer_is_the_mean_of_open_and_close(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = []
    for task in VM.tasks:
        if task.family != "drawer":
            continue
        hits = 4 if task.name.startswith("open") else 0
        rows += records(VM.name, task.name, {v.name: (hits, 4) for v in task.variants})
    run = write_run(tmp_path / "vm", rows, suite=VM.name)
    row = run_row(GOOGLE_ROBOT_LAYOUT, load_runs([run], GOOGLE_ROBOT_LAYOUT.run_suites)[0])
    cell = row.cells["vm_drawer"]
    assert cell is not None and cell.rate == pytest.approx(0.5)


def test_va_averages_variants_unweighted_and_leaves_the_cameras_out(tmp_path: Path) -> None:
    task = "pick_coke_can_horizontal"
    names = [v.name for v in VA.select_tasks([task])[0].variants]
    # base: 5 trials all succeed; every other variant: 1 trial, failed
    counts = {name: ((5, 5) if name == "base" else (0, 1)) for name in names}
    rows: list[dict[str, object]] = []
    for orientation in ("horizontal", "vertical", "standing"):
        rows += records(VA.name, f"pick_coke_can_{orientation}", counts)
        rows += records(
            VA.name,
            f"pick_coke_can_{orientation}_alt_camera",
            {"alt_camera": (1, 1), "alt_camera_2": (1, 1)},
        )
    run = write_run(tmp_path / "va", rows, suite=VA.name)
    row = run_row(GOOGLE_ROBOT_LAYOUT, load_runs([run], GOOGLE_ROBOT_LAYOUT.run_suites)[0])
    cell = row.cells["va_coke_can"]
    assert cell is not None
    assert cell.rate == pytest.approx(1 / len(names))  # pooled would be 5 / (5 + 8)
    assert cell.trials == 3 * (5 + len(names) - 1)  # camera episodes are not counted


def test_vm_and_va_runs_of_one_policy_make_one_row(tmp_path: Path) -> None:
    vm = write_run(
        tmp_path / "vm",
        full_vm({"pick_coke_can": 4, "move_near": 4, "drawer": 4, "apple_in_drawer": 4}),
        policy="scripted",
        suite=VM.name,
    )
    va_rows: list[dict[str, object]] = []
    for task in VA.select_tasks(None):
        va_rows += records(VA.name, task.name, {v.name: (0, 1) for v in task.variants})
    va = write_run(tmp_path / "va", va_rows, policy="scripted", suite=VA.name)
    other = write_run(
        tmp_path / "other",
        full_vm({"pick_coke_can": 0, "move_near": 0, "drawer": 0, "apple_in_drawer": 0}),
        policy="zero",
        suite=VM.name,
    )
    text = render_table([vm, other, va], "md", compare_paper=True)
    table = md_rows(text)
    scripted = table["scripted"]
    # 4 episodes per arm texture and 1 per scene variant: every cell reads part of its grid
    assert scripted[0].startswith("100.0") and scripted[3] == "100.0¶"  # VM coke can, VM mean
    assert scripted[5].startswith("0.0") and scripted[8] == "0.0¶"  # VA coke can, VA mean
    assert table["zero"][3] == "0.0¶" and table["zero"][8] == "-‡"
    horizontal = VM.select_tasks(["pick_coke_can_horizontal"])[0]
    assert f"google_robot_vm pick_coke_can_horizontal 16/{len(horizontal.episode_ids)}" in text
    assert "SpatialVLA fine-tuned" in table


def test_a_full_grid_is_not_marked_partial(tmp_path: Path) -> None:
    task = VM.select_tasks(["put_apple_in_drawer"])[0]
    per_texture = len(task.episode_ids) // len(task.variants)
    rows = records(VM.name, task.name, {v.name: (per_texture, per_texture) for v in task.variants})
    short = records(VM.name, task.name, {v.name: (1, 1) for v in task.variants})
    full = write_run(tmp_path / "full", rows, suite=VM.name)
    part = write_run(tmp_path / "part", short, policy="part", suite=VM.name)
    (full_row, part_row) = (
        run_row(GOOGLE_ROBOT_LAYOUT, run)
        for run in load_runs([full, part], GOOGLE_ROBOT_LAYOUT.run_suites)
    )
    assert full_row.shortfalls == () and full_row.partial == frozenset()
    assert part_row.partial == {"vm_apple_in_drawer"}
    assert [(s.task, s.episodes, s.grid) for s in part_row.shortfalls] == [
        (task.name, len(task.variants), len(task.episode_ids))
    ]


def test_a_widowx_run_does_not_join_a_google_table(tmp_path: Path) -> None:
    from tests.test_tables import full_run

    vm = write_run(
        tmp_path / "vm",
        full_vm({f: 0 for f in ("pick_coke_can", "move_near", "drawer", "apple_in_drawer")}),
        suite=VM.name,
    )
    with pytest.raises(HarnessError, match="different suites"):
        render_table([vm, full_run(tmp_path / "widowx")], "md", compare_paper=False)
