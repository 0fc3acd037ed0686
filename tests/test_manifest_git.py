"""The manifest's git state: a run's own output folder never makes the source "dirty"."""

from __future__ import annotations

import subprocess
from pathlib import Path

from refinevla_bench.harness.manifest import git_state


def git(repo: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def committed_checkout(tmp_path: Path) -> Path:
    """A repository with source in harness/ and policies/ and a committed result folder
    results/run."""
    repo = tmp_path / "repo"
    (repo / "harness").mkdir(parents=True)
    (repo / "results" / "run").mkdir(parents=True)
    (repo / "harness" / "runner.py").write_text("STEPS = 80\n")
    (repo / "policies").mkdir()
    (repo / "policies" / "expert.py").write_text("LIFT = 0.12\n")
    (repo / "results" / "run" / "episodes.jsonl").write_text('{"episode_id": 0}\n')
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "-m",
        "base",
    )
    return repo


def test_appending_to_the_runs_own_committed_folder_keeps_it_clean(tmp_path: Path) -> None:
    repo = committed_checkout(tmp_path)
    with (repo / "results" / "run" / "episodes.jsonl").open("a") as episodes:
        episodes.write('{"episode_id": 1}\n')
    state = git_state(repo / "results" / "run", source=repo / "harness")
    assert state == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
    # without naming the output folder the same change counts, as for any tracked file
    assert git_state(source=repo / "harness")["dirty"] is True


def test_a_source_change_is_dirty_whatever_the_output_folder(tmp_path: Path) -> None:
    repo = committed_checkout(tmp_path)
    (repo / "harness" / "runner.py").write_text("STEPS = 120\n")
    assert git_state(repo / "results" / "run", source=repo / "harness")["dirty"] is True


def test_a_change_beside_the_harness_folder_is_dirty(tmp_path: Path) -> None:
    repo = committed_checkout(tmp_path)
    (repo / "policies" / "expert.py").write_text("LIFT = 0.05\n")
    assert git_state(repo / "results" / "run", source=repo / "harness")["dirty"] is True


def test_an_output_folder_outside_the_checkout_is_ignored(tmp_path: Path) -> None:
    repo = committed_checkout(tmp_path)
    assert git_state(tmp_path / "elsewhere", source=repo / "harness")["dirty"] is False


def test_outside_a_checkout_the_state_is_unknown(tmp_path: Path) -> None:
    assert git_state(source=tmp_path) == {"commit": None, "dirty": None}
