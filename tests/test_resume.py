"""The acceptance path: kill a run mid-way, rerun the same command, get the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support import cli_executable, run_cli

COMMAND = [
    "run",
    "--policy",
    "random",
    "--seeds",
    "0,1",
    "--episodes",
    "2",
    "--tasks",
    "carrot_on_plate",
]


def episode_lines(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "episodes.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def comparable(records: list[dict[str, object]]) -> dict[tuple[object, ...], dict[str, object]]:
    """Per-episode results without wall-clock time, keyed by (task, episode_id, seed)."""
    return {
        (r["task"], r["episode_id"], r["seed"]): {k: v for k, v in r.items() if k != "seconds"}
        for r in records
    }


def test_killed_run_resumes_to_the_uninterrupted_result(
    widowx_assets: Path, tmp_path: Path
) -> None:
    killed_dir = tmp_path / "killed"
    env = {**os.environ, "REFINEVLA_ASSETS": str(widowx_assets)}
    process = subprocess.Popen(
        [cli_executable(), *COMMAND, "--out", str(killed_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        episodes = killed_dir / "episodes.jsonl"
        if episodes.exists() and episodes.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(episode_lines(killed_dir))
    assert 1 <= done_before < 4  # really killed mid-run

    resumed = run_cli([*COMMAND, "--out", str(killed_dir)], assets=widowx_assets)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming: {done_before} episode(s) already done" in resumed.stderr
    fresh = run_cli([*COMMAND, "--out", str(tmp_path / "fresh")], assets=widowx_assets)
    assert fresh.returncode == 0, fresh.stderr[-2000:]

    resumed_records = episode_lines(killed_dir)
    keys = [(r["task"], r["episode_id"], r["seed"]) for r in resumed_records]
    assert len(keys) == len(set(keys)) == 4  # each (task, episode_id, seed) exactly once
    assert comparable(resumed_records) == comparable(episode_lines(tmp_path / "fresh"))
    summary = json.loads((killed_dir / "summary.json").read_text())
    assert summary["complete"] is True and summary["finished_episodes"] == 4
