"""The per-family policy environments (docker/families/<family>): offline consistency checks.

Every adapter family registered in pyproject.toml has a requirements.in, a fully pinned
requirements.lock that satisfies it and carries the `serve` stack, and a Dockerfile that installs
exactly that lock and serves the family's policy. Whether the locks resolve against the registry
is scripts/check_family_locks.sh's job (network); nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ROOT / "docker" / "families"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ADAPTERS = "refinevla_bench.policies.adapters."
OPTIONS = ("--only-binary", "--no-binary", "--find-links", "--extra-index-url")
GIT_PIN = re.compile(r"^[A-Za-z0-9][\w.-]* @ git\+https://\S+@[0-9a-f]{40}$")


def adapter_families() -> list[str]:
    """Families are the adapter modules the registered entry points name (rt1x lives in rt1)."""
    entry_points = PYPROJECT["project"]["entry-points"]["refinevla_bench.policies"].values()
    modules = {target.split(":")[0] for target in entry_points if target.startswith(ADAPTERS)}
    return sorted(module.removeprefix(ADAPTERS) for module in modules)


FAMILY_NAMES = adapter_families()


def requirement_lines(path: Path) -> list[str]:
    """Lines without comments and blanks (pip treats `#` after whitespace as a comment)."""
    lines = (
        re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip() for raw in path.read_text().splitlines()
    )
    return [line for line in lines if line]


def lock_pins(family: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in requirement_lines(FAMILIES / family / "requirements.lock"):
        if not line.startswith("-") and "git+" not in line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = Version(
                next(iter(requirement.specifier)).version
            )
    return pins


def satisfied(requirement: Requirement, pins: dict[str, Version]) -> bool:
    version = pins.get(canonicalize_name(requirement.name))
    return version is not None and requirement.specifier.contains(version, prereleases=True)


def dockerfile_instructions(family: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (FAMILIES / family / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    pairs = [line.strip().split(maxsplit=1) for line in joined.splitlines() if line.strip()]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def load_family_locks() -> ModuleType:
    """scripts/family_locks.py, loaded by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("family_locks", ROOT / "scripts/family_locks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_every_adapter_family_has_an_environment() -> None:
    """Each adapter module named by an entry point has its three files, and no folder is stray."""
    assert FAMILY_NAMES == ["octo", "openvla", "pi0", "rt1", "spatialvla"]
    for family in FAMILY_NAMES:
        for name in ("requirements.in", "requirements.lock", "Dockerfile"):
            assert (FAMILIES / family / name).is_file(), f"docker/families/{family}/{name}"
    folders = sorted(path.parent.name for path in FAMILIES.glob("*/requirements.in"))
    assert folders == FAMILY_NAMES


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_requirements_in_opens_with_its_sources(family: str) -> None:
    """The header says where the pins come from and which Python they are for."""
    text = (FAMILIES / family / "requirements.in").read_text()
    header = text.split("\n\n")[0].splitlines()
    comment_block = [line for line in header if line.startswith("#")]
    assert len(comment_block) >= 5 and text.startswith("#")
    assert "Python 3.11" in text
    assert "Source" in text


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_lock_line_is_pinned(family: str) -> None:
    """name==version for one platform (no markers), a git URL at a commit, or a pip option."""
    for line in requirement_lines(FAMILIES / family / "requirements.lock"):
        if line.startswith("-"):
            assert line.startswith(OPTIONS), line
        elif "git+" in line:
            assert GIT_PIN.match(line), line
        else:
            requirement = Requirement(line)
            operators = [spec.operator for spec in requirement.specifier]
            assert operators == ["=="] and requirement.marker is None, line
            assert not requirement.extras, line


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_lock_satisfies_requirements_in(family: str) -> None:
    """Every pin of requirements.in holds in the lock (a local build such as jaxlib's CUDA one
    only by that exact build); options and git lines are carried over."""
    lock_lines = set(requirement_lines(FAMILIES / family / "requirements.lock"))
    pins = lock_pins(family)
    for line in requirement_lines(FAMILIES / family / "requirements.in"):
        if line.startswith("-") or "git+" in line:
            assert line in lock_lines, f"{family}: {line} is not in the lock"
        else:
            assert satisfied(Requirement(line), pins), f"{family}: lock breaks {line}"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_lock_carries_the_core_and_serve_dependencies(family: str) -> None:
    """`refinevla-bench serve` runs from the lock alone: core deps plus the serve extra."""
    project = PYPROJECT["project"]
    needed = [*project["dependencies"], *project["optional-dependencies"]["serve"]]
    pins = lock_pins(family)
    for line in needed:
        assert satisfied(Requirement(line), pins), f"{family}: lock lacks {line}"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_lock_says_how_it_was_made(family: str) -> None:
    text = (FAMILIES / family / "requirements.lock").read_text()
    assert text.startswith("#") and "scripts/lock_families.sh" in text.split("\n\n")[0]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_dockerfile_installs_the_lock_then_serves_the_family(family: str) -> None:
    """CUDA base, Python 3.11 venv, the lock with --no-deps, the project with --no-deps, then
    `serve --host 0.0.0.0 --policy <family>` on the exposed port with a /healthz check."""
    instructions = dockerfile_instructions(family)
    runs = [arguments for name, arguments in instructions if name == "RUN"]
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("nvidia/cuda:")
    assert "bash docker/families/install-python.sh /opt/venv" in runs
    lock_install = f"pip install --no-deps -r docker/families/{family}/requirements.lock"
    assert runs.index(lock_install) < runs.index("pip install --no-deps .")
    entrypoint = json.loads(dict(instructions)["ENTRYPOINT"])
    assert entrypoint[:2] == ["refinevla-bench", "serve"]
    options = dict(zip(entrypoint[2::2], entrypoint[3::2], strict=True))
    assert options["--policy"] == family and options["--host"] == "0.0.0.0"
    assert dict(instructions)["EXPOSE"] == options["--port"]
    healthcheck = dict(instructions)["HEALTHCHECK"]
    assert f"127.0.0.1:{options['--port']}/healthz" in healthcheck


def test_install_python_makes_a_311_venv() -> None:
    """The locks are for CPython 3.11, so the images' venv is made by python3.11."""
    script = (FAMILIES / "install-python.sh").read_text()
    assert 'python3.11 -m venv "$venv"' in script


def test_split_sorts_lines_by_where_they_resolve() -> None:
    """Registry lines and wheel options go to the resolver; pages off the registry, git lines
    and local builds are held out, the local build resolved as its public release."""
    locks = load_family_locks()
    split = locks.split_requirements(
        [
            "# header",
            "--only-binary :all:",
            "--find-links https://example.org/wheels.html",
            "jaxlib==0.4.20+cuda12.cudnn89   # local build",
            "flax==0.7.5",
            f"octo @ git+https://github.com/octo-models/octo@{'a' * 40}",
        ]
    )
    assert split.resolvable() == ["--only-binary :all:", "flax==0.7.5", "jaxlib==0.4.20"]
    assert split.external == ["--find-links https://example.org/wheels.html"]
    assert split.git == [f"octo @ git+https://github.com/octo-models/octo@{'a' * 40}"]


def test_git_lines_must_name_a_commit() -> None:
    locks = load_family_locks()
    with pytest.raises(locks.LockError, match="40-hex commit"):
        locks.split_requirements(["octo @ git+https://github.com/octo-models/octo@main"])


def test_finished_lock_restores_local_builds_and_appends_git() -> None:
    """The compiled public pin becomes the local build again; options lead, git lines close."""
    locks = load_family_locks()
    git = f"dlimp @ git+https://github.com/kvablack/dlimp@{'b' * 40}"
    split = locks.split_requirements(
        ["--find-links https://example.org/w.html", "jaxlib==0.4.20+cuda12.cudnn89", git]
    )
    text = locks.finish_lock("octo", "jax==0.4.20\njaxlib==0.4.20\n    # via -r x\n", split)
    body = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert body == [
        "--find-links https://example.org/w.html",
        "jax==0.4.20",
        "jaxlib==0.4.20+cuda12.cudnn89",
        git,
    ]
