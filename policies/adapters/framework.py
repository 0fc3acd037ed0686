"""Importing a family's heavy framework with an error that names the environment to use."""

from __future__ import annotations

import importlib
from types import ModuleType

from refinevla_bench.harness.errors import HarnessError


def family_environment_fix(family: str) -> str:
    """How a user gets the environment a family's adapter runs in (docker/families/<family>)."""
    return (
        f"run it in its own environment (docker/families/{family}: `docker build -f "
        f"docker/families/{family}/Dockerfile .`, or `pip install -r "
        f"docker/families/{family}/requirements.lock` in a fresh venv), start `refinevla-bench "
        f"serve --policy {family}` there and evaluate with `run --policy ws://HOST:PORT`"
    )


def import_framework(module: str, family: str) -> ModuleType:
    """Import `module` for the `family` adapter, or fail in one line naming the environment."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise HarnessError(
            f"the '{family}' adapter needs {module}, which this environment cannot import "
            f"({error})",
            family_environment_fix(family),
        ) from error
