"""--video and --record-actions through the CLI, and `replay` reproducing a recorded episode."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np

from tests.support import run_cli

EPISODE = ["--tasks", "carrot_on_plate", "--episodes", "1", "--seeds", "0"]


def decoded_frames_digest(video: Path) -> tuple[int, str]:
    """Frame count and a hash of the decoded RGB frames (container bytes may carry metadata)."""
    raw = subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-i",
            str(video),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return len(raw) // (480 * 640 * 3), hashlib.sha256(raw).hexdigest()


def only_record(run_dir: Path) -> dict[str, object]:
    (line,) = (run_dir / "episodes.jsonl").read_text().splitlines()
    record: dict[str, object] = json.loads(line)
    record.pop("seconds")
    return record


def test_recorded_random_episode_replays_identically(widowx_assets: Path, tmp_path: Path) -> None:
    recorded, replayed = tmp_path / "recorded", tmp_path / "replayed"
    first = run_cli(
        [
            "run",
            "--policy",
            "random",
            *EPISODE,
            "--out",
            str(recorded),
            "--video",
            "--record-actions",
        ],
        assets=widowx_assets,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    actions = np.load(recorded / "actions" / "carrot_on_plate" / "0-seed0.npy")
    assert actions.shape == (60, 7) and np.abs(actions[:, :3]).max() > 0

    second = run_cli(
        [
            "run",
            "--policy",
            "replay",
            "--policy-arg",
            f"path={recorded / 'actions'}",
            *EPISODE,
            "--out",
            str(replayed),
            "--video",
        ],
        assets=widowx_assets,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert only_record(recorded) == only_record(replayed)
    video = Path("videos") / "carrot_on_plate" / "0-seed0.mp4"
    frames, digest = decoded_frames_digest(recorded / video)
    assert frames == 60  # one frame per control step, as the policy saw them
    assert decoded_frames_digest(replayed / video) == (frames, digest)
    manifest = json.loads((replayed / "manifest.json").read_text())
    assert manifest["policy"] == {"name": "replay", "config": {"path": str(recorded / "actions")}}


def test_replay_without_a_recording_is_an_episode_error(
    widowx_assets: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-recordings"
    empty.mkdir()
    completed = run_cli(
        [
            "run",
            "--policy",
            "replay",
            "--policy-arg",
            f"path={empty}",
            *EPISODE,
            "--out",
            str(tmp_path / "r"),
        ],
        assets=widowx_assets,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    record = json.loads((tmp_path / "r" / "episodes.jsonl").read_text())
    assert record["termination"] == "error" and "no recording" in record["error"]
    assert "errors=1" in completed.stdout
