"""Where the harness keeps its assets, so every command agrees on one location."""

from __future__ import annotations

import os
from pathlib import Path

ASSETS_ENV_VAR = "REFINEVLA_ASSETS"


def default_assets_root() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "refinevla-bench" / "assets"


def assets_root(override: Path | None = None) -> Path:
    """The asset root: an explicit path, else $REFINEVLA_ASSETS, else the user cache."""
    if override is not None:
        return override.expanduser().resolve()
    from_env = os.environ.get(ASSETS_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser().resolve()
    return default_assets_root()


def maniskill_asset_dir(root: Path) -> Path:
    """The folder ManiSkill3 reads as MS_ASSET_DIR (it holds `data/robots`, `data/tasks`)."""
    return root / "maniskill"
