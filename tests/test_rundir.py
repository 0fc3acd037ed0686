"""Run directories: atomic appends, partial-line recovery, resume identity, summaries."""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.manifest import REDACTED, redact_command
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.rundir import EPISODES_NAME, RunDirectory, read_episodes


def record(episode_id: int, seed: int = 0, success: bool = True) -> EpisodeRecord:
    return EpisodeRecord(
        suite="widowx",
        task="carrot_on_plate",
        episode_id=episode_id,
        seed=seed,
        instruction="put carrot on plate",
        success=success,
        grasped=True,
        steps=60,
        termination="max_steps",
        seconds=1.5,
    )


def manifest(policy: str = "zero", seeds: list[int] | None = None) -> dict[str, Any]:
    return {
        "suite": "widowx",
        "policy": {"name": policy, "config": {}},
        "success_mode": "truncation",
        "seeds": seeds or [0],
        "created": "t0",
        "invocations": [{"command": ["refinevla-bench", "run"], "started": "t0"}],
    }


def test_append_then_resume_returns_finished_episodes(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    assert run.open(manifest()) == []
    run.append(record(0))
    run.append(record(1, success=False))
    again = RunDirectory(tmp_path / "run").open(manifest(seeds=[1]))
    assert again == [record(0), record(1, success=False)]
    saved = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert saved["seeds"] == [0, 1] and len(saved["invocations"]) == 2


def test_partial_last_line_is_dropped_and_file_repaired(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    run.open(manifest())
    run.append(record(0))
    with (tmp_path / EPISODES_NAME).open("a") as handle:
        handle.write('{"suite": "widowx", "task": "carr')  # killed mid-write
    assert RunDirectory(tmp_path).open(manifest()) == [record(0)]
    assert (tmp_path / EPISODES_NAME).read_text().count("\n") == 1
    assert read_episodes(tmp_path / EPISODES_NAME).dropped_partial_line is False


def test_corrupt_middle_line_is_an_error_not_silently_dropped(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    run.open(manifest())
    run.append(record(0))
    text = (tmp_path / EPISODES_NAME).read_text()
    (tmp_path / EPISODES_NAME).write_text("garbage\n" + text)
    with pytest.raises(HarnessError, match="line 1 is corrupt"):
        RunDirectory(tmp_path).open(manifest())


def test_resume_refuses_a_different_policy(tmp_path: Path) -> None:
    RunDirectory(tmp_path).open(manifest("zero"))
    with pytest.raises(HarnessError, match="different policy") as caught:
        RunDirectory(tmp_path).open(manifest("random"))
    assert "--out" in caught.value.fix


def planned(*episode_ids: int) -> set[tuple[str, int, int]]:
    return {("carrot_on_plate", i, 0) for i in episode_ids}


def test_summary_counts_errors_as_failures(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    run.open(manifest())
    failed = replace(record(2), success=False, termination="error", error="NaN")
    for done in (record(0), record(1, success=False), failed):
        run.append(done)
    assert len(run.write_summary(planned(0, 1, 2, 3), extra={})) == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    task = summary["tasks"]["carrot_on_plate"]
    assert (task["episodes"], task["successes"], task["errors"]) == (3, 1, 1)
    assert task["success_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert (summary["planned_episodes"], summary["finished_episodes"]) == (4, 3)
    assert summary["complete"] is False


def test_summary_reads_the_folder_with_other_processes_episodes(tmp_path: Path) -> None:
    """Two processes running disjoint --tasks into one folder: the summary each writes at its
    end covers the other's episodes, and `complete` is about its own selection only."""
    mine, theirs = RunDirectory(tmp_path), RunDirectory(tmp_path)
    mine.open(manifest())
    theirs.open(manifest())
    mine.append(record(0))
    theirs.append(replace(record(0), task="spoon_on_towel"))  # after `mine` opened the folder
    mine.append(record(1))
    records = mine.write_summary(planned(0, 1), extra={})
    assert [(r.task, r.episode_id) for r in records] == [
        ("carrot_on_plate", 0),
        ("spoon_on_towel", 0),
        ("carrot_on_plate", 1),
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["tasks"]) == {"carrot_on_plate", "spoon_on_towel"}
    assert summary["overall"]["episodes"] == 3
    assert (summary["planned_episodes"], summary["finished_episodes"]) == (2, 2)
    assert summary["complete"] is True
    # more episodes in the folder than planned does not make a selection complete
    mine.write_summary(planned(0, 1, 2), extra={})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["finished_episodes"], summary["complete"]) == (2, False)


def test_command_line_secrets_are_redacted() -> None:
    argv = ["run", "--api-key", "sk-123", "--policy-arg", "token=abc", "--out", "R", "--token=x"]
    assert redact_command(argv) == [
        "run",
        "--api-key",
        REDACTED,
        "--policy-arg",
        f"token={REDACTED}",
        "--out",
        "R",
        f"--token={REDACTED}",
    ]


def _open_with_invocation(folder: str, index: int, start: Any) -> None:
    start.wait()
    entry = {"command": ["refinevla-bench", "run", "--tasks", f"task{index}"], "started": "t"}
    RunDirectory(Path(folder)).open({**manifest(), "invocations": [entry]})


def test_processes_opening_one_folder_at_once_keep_every_invocation(tmp_path: Path) -> None:
    """Disjoint --tasks run as separate processes into one --out: all start together."""
    folder = tmp_path / "run"
    RunDirectory(folder).open(manifest())
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(6)
    workers = [
        context.Process(target=_open_with_invocation, args=(str(folder), index, start))
        for index in range(6)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * 6
    saved = json.loads((folder / "manifest.json").read_text())
    tasks = sorted(entry["command"][-1] for entry in saved["invocations"][1:])
    assert tasks == [f"task{index}" for index in range(6)]
    assert sorted(path.name for path in folder.iterdir()) == ["manifest.json"]


def test_replaced_files_get_the_mode_a_plain_write_would(tmp_path: Path) -> None:
    """Readable by the group and others under the usual umask (mkstemp alone gives 0600)."""
    run = RunDirectory(tmp_path / "run")
    run.open(manifest())
    run.append(record(0))
    with (tmp_path / "run" / EPISODES_NAME).open("a") as episodes:
        episodes.write('{"torn": ')  # a kill mid-write: the next open rewrites the file
    RunDirectory(tmp_path / "run").open(manifest())
    run.write_summary(planned(0), extra={})
    plain = tmp_path / "run" / "plain.txt"
    plain.write_text("x")
    for name in ("manifest.json", "summary.json", EPISODES_NAME):
        mode = (tmp_path / "run" / name).stat().st_mode & 0o777
        assert mode == plain.stat().st_mode & 0o777, name
