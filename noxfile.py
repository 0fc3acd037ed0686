"""Project checks, run inside the environment `./bench` (or docker/install-python-deps.sh) made.

Sessions reuse the active environment instead of building their own: the simulator, torch
and the Vulkan setup are installed once by the same scripts CI and the Docker image use.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "none"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style, imports, bugs) and mypy --strict over the package, tests and benchmarks."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("mypy", "tests", "benchmarks", "scripts", "noxfile.py")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, real simulator episodes included."""
    session.run("pytest", *session.posargs)


@nox.session
def locks(session: nox.Session) -> None:
    """Each policy family's lock (docker/families) resolves against PyPI (network, ~5 s)."""
    session.run("bash", "scripts/check_family_locks.sh", external=True)
