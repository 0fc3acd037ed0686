"""Helpers the tests share: the reference asset copy and the installed CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_assets_dir() -> Path:
    """The read-only asset copy CI provides beside the checkout (or $REFINEVLA_SHARED_ASSETS)."""
    configured = os.environ.get("REFINEVLA_SHARED_ASSETS")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "assets"
    if not (path / "maniskill").is_dir():
        raise RuntimeError(f"no asset copy at {path}: set REFINEVLA_SHARED_ASSETS to one")
    return path


def cli_executable() -> str:
    """The installed console script, so tests prove the entry point works as users call it."""
    script = Path(sys.executable).parent / "refinevla-bench"
    if not script.exists():
        raise RuntimeError(f"{script} missing: install the project (pip install -e .)")
    return str(script)


def run_cli(
    args: Sequence[str],
    assets: Path | None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "REFINEVLA_ASSETS"}
    if assets is not None:
        env["REFINEVLA_ASSETS"] = str(assets)
    env["COLUMNS"] = "200"
    env.update(extra_env or {})
    return subprocess.run(
        [cli_executable(), *args],
        stdin=subprocess.DEVNULL,  # a stdin prompt would fail at once instead of hanging
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def run_sim_script(script: str, *args: str) -> Any:
    """Run a simulator script in a fresh interpreter (ManiSkill fixes its asset folder at import
    time) and return the JSON value of the last line it prints."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_module_probe(
    module: str, assets: Path, label: str, function: str = "_probe"
) -> dict[str, Any]:
    """Call `tests.<module>.<function>(assets)` through run_sim_script and print how long it
    took (the simulator tests gather their facts in one such probe per module)."""
    script = (
        f"import json, sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
        f"from tests.{module} import {function}; print(json.dumps({function}(sys.argv[1])))"
    )
    started = time.perf_counter()
    report: dict[str, Any] = run_sim_script(script, str(assets))
    print(f"\n{label} probe {time.perf_counter() - started:.0f} s")
    return report
