"""The acceptance path of teacher annotation, through the CLI on `collect`'s real dataset:
grounded and openai teachers, a kill and a re-run, and the report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from refinevla_bench.harness.datasets.open import open_dataset
from tests.openai_server import ServerBehaviour, running_server
from tests.support import cli_executable, run_cli
from tests.test_collect import tree_digest

pytestmark = pytest.mark.sim  # the dataset comes from the simulator

KEY_ENV = "REFINEVLA_TEST_TEACHER_KEY"
KEY = "sk-test-never-written-0123456789"


@pytest.fixture
def dataset(demo_dataset: Path, tmp_path: Path) -> Path:
    """A private copy: annotations are written inside the dataset folder."""
    copy = tmp_path / "demos"
    shutil.copytree(demo_dataset, copy)
    return copy


def openai_args(base_url: str, *extra: str) -> list[str]:
    return [
        "--teacher",
        "openai",
        "--base-url",
        base_url,
        "--model",
        "test-model",
        "--api-key-env",
        KEY_ENV,
        "--price-input",
        "1",
        "--price-output",
        "2",
        *extra,
    ]


def test_grounded_annotation_is_complete_and_a_rerun_changes_nothing(dataset: Path) -> None:
    first = run_cli(["annotate", str(dataset), "--teacher", "grounded"], assets=None)
    assert first.returncode == 0, first.stderr[-2000:]
    out = dataset / "annotations" / "grounded"
    sidecar = pd.read_parquet(out / "reasoning.parquet")
    source = open_dataset(dataset)
    expected = {(e.index, step) for e in source for step in range(e.length)}
    assert set(zip(sidecar.episode_index, sidecar.frame_index, strict=True)) == expected
    assert len(sidecar) == len(expected) and (sidecar.reasoning.str.len() > 100).all()
    assert set(sidecar.subtask) >= {"reach", "grasp", "lift", "move", "place", "release"}
    assert (sidecar.consistency == 1.0).all()  # the grounded teacher agrees with its facts

    merged = pd.read_parquet(out / "dataset" / "data" / "chunk-000" / "episode_000001.parquet")
    assert {"reasoning", "reasoning.subtask", "action"} <= set(merged.columns)
    assert merged.reasoning.iloc[0].startswith("Observation: ")
    merged_info = json.loads((out / "dataset" / "meta" / "info.json").read_text())
    assert merged_info["features"]["reasoning"]["dtype"] == "string"
    assert open_dataset(out / "dataset").episode(0).length == source.episode(0).length
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"] == "grounded" and manifest["counts"]["ok"] == len(source)

    before = tree_digest(dataset)
    again = run_cli(["annotate", str(dataset), "--teacher", "grounded"], assets=None)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 request(s)" in again.stderr and "nothing new" in again.stdout
    assert tree_digest(dataset) == before


def test_openai_annotation_killed_and_rerun_annotates_each_episode_once(dataset: Path) -> None:
    env = {**os.environ, KEY_ENV: KEY, "COLUMNS": "200"}
    with running_server(ServerBehaviour(latency_s=1.5)) as server:
        out = dataset / "annotations" / "killed"
        command = [
            cli_executable(),
            "annotate",
            str(dataset),
            *openai_args(server.base_url, "--concurrency", "1", "--out", str(out)),
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((out / "episodes").glob("episode_*.json")):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = time.monotonic()
        done_before = sorted(
            int(p.stem.split("_")[1]) for p in (out / "episodes").glob("episode_*.json")
        )
        assert 1 <= len(done_before) < 3  # really killed mid-run

        rerun = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        for episode in range(3):
            after_kill = [r for r in server.requests_for(episode) if r.at > killed_at]
            # finished episodes are never asked again; the others exactly once more
            assert len(after_kill) == (0 if episode in done_before else 1)
        records = [
            json.loads(p.read_text()) for p in sorted((out / "episodes").glob("episode_*.json"))
        ]
        assert [(r["episode_index"], r["status"]) for r in records] == [
            (0, "ok"),
            (1, "ok"),
            (2, "ok"),
        ]
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["ok"] + manifest["counts"]["skipped"] == 3
        assert KEY not in "".join(
            path.read_text(errors="ignore") for path in out.rglob("*") if path.is_file()
        )


def test_report_names_failures_and_low_consistency(dataset: Path) -> None:
    # the loopback model always talks of a carrot: wrong in the block-stacking episode
    behaviour = ServerBehaviour(faults={0: ["malformed"] * 10})
    with running_server(behaviour) as server:
        annotated = run_cli(
            ["annotate", str(dataset), *openai_args(server.base_url, "--max-attempts", "2")],
            assets=None,
            extra_env={KEY_ENV: KEY},
        )
    assert annotated.returncode == 0, annotated.stderr[-2000:]
    assert "1 failed" in annotated.stderr
    shown = run_cli(["annotate", "report", str(dataset), "--json"], assets=None)
    assert shown.returncode == 0, shown.stderr[-2000:]
    (report,) = json.loads(shown.stdout)
    assert [failure["episode_index"] for failure in report["failures"]] == [0]
    block = next(e.index for e in open_dataset(dataset) if e.metadata["task"] == "stack_block")
    worst = {item["episode_index"]: item for item in report["worst"]}
    assert worst[block]["consistency"] < 0.7 and worst[block]["below_threshold"]
    assert any("carrot" in issue for issue in worst[block]["issues"])
    text = run_cli(["annotate", "report", str(dataset)], assets=None)
    assert "carrot" in text.stdout and "not valid JSON" in text.stdout
