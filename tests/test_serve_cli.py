"""`serve` in one process, `run --policy ws://...` in another, on the real simulator: the served
policy gives exactly the episodes it gives in-process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import cli_executable, run_cli

pytestmark = pytest.mark.sim

RUN = ["run", "--tasks", "carrot_on_plate", "--episodes", "2", "--seeds", "0", "--device", "cpu"]


def episodes(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "episodes.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def test_served_policy_runs_the_suite_like_the_local_one(
    widowx_assets: Path, tmp_path: Path
) -> None:
    server = subprocess.Popen(
        [cli_executable(), "serve", "--policy", "random", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            found = re.search(r"ws://127\.0\.0\.1:\d+", server.stderr.readline())
            url = found.group(0) if found else None
        assert url is not None, "the server never announced its address"
        served = run_cli([*RUN, "--policy", url, "--out", str(tmp_path / "served")], widowx_assets)
        assert served.returncode == 0, served.stderr[-3000:]
    finally:
        server.send_signal(signal.SIGTERM)  # what `docker stop` sends
        server.wait(timeout=30)
    assert server.returncode == 0  # a clean stop, not a kill
    local = run_cli([*RUN, "--policy", "random", "--out", str(tmp_path / "local")], widowx_assets)
    assert local.returncode == 0, local.stderr[-3000:]
    assert episodes(tmp_path / "served") == episodes(tmp_path / "local")
    manifest = json.loads((tmp_path / "served" / "manifest.json").read_text())
    assert manifest["policy"]["name"] == url
