"""Shared fixtures: an asset root filled by the real CLI, and an empty one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli, shared_assets_dir


def _fetched_suite(tmp_path_factory: pytest.TempPathFactory, suite: str) -> Path:
    """An asset root filled by the real `assets fetch --from` command from the shared copy."""
    root = tmp_path_factory.mktemp(f"{suite}-assets")
    completed = run_cli(
        [
            "assets",
            "fetch",
            "--suite",
            suite,
            "--from",
            str(shared_assets_dir()),
            "--dir",
            str(root),
        ],
        assets=None,
    )
    assert completed.returncode == 0, completed.stderr
    return root


@pytest.fixture(scope="session")
def widowx_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The WidowX suite's assets."""
    return _fetched_suite(tmp_path_factory, "widowx")


@pytest.fixture(scope="session")
def google_robot_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Google Robot suite's assets (robot and real2sim data)."""
    return _fetched_suite(tmp_path_factory, "google_robot")


@pytest.fixture
def empty_assets(tmp_path: Path) -> Path:
    root = tmp_path / "no-assets"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def demo_dataset(widowx_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three scripted-expert demonstrations (carrot, block, carrot) recorded by `collect`."""
    out = tmp_path_factory.mktemp("demos") / "widowx-scripted"
    completed = run_cli(
        [
            "collect",
            "--tasks",
            "carrot_on_plate,stack_block",
            "--device",
            "cpu",
            "--episodes",
            "3",
            "--out",
            str(out),
        ],
        assets=widowx_assets,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "kept=3" in completed.stdout
    return out


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A private cache home, so `--base tiny:...` models never land in the user's cache."""
    return {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}
