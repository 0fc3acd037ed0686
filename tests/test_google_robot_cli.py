"""`refinevla-bench run` on the Google Robot suites, end to end on the CPU simulator.

Two episodes of a task land on its first two variants (episode i runs in variant i % V), so
each run builds two environments: two arm textures in visual matching, the base scene and the
first alternative background in variant aggregation. The printed table is the paper's Google
Robot layout, and `tables` joins the two runs of one policy into one row. The policy is the
scripted expert, so the runs also show the harness, the twins and the expert fit together.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import run_cli
from tests.test_tables import md_rows


def _run(suite: str, task: str, out: Path, assets: Path) -> str:
    completed = run_cli(
        [
            "run",
            "--suite",
            suite,
            "--policy",
            "scripted",
            "--tasks",
            task,
            "--episodes",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        assets=assets,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def _records(out: Path) -> list[dict[str, object]]:
    lines = (out / "episodes.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_vm_and_va_runs_fill_the_google_robot_table(
    google_robot_assets: Path, tmp_path: Path
) -> None:
    vm_out, va_out = tmp_path / "vm", tmp_path / "va"
    coke_cans = ",".join(f"pick_coke_can_{o}" for o in ("horizontal", "vertical", "standing"))
    printed = _run("google_robot_vm", coke_cans, vm_out, google_robot_assets)
    assert "VM coke can" in printed and "VA mean" in printed
    records = _records(vm_out)
    assert [(r["episode_id"], r["seed"], r["variant"]) for r in records[:2]] == [
        (0, 0, "default"),
        (1, 0, "recolor_tabletop_visual_matching_1"),
    ]
    assert len(records) == 6
    assert all(r["steps"] == 80 and r["instruction"] == "pick coke can" for r in records)
    # the scripted expert, acting through the Google Robot's action interface, lifts every can
    # at this first grid position (rates over the grids: results/README.md)
    assert all(r["grasped"] and r["success"] for r in records)
    manifest = json.loads((vm_out / "manifest.json").read_text())
    assert manifest["assets"]["standins_used"] is True  # the stage mesh is a stand-in
    assert manifest["seeds"] == [0]  # upstream runs each grid entry once

    _run("google_robot_va", "pick_coke_can_horizontal", va_out, google_robot_assets)
    assert [r["variant"] for r in _records(va_out)] == ["base", "alt_background"]

    joined = run_cli(["tables", str(vm_out), str(va_out)], assets=None)
    assert joined.returncode == 0, joined.stderr
    rows = md_rows(joined.stdout)
    assert len([name for name in rows if name.startswith("scripted")]) == 1
    row = rows["scripted†"]  # stand-in assets
    rate = 100 * sum(bool(r["success"]) for r in records) / 6
    assert row[0].startswith(f"{rate:.1f} [") and row[0].endswith("n=6¶")  # VM coke can, 3 x 2
    assert "¶ scripted: part of the grid only" in joined.stdout
    assert "pick_coke_can_horizontal 2/100" in joined.stdout
    assert row[5] == "-"  # VA coke can needs all three orientations; this run has one
