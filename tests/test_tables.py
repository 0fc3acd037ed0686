"""`refinevla-bench tables`: counts, Wilson intervals, the paper layout and the published rows.

Run folders are written here by hand, exactly as the runner writes them (EpisodeRecord JSON
lines and a manifest), so the tables are checked against numbers known in advance.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from scipy.stats import binomtest
from typer.testing import CliRunner

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.records import EpisodeRecord, Termination
from refinevla_bench.harness.suites import get_suite
from refinevla_bench.harness.tables.command import render_table, tables
from refinevla_bench.harness.tables.layout import GOOGLE_ROBOT_LAYOUT, layout_for_suite
from refinevla_bench.harness.tables.reference import check_mean, load_reference, reference_dir
from refinevla_bench.harness.tables.runs import load_run, load_runs
from refinevla_bench.harness.tables.stats import Proportion, wilson_interval

TASKS = [task.name for task in get_suite("widowx").tasks]
RUN_FOLDER_FIX = "point at a folder made by `refinevla-bench run --out`"


def episode(
    task: str,
    episode_id: int,
    seed: int = 0,
    success: bool = False,
    grasped: bool = False,
    termination: Termination = "max_steps",
    suite: str = "widowx",
) -> dict[str, object]:
    return EpisodeRecord(
        suite=suite,
        task=task,
        episode_id=episode_id,
        seed=seed,
        instruction="do it",
        success=success,
        grasped=grasped,
        steps=60,
        termination=termination,
        seconds=1.5,
        error="boom" if termination == "error" else None,
    ).to_json()


def task_episodes(task: str, trials: int, successes: int, grasps: int) -> list[dict[str, object]]:
    """`trials` episodes over seeds 0, 1, 2 (24 ids each); the first ones succeed / grasp."""
    return [
        episode(task, i % 24, seed=i // 24, success=i < successes, grasped=i < grasps)
        for i in range(trials)
    ]


def write_run(
    path: Path,
    records: list[dict[str, object]],
    policy: str = "zero",
    suite: str = "widowx",
    standins: bool = False,
    tail: str = "",
) -> Path:
    path.mkdir(parents=True)
    manifest = {
        "suite": suite,
        "policy": {"name": policy, "config": {}},
        "success_mode": "truncation",
        "seeds": [0, 1, 2],
        "assets": {"standins_used": standins},
        "harness_version": "0.1.0",
    }
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (path / "episodes.jsonl").write_text(lines + tail, encoding="utf-8")
    return path


# successes, grasps out of 72 per task: spoon 30, carrot 12, stack 0, eggplant 72
FULL_COUNTS = {
    "spoon_on_towel": (30, 40),
    "carrot_on_plate": (12, 50),
    "stack_block": (0, 5),
    "eggplant_in_basket": (72, 72),
}
FULL_MEAN = 100 * (30 + 12 + 0 + 72) / 72 / 4  # 39.58...


def full_run(path: Path, policy: str = "zero", standins: bool = False) -> Path:
    records = [
        record
        for task, (successes, grasps) in FULL_COUNTS.items()
        for record in task_episodes(task, 72, successes, grasps)
    ]
    return write_run(path, records, policy=policy, standins=standins)


def roots_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's interval as the roots of (p_hat - p)^2 = z^2 p (1 - p) / n, solved directly."""
    p_hat = successes / trials
    a = 1 + z * z / trials
    b = -(2 * p_hat + z * z / trials)
    c = p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def percent(bounds: tuple[float, float]) -> tuple[float, float]:
    return round(100 * bounds[0], 1), round(100 * bounds[1], 1)


def test_wilson_known_values() -> None:
    assert percent(wilson_interval(0, 24)) == (0.0, 13.8)
    assert percent(wilson_interval(12, 24)) == (31.4, 68.6)
    assert percent(wilson_interval(24, 24)) == (86.2, 100.0)
    assert percent(wilson_interval(30, 72)) == (31.0, 53.2)


@pytest.mark.parametrize("trials", [1, 24, 72, 96])
def test_wilson_matches_independent_formulas(trials: int) -> None:
    for successes in range(trials + 1):
        low, high = wilson_interval(successes, trials)
        assert (low, high) == pytest.approx(roots_interval(successes, trials), abs=1e-9)
        # scipy uses z = 1.95996..., not 1.96, so agree to a few parts in a million
        scipy_ci = binomtest(successes, trials).proportion_ci(method="wilson")
        assert (low, high) == pytest.approx((scipy_ci.low, scipy_ci.high), abs=2e-5)


def test_wilson_rejects_impossible_counts() -> None:
    for successes, trials in ((0, 0), (5, 4), (-1, 4)):
        with pytest.raises(ValueError):
            wilson_interval(successes, trials)
    with pytest.raises(ValueError):
        Proportion(1, 0)


def test_counts_per_task_with_errors_as_failures(tmp_path: Path) -> None:
    records = [
        *task_episodes("spoon_on_towel", 24, successes=6, grasps=9),
        episode("spoon_on_towel", 0, seed=1, success=True, grasped=True, termination="error"),
        episode("spoon_on_towel", 1, seed=2, termination="error"),
        *task_episodes("carrot_on_plate", 3, successes=1, grasps=2),
    ]
    run = load_run(write_run(tmp_path / "run", records))
    spoon = run.tasks[("widowx", "spoon_on_towel")]
    assert (spoon.trials, spoon.successes, spoon.grasps, spoon.errors) == (26, 6, 10, 2)
    assert spoon.seeds == (0, 1, 2)
    carrot = run.tasks[("widowx", "carrot_on_plate")]
    assert (carrot.trials, carrot.successes, carrot.grasps, carrot.errors) == (3, 1, 2, 0)
    assert set(run.tasks) == {("widowx", "spoon_on_towel"), ("widowx", "carrot_on_plate")}
    assert (run.label, run.policy, run.suite, run.standins_used) == (
        "zero",
        "zero",
        "widowx",
        False,
    )


def md_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell."""
    rows = [line.strip("|").split(" | ") for line in text.splitlines() if line.startswith("| ")]
    return {row[0].strip(): [cell.strip() for cell in row[1:]] for row in rows}


def test_markdown_cells_grasp_success_and_mean(tmp_path: Path) -> None:
    text = render_table([full_run(tmp_path / "run")], "md", compare_paper=False)
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    titles = [task.title for task in get_suite("widowx").tasks]
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "model",
        *(f"{title} {measure}" for title in titles for measure in ("grasp", "success")),
        "mean success",
    ]
    row = md_rows(text)["zero"]
    assert row[0] == "55.6 [44.1, 66.5] n=72"  # spoon grasp 40/72
    assert row[1] == "41.7 [31.0, 53.2] n=72"  # spoon success 30/72
    for index, (successes, grasps) in enumerate(FULL_COUNTS.values()):
        for cell, k in ((row[2 * index], grasps), (row[2 * index + 1], successes)):
            low, high = percent(roots_interval(k, 72))
            assert cell == f"{100 * k / 72:.1f} [{low:.1f}, {high:.1f}] n=72"
    assert row[8] == f"{FULL_MEAN:.1f}" == "39.6"
    assert "published" not in text


def test_csv_has_separate_numeric_columns(tmp_path: Path) -> None:
    text = render_table([full_run(tmp_path / "run")], "csv", compare_paper=False)
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["model"] == "zero" and row["kind"] == "run"
    assert float(row["spoon_on_towel_success"]) == pytest.approx(41.67)
    assert (row["spoon_on_towel_success_k"], row["spoon_on_towel_success_n"]) == ("30", "72")
    assert float(row["spoon_on_towel_success_low"]) == pytest.approx(31.0, abs=0.05)
    assert float(row["spoon_on_towel_success_high"]) == pytest.approx(53.2, abs=0.05)
    assert float(row["stack_block_grasp"]) == pytest.approx(100 * 5 / 72, abs=0.005)
    assert float(row["eggplant_in_basket_success_high"]) == 100.0
    assert float(row["mean_success"]) == pytest.approx(FULL_MEAN, abs=0.005)
    assert all(row[f"{task}_errors"] == "0" for task in TASKS)


def test_json_has_separate_numeric_columns(tmp_path: Path) -> None:
    document = json.loads(render_table([full_run(tmp_path / "run")], "json", False))
    assert document["suite"] == "widowx"
    (row,) = document["rows"]
    assert row["carrot_on_plate_success"] == pytest.approx(100 * 12 / 72, abs=0.005)
    assert row["carrot_on_plate_grasp_k"] == 50 and row["carrot_on_plate_grasp_n"] == 72
    low, high = roots_interval(12, 72)
    assert row["carrot_on_plate_success_low"] == pytest.approx(100 * low, abs=0.005)
    assert row["carrot_on_plate_success_high"] == pytest.approx(100 * high, abs=0.005)
    assert row["mean_success"] == pytest.approx(FULL_MEAN, abs=0.005)
    assert row["standins_used"] is False and row["seeds"] == "0 1 2"


def latex_body_rows(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.endswith(r"\\") and not line.startswith(r"\multicolumn")
    ]


def test_latex_is_an_escaped_tabular(tmp_path: Path) -> None:
    run = full_run(tmp_path / "run", policy="my_policy & 100%")
    text = render_table([run], "latex", compare_paper=True)
    lines = text.splitlines()
    assert lines[0] == r"\begin{tabular}{lccccccccc}" and lines[-1] == r"\end{tabular}"
    assert text.count(r"\begin{") == text.count(r"\end{") == 1
    assert text.count("{") == text.count("}")
    assert not re.search(r"(?<!\\)[%_#$]", text)  # every special character is escaped
    rows = latex_body_rows(text)
    assert len(rows) == 1 + 1 + 9  # header, the run, the 9 published rows
    assert all(len(re.findall(r"(?<!\\)&", row)) == 9 for row in rows)
    assert r"my\_policy \& 100\%" in text
    assert r"41.7 [31.0, 53.2] n=72" in text
    assert r"30.0\textsuperscript{\S}" in text  # the flagged Octo-Small mean


def test_mean_needs_all_four_tasks(tmp_path: Path) -> None:
    records = task_episodes("spoon_on_towel", 24, 12, 12) + task_episodes("stack_block", 24, 0, 0)
    run = write_run(tmp_path / "run", records)
    text = render_table([run], "md", compare_paper=False)
    row = md_rows(text)["zero"]
    assert row[1] == "50.0 [31.4, 68.6] n=24"
    assert row[2] == row[3] == "-"  # carrot: no episodes
    assert row[8] == "-‡"
    assert "‡ mean shown only when every task it averages has episodes" in text
    (record,) = csv.DictReader(io.StringIO(render_table([run], "csv", False)))
    assert record["mean_success"] == "" and record["carrot_on_plate_success"] == ""
    assert "‡" not in render_table([full_run(tmp_path / "full")], "md", False)


def test_cells_from_part_of_a_grid_are_marked(tmp_path: Path) -> None:
    # spoon: 10 of seed 0's 24 episodes; carrot: seeds 0 and 1 in full; stack and eggplant:
    # seed 0 only, so they miss the seed 1 that the run used on carrot
    records = (
        task_episodes("spoon_on_towel", 10, 5, 5)
        + task_episodes("carrot_on_plate", 48, 48, 48)
        + task_episodes("stack_block", 24, 0, 0)
        + task_episodes("eggplant_in_basket", 24, 24, 24)
    )
    run = write_run(tmp_path / "run", records)
    text = render_table([run], "md", compare_paper=False)
    row = md_rows(text)["zero"]
    assert row[0] == "50.0 [23.7, 76.3] n=10¶" and row[1] == "50.0 [23.7, 76.3] n=10¶"
    assert row[2] == "100.0 [92.6, 100.0] n=48" == row[3]  # a full grid: no mark
    assert row[4].endswith("n=24¶") and row[7].endswith("n=24¶")
    assert row[8] == f"{(50 + 100 + 0 + 100) / 4:.1f}¶"
    assert (
        "¶ zero: part of the grid only (episodes run / full grid): spoon_on_towel 10/48, "
        "stack_block 24/48, eggplant_in_basket 24/48;"
    ) in text
    (record,) = csv.DictReader(io.StringIO(render_table([run], "csv", False)))
    assert record["spoon_on_towel_success_partial"] == "True"
    assert record["carrot_on_plate_success_partial"] == "False"
    assert record["mean_success_partial"] == "True"
    latex = render_table([run], "latex", False)
    assert r"n=10\textsuperscript{\P}" in latex
    full = render_table([full_run(tmp_path / "full")], "md", False)
    assert "¶" not in full
    (record,) = csv.DictReader(io.StringIO(render_table([full_run(tmp_path / "f2")], "csv", False)))
    assert record["mean_success_partial"] == "False"


def test_standin_runs_are_marked(tmp_path: Path) -> None:
    standin = full_run(tmp_path / "a", policy="octo", standins=True)
    real = full_run(tmp_path / "b", policy="zero")
    text = render_table([standin, real], "md", compare_paper=False)
    rows = md_rows(text)
    assert "octo†" in rows and "zero" in rows
    assert "† run made with stand-in assets" in text
    records = list(csv.DictReader(io.StringIO(render_table([standin, real], "csv", False))))
    assert [r["standins_used"] for r in records] == ["True", "False"]
    assert "†" not in render_table([real], "md", False)


def test_two_runs_of_one_policy_are_told_apart(tmp_path: Path) -> None:
    first = full_run(tmp_path / "seed-a", policy="zero")
    second = full_run(tmp_path / "seed-b", policy="zero")
    other = full_run(tmp_path / "other", policy="octo")
    runs = load_runs([first, second, other])
    assert [run.label for run in runs] == ["zero (seed-a)", "zero (seed-b)", "octo"]
    same_name = full_run(tmp_path / "x" / "run", policy="zero")
    labels = [run.label for run in load_runs([full_run(tmp_path / "y" / "run"), same_name])]
    assert labels == [f"zero ({tmp_path / 'y' / 'run'})", f"zero ({tmp_path / 'x' / 'run'})"]
    assert set(md_rows(render_table([first, second], "md", False))) >= {
        "zero (seed-a)",
        "zero (seed-b)",
    }


def test_partial_last_line_is_ignored(tmp_path: Path) -> None:
    records = task_episodes("carrot_on_plate", 5, 2, 3)
    run = write_run(tmp_path / "run", records, tail='{"suite": "widowx", "task": "carr')
    counts = load_run(run).tasks[("widowx", "carrot_on_plate")]
    assert (counts.trials, counts.successes, counts.grasps) == (5, 2, 3)


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", task_episodes("carrot_on_plate", 5, 2, 3))
    lines = (run / "episodes.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:20]
    (run / "episodes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(HarnessError, match="line 3"):
        load_run(run)


def test_record_without_needed_fields_is_an_error(tmp_path: Path) -> None:
    broken = {**episode("carrot_on_plate", 0), "success": "yes"}
    run = write_run(tmp_path / "run", [broken, episode("carrot_on_plate", 1)])
    with pytest.raises(HarnessError, match="'success'"):
        load_run(run)


@pytest.mark.parametrize("missing", ["manifest.json", "episodes.jsonl"])
def test_missing_run_files(tmp_path: Path, missing: str) -> None:
    run = full_run(tmp_path / "run")
    (run / missing).unlink()
    with pytest.raises(HarnessError) as caught:
        render_table([run], "md", compare_paper=False)
    assert str(run) in caught.value.problem and missing in caught.value.problem
    assert caught.value.fix == RUN_FOLDER_FIX


def test_not_a_folder_at_all(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as caught:
        load_runs([tmp_path / "nowhere"])
    assert caught.value.fix == RUN_FOLDER_FIX


def test_runs_of_different_suites_are_refused(tmp_path: Path) -> None:
    widowx = full_run(tmp_path / "widowx")
    google = write_run(
        tmp_path / "google", [episode("coke_can", 0, suite="google_robot")], suite="google_robot"
    )
    with pytest.raises(HarnessError, match="different suites"):
        load_runs([widowx, google])


def test_unknown_format_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as caught:
        render_table([full_run(tmp_path / "run")], "html", compare_paper=False)
    assert "html" in caught.value.problem
    for name in ("md", "csv", "latex", "json"):
        assert name in caught.value.fix


def printed_mismatches(path: Path, means: dict[str, list[str]]) -> set[tuple[str, str]]:
    """(model, mean column) whose printed mean is off the mean of its printed cells by > 0.05.

    Exact decimal arithmetic on the CSV text, so a rounding tie such as 1.05 -> 1.1 is not a
    mismatch; rows with an unreported cell cannot be checked.
    """
    found: set[tuple[str, str]] = set()
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for mean, cells in means.items():
                if not row[mean] or not all(row[cell] for cell in cells):
                    continue
                computed = sum((Decimal(row[cell]) for cell in cells), Decimal(0)) / len(cells)
                if abs(Decimal(row[mean]) - computed) > Decimal("0.05"):
                    found.add((row["model"], mean))
    return found


def test_widowx_flags_exactly_the_mismatched_published_means(tmp_path: Path) -> None:
    successes = [f"{task}_success" for task in TASKS]
    expected = printed_mismatches(reference_dir() / "widowx.csv", {"mean_success": successes})
    assert expected == {("Octo-Small", "mean_success")}  # 30.0 printed, 29.5 computed
    rows = load_reference(layout_for_suite("widowx"))
    flagged = {(row.model, key) for row in rows for key, c in row.mean_checks.items() if c.flagged}
    assert flagged == expected
    refinevla = next(row for row in rows if row.model == "ReFineVLA")
    assert refinevla.mean_checks["mean_success"].computed is None

    text = render_table([full_run(tmp_path / "run")], "md", compare_paper=True)
    table_rows = md_rows(text)
    marked = {model for model, cells in table_rows.items() if cells[-1].endswith("§")}
    assert marked == {model for model, _ in expected}
    assert "§ Octo-Small: the published mean success 30.0 is not the mean of its row (29.50)" in (
        text
    )


def test_google_flags_rt1x_variant_aggregation_mean() -> None:
    rows = {row.model: row for row in load_reference(GOOGLE_ROBOT_LAYOUT)}
    rt1x = rows["RT-1-X"].mean_checks["va_mean"]
    assert rt1x.flagged and rt1x.computed == pytest.approx((49.0 + 32.3 + 35.3) / 3)
    assert rows["SpatialVLA fine-tuned"].mean_checks["vm_mean"].flagged
    assert rows["HPT"].mean_checks["va_mean"].computed is None  # "-" cells: not computable
    assert not rows["RT-2-X"].mean_checks["va_mean"].flagged
    expected = printed_mismatches(
        reference_dir() / "google_robot.csv",
        {
            "vm_mean": ["vm_coke_can", "vm_move_near", "vm_drawer"],
            "va_mean": ["va_coke_can", "va_move_near", "va_drawer"],
        },
    )
    flagged = {
        (model, key)
        for model, row in rows.items()
        for key, c in row.mean_checks.items()
        if c.flagged
    }
    assert flagged == expected and ("RT-1-X", "va_mean") in flagged


def test_check_mean_tolerates_rounding_only() -> None:
    assert not check_mean(1.1, [0.0, 4.2, 0.0, 0.0]).flagged  # 1.05 printed as 1.1
    assert not check_mean(31.3, [29.2, 25.0, 12.5, 58.3]).flagged  # 31.25 printed as 31.3
    assert check_mean(30.0, [47.2, 9.7, 4.2, 56.9]).flagged
    missing = check_mean(45.0, [None, None, 31.0])
    assert missing.computed is None and not missing.flagged


def test_reference_rows_are_verbatim() -> None:
    rows = load_reference(layout_for_suite("widowx"))
    assert rows[0].model == "RT-1-X" and len(rows) == 9
    rt1x = rows[0]
    assert [rt1x.printed[f"{task}_{m}"] for task in TASKS for m in ("grasp", "success")] == [
        "16.7",
        "0.0",
        "20.8",
        "4.2",
        "8.3",
        "0.0",
        "0.0",
        "0.0",
    ]
    assert rt1x.printed["mean_success"] == "1.1" and "Table I" in rt1x.source
    refinevla = rows[-1]
    assert refinevla.printed["mean_success"] == "47.7"
    assert all(refinevla.printed[f"{task}_success"] is None for task in TASKS)
    assert refinevla.paper_version


def test_compare_paper_adds_published_rows_in_every_format(tmp_path: Path) -> None:
    run = full_run(tmp_path / "run")
    models = [row.model for row in load_reference(layout_for_suite("widowx"))]
    lines = render_table([run], "md", compare_paper=True).splitlines()
    first_cells = [line.split(" | ")[0].lstrip("| ") for line in lines if line.startswith("| ")]
    assert first_cells[2:] == ["zero", "*published*", *models]
    assert md_rows("\n".join(lines))["RT-1-X"][-1] == "1.1"
    assert md_rows("\n".join(lines))["ReFineVLA"] == ["-"] * 8 + ["47.7"]

    records = list(csv.DictReader(io.StringIO(render_table([run], "csv", True))))
    assert [r["kind"] for r in records] == ["run"] + ["published"] * len(models)
    octo = next(r for r in records if r["model"] == "Octo-Small")
    assert (octo["mean_success"], octo["mean_success_flagged"]) == ("30.0", "True")
    assert float(octo["mean_success_computed"]) == pytest.approx(29.5)

    document = json.loads(render_table([run], "json", True))
    published = [r for r in document["rows"] if r["kind"] == "published"]
    assert [r["model"] for r in published] == models
    assert published[0]["spoon_on_towel_grasp"] == 16.7
    assert published[-1]["spoon_on_towel_grasp"] is None


def test_typer_command_prints_the_table(tmp_path: Path) -> None:
    run = full_run(tmp_path / "run")
    app = typer.Typer()
    app.command("tables")(tables)
    result = CliRunner().invoke(app, [str(run), "--format", "csv", "--compare-paper"])
    assert result.exit_code == 0, result.output
    assert result.output == render_table([run], "csv", compare_paper=True)
    result = CliRunner().invoke(app, [str(run)])
    assert result.output == render_table([run], "md", compare_paper=False)
    failed = CliRunner().invoke(app, [str(run), "--format", "xml"])
    assert isinstance(failed.exception, HarnessError)
