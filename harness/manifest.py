"""What a run's manifest records, so a number can be traced to exactly what produced it.

Never a secret: the command line is stored with the values of secret-looking options and
policy arguments replaced, and no environment variable is recorded.
"""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from refinevla_bench import __version__
from refinevla_bench.harness.assets.store import suite_asset_status
from refinevla_bench.harness.suites.spec import SuiteSpec
from refinevla_bench.policies.protocol import Policy

_SECRET = re.compile(r"(key|token|secret|password|passwd|credential)", re.IGNORECASE)
REDACTED = "<redacted>"
_VERSIONED_PACKAGES = ("mani-skill", "sapien", "torch", "numpy", "gymnasium")
_SOURCE = Path(__file__).resolve().parent


def redact_command(argv: Sequence[str]) -> list[str]:
    """The command line with secret values hidden (`--api-key X`, `key=X`, `--token=X`)."""
    redacted: list[str] = []
    hide_next = False
    for argument in argv:
        if hide_next:
            redacted.append(REDACTED)
            hide_next = False
            continue
        name, separator, _value = argument.partition("=")
        if separator and _SECRET.search(name):
            redacted.append(f"{name}={REDACTED}")
        elif argument.startswith("--") and _SECRET.search(argument):
            redacted.append(argument)
            hide_next = True
        else:
            redacted.append(argument)
    return redacted


def package_versions(packages: Sequence[str] = _VERSIONED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"refinevla-bench": __version__}
    for package in packages:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    versions["python"] = platform.python_version()
    return versions


def _git(source: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(source), *arguments],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.strip()


def git_state(output: Path | None = None, source: Path = _SOURCE) -> dict[str, Any]:
    """The commit of the harness source when it runs from a git checkout (else nulls).

    Changes inside the run's own `output` folder do not make it dirty: a resumed run whose
    folder is committed (results/) would otherwise always say so, and "dirty" must mean
    that the code differed from the commit.
    """
    try:
        commit = _git(source, "rev-parse", "HEAD")
        pathspec = ["--", ":(top)"]
        top = Path(_git(source, "rev-parse", "--show-toplevel")).resolve()
        folder = output.resolve() if output is not None else None
        if folder is not None and folder.is_relative_to(top):
            pathspec.append(f":(top,exclude){folder.relative_to(top).as_posix()}")
        dirty = _git(source, "status", "--porcelain", "--untracked-files=no", *pathspec)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def asset_provenance(root: Path, asset_suite: str) -> dict[str, Any]:
    statuses = suite_asset_status(root, asset_suite)
    standins = [standin.path for status in statuses for standin in status.standins]
    return {
        "root": str(root),
        "sources": {
            status.id: {
                "state": status.state,
                "source": status.source,
                "pin": status.pin,
                "sha256": status.sha256,
            }
            for status in statuses
        },
        "standins_used": bool(standins),
        "standin_files": standins,
    }


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_manifest(
    *,
    suite: SuiteSpec,
    policy_name: str,
    policy_options: dict[str, str],
    policy: Policy,
    seeds: Sequence[int],
    success_mode: str,
    tasks: Sequence[str],
    episodes_per_task: int | None,
    device: str,
    num_envs: int,
    assets_root: Path,
    output: Path,
    argv: Sequence[str],
) -> dict[str, Any]:
    """Every invocation keeps its own command and commit: a resumed run may span commits."""
    conventions = policy.conventions
    started = now_utc()
    git = git_state(output)
    return {
        "suite": suite.name,
        "policy": {"name": policy_name, "config": dict(sorted(policy_options.items()))},
        "policy_target": f"{type(policy).__module__}:{type(policy).__qualname__}",
        "policy_conventions": {
            "rotation": conventions.rotation,
            "gripper": conventions.gripper,
            "image_size": list(conventions.image_size) if conventions.image_size else None,
            "resize": conventions.resize,
        },
        "success_mode": success_mode,
        "seeds": sorted(seeds),
        "tasks": list(tasks),
        "episodes_per_task": episodes_per_task,
        "device": device,
        "num_envs": num_envs,
        "backend": suite.backend,
        "versions": package_versions(),
        "harness_version": __version__,
        "git": git,
        "assets": asset_provenance(assets_root, suite.asset_suite),
        "created": started,
        "invocations": [{"started": started, "command": redact_command(argv), "git": git}],
    }
