"""Lock and check the per-family policy environments under docker/families/<family>/.

Each family's requirements.in holds its framework pins; the lock adds refinevla-bench's core and
`serve` dependencies (read from pyproject.toml) and pins every package for CPython 3.11 on
manylinux x86_64. Lines a registry cannot resolve are held out of the resolution and copied into
the lock as they are: git requirements (fixed commits), --find-links pages, and local-version pins
served by such a page (jaxlib's CUDA build), which are resolved as their public release instead.
The wheel policy lines (--only-binary / --no-binary) go to the resolver and into the lock alike.

    python scripts/family_locks.py lock [FAMILY ...]    # what scripts/lock_families.sh runs
    python scripts/family_locks.py check [FAMILY ...]   # what scripts/check_family_locks.sh runs
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
FAMILIES_DIR = ROOT / "docker" / "families"
PYTHON_VERSION = "3.11"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
INDEX_URL = "https://pypi.org/simple"
GIT_COMMIT = re.compile(r"@[0-9a-f]{40}$")
RESOLVER_OPTIONS = ("--only-binary", "--no-binary")  # pages off the registry are held out
PINNED_IN_MESSAGE = re.compile(r"([A-Za-z0-9][\w.-]*)==")


class LockError(Exception):
    """A requirements file or a resolution that cannot become a valid lock."""


@dataclass
class Requirements:
    """A requirements file split by where each line can be resolved."""

    registry: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)  # wheel policy: resolver and lock
    external: list[str] = field(default_factory=list)  # --find-links etc.: lock only
    local_pins: dict[str, str] = field(default_factory=dict)  # public pin -> local pin
    git: list[str] = field(default_factory=list)

    def resolvable(self) -> list[str]:
        """What the registry resolves: plain lines plus local pins as their public release."""
        return [*self.options, *self.registry, *self.local_pins]


def strip_comment(line: str) -> str:
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()


def split_requirements(lines: list[str]) -> Requirements:
    """Sort requirement lines into registry, pip options, local-version pins and git lines."""
    split = Requirements()
    for raw in lines:
        line = strip_comment(raw)
        if not line:
            continue
        if line.startswith(RESOLVER_OPTIONS):
            split.options.append(line)
        elif line.startswith("-"):
            split.external.append(line)
        elif "git+" in line:
            if not GIT_COMMIT.search(line):
                raise LockError(f"git requirement without a 40-hex commit: {line}")
            split.git.append(line)
        else:
            requirement = Requirement(line)
            pins = [spec for spec in requirement.specifier if spec.operator == "=="]
            version = Version(pins[0].version) if len(pins) == 1 else None
            if version is not None and version.local is not None:
                split.local_pins[f"{canonicalize_name(requirement.name)}=={version.public}"] = line
            else:
                split.registry.append(line)
    return split


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """refinevla-bench's core dependencies plus its `serve` extra: what `serve` needs."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["serve"]]


def families(names: list[str]) -> list[str]:
    known = sorted(path.parent.name for path in FAMILIES_DIR.glob("*/requirements.in"))
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise LockError(f"no docker/families/<name>/requirements.in for: {', '.join(unknown)}")
    return names or known


def find_uv() -> str:
    """uv from $UV, next to this interpreter (the venv), or on PATH."""
    candidates = [os.environ.get("UV"), str(Path(sys.executable).parent / "uv"), "uv"]
    for candidate in candidates:
        if candidate and shutil.which(candidate):
            return candidate
    raise LockError("uv not found; fix: `pip install uv` into the venv (or set UV=/path/to/uv)")


def uv_compile(inputs: list[str], output: Path, cwd: Path, cache: Path | None) -> str:
    """Resolve `inputs` (files in cwd) for the target platform; uv's stderr on failure."""
    command = [
        find_uv(), "pip", "compile", *inputs, "--output-file", output.name,
        "--python-version", PYTHON_VERSION, "--python-platform", PYTHON_PLATFORM,
        "--index-url", INDEX_URL, "--no-header", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "UV_CACHE_DIR": str(cache)} if cache else None
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return done.stderr.strip() if done.returncode else ""


def lock_header(family: str) -> list[str]:
    return [
        f"# Locked environment of the {family} policy family: CPython {PYTHON_VERSION}, "
        "manylinux x86_64.",
        "# Generated by scripts/lock_families.sh from requirements.in plus refinevla-bench's",
        "# core and `serve` dependencies (pyproject.toml); do not edit by hand.",
        "# Install exactly this set: pip install --no-deps -r requirements.lock",
    ]


def finish_lock(family: str, compiled: str, split: Requirements) -> str:
    """Header, pip options, the compiled pins (local pins restored) and the git lines."""
    lines = [split.local_pins.get(line, line).rstrip() for line in compiled.splitlines()]
    parts = [*lock_header(family), *split.options, *split.external, *lines]
    if split.git:
        parts += ["# From git at fixed commits (their dependencies are pinned above):", *split.git]
    return "\n".join(parts) + "\n"


def lock_family(family: str) -> None:
    folder = FAMILIES_DIR / family
    split = split_requirements((folder / "requirements.in").read_text().splitlines())
    lock = folder / "requirements.lock"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "requirements.in").write_text("\n".join(split.resolvable()) + "\n")
        (work / "refinevla-bench.in").write_text("\n".join(project_requirements()) + "\n")
        if lock.exists():  # the current pins are uv's preferences: regenerating stays stable
            pins = lock_pins(lock.read_text()).items()
            seed = [f"{name}=={version.public}" for name, version in pins]
            (work / "requirements.lock").write_text("\n".join(seed) + "\n")
        output = work / "requirements.lock"
        error = uv_compile(["requirements.in", "refinevla-bench.in"], output, work, None)
        if error:
            raise LockError(f"{family}: resolution failed:\n{error}")
        lock.write_text(finish_lock(family, output.read_text(), split))


def lock_pins(text: str) -> dict[str, Version]:
    """name -> version of every `name==version` line of a lock (git lines and options skipped)."""
    pins: dict[str, Version] = {}
    for raw in text.splitlines():
        line = strip_comment(raw)
        if line and not line.startswith("-") and "git+" not in line:
            requirement = Requirement(line)
            version = Version(next(iter(requirement.specifier)).version)
            pins[canonicalize_name(requirement.name)] = version
    return pins


def directory_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def check_family(family: str, cache: Path) -> bool:
    """Resolve the lock's registry part again; it must resolve and need nothing more."""
    lock_text = (FAMILIES_DIR / family / "requirements.lock").read_text()
    split = split_requirements(lock_text.splitlines())
    for line in split.git:
        print(f"  {family}: skip {line}: comes from git, not a registry (pip builds it)")
    for public, local in split.local_pins.items():
        print(
            f"  {family}: {local} is served by the --find-links page, not the registry; "
            f"the registry's build of that release, {public}, is checked in its place"
        )
    started, before = time.monotonic(), directory_bytes(cache)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "lock.in").write_text("\n".join(split.resolvable()) + "\n")
        output = work / "resolved.txt"
        error = uv_compile(["lock.in"], output, work, cache)
        resolved = "" if error else output.read_text()
    seconds, downloaded = time.monotonic() - started, directory_bytes(cache) - before
    if error:
        packages = sorted(set(PINNED_IN_MESSAGE.findall(error)))
        print(f"FAIL {family}: package(s) {', '.join(packages) or '?'} do not resolve:\n{error}")
        return False
    missing = sorted(set(lock_pins(resolved)) - set(lock_pins(lock_text)))
    if missing:
        print(f"FAIL {family}: the lock misses packages its pins need: {', '.join(missing)}")
        return False
    count = len(lock_pins(lock_text))
    print(
        f"ok   {family}: {count} pins resolve ({seconds:.1f} s, {downloaded / 1e6:.1f} MB cached)"
    )
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Lock or check the policy-family environments.")
    parser.add_argument("action", choices=["lock", "check"])
    parser.add_argument("families", nargs="*", help="families to handle (default: all)")
    args = parser.parse_args(argv)
    try:
        names = families(args.families)
        if args.action == "lock":
            for family in names:
                started = time.monotonic()
                lock_family(family)
                print(f"locked {family} in {time.monotonic() - started:.1f} s")
            return 0
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as cache:  # fresh: measures what CI downloads
            results = [check_family(family, Path(cache)) for family in names]
            total = directory_bytes(Path(cache))
        print(
            f"{sum(results)} of {len(results)} family locks resolve "
            f"({time.monotonic() - started:.1f} s, {total / 1e6:.1f} MB into a fresh uv cache)"
        )
        return 0 if all(results) else 1
    except LockError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
