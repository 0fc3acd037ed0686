"""`collect` on the real simulator: a LeRobot dataset with ground truth, resumable after a kill."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from refinevla_bench.harness.datasets.open import open_dataset
from tests.support import cli_executable, run_cli

pytestmark = pytest.mark.sim

COMMAND = ["collect", "--tasks", "carrot_on_plate,stack_block", "--device", "cpu"]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_collected_episodes_carry_frames_actions_and_ground_truth(demo_dataset: Path) -> None:
    info = json.loads((demo_dataset / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["fps"] == 5.0
    assert info["total_episodes"] == 3 and info["robot_type"] == "widowx"
    assert info["refinevla"]["action_conventions"]["rotation"] == "axis_angle"
    source = open_dataset(demo_dataset)
    tasks = [source.episode(index).metadata["task"] for index in range(len(source))]
    # planned round-robin over tasks, simulated task by task on one environment each
    assert tasks == ["carrot_on_plate", "carrot_on_plate", "stack_block"]
    for episode in source:
        assert episode.metadata["success"] is True and episode.length == 60
        assert episode.actions.shape == (60, 7)
        frames = episode.frames([0, episode.length - 1])
        assert frames.shape == (2, 480, 640, 3) and frames.std() > 10  # a rendered scene
        source_pose = episode.privileged("source_pose")
        target_pose = episode.privileged("target_pose")
        grasped = episode.privileged("source_grasped")
        assert source_pose is not None and target_pose is not None and grasped is not None
        assert grasped.max() == 1.0  # the expert held the object at some point
        start = np.linalg.norm(source_pose[0, :2] - target_pose[0, :2])
        end = np.linalg.norm(source_pose[-1, :2] - target_pose[-1, :2])
        assert end < 0.05 < start  # it ended on the target, having started off it
        state = episode.state["observation.state"]
        tcp_pose = episode.privileged("tcp_pose")
        assert tcp_pose is not None and np.allclose(state[:, :7], tcp_pose, atol=1e-6)
        assert state[0, 7] == 1.0 and np.array_equal(state[1:, 7], episode.actions[:-1, 6])


def test_same_command_adds_nothing_and_more_episodes_resume(
    demo_dataset: Path, widowx_assets: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo_dataset, copy)
    before = tree_digest(copy)
    again = run_cli([*COMMAND, "--episodes", "3", "--out", str(copy)], assets=widowx_assets)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "kept=0 already=3" in again.stdout
    assert tree_digest(copy) == before

    other = run_cli(
        [*COMMAND, "--policy", "zero", "--episodes", "3", "--out", str(copy)], assets=widowx_assets
    )
    assert other.returncode == 2 and "collected with policy 'scripted'" in other.stderr


def test_killed_collection_resumes_without_duplicates(widowx_assets: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    command = [*COMMAND, "--tasks", "carrot_on_plate", "--episodes", "3", "--out", str(out)]
    process = subprocess.Popen(
        [cli_executable(), *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "REFINEVLA_ASSETS": str(widowx_assets)},
    )
    episodes = out / "meta" / "episodes.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if episodes.exists() and episodes.read_text().count("\n") >= 1:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = episodes.read_text().count("\n")
    assert 1 <= done_before < 3  # really killed mid-collection

    resumed = run_cli(command, assets=widowx_assets)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"already={done_before}" in resumed.stdout
    source = open_dataset(out)
    ids = [source.episode(index).metadata["episode_id"] for index in range(len(source))]
    assert ids == [0, 1, 2]
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 3 and info["total_frames"] == 180
