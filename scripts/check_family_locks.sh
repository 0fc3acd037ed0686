#!/usr/bin/env bash
# What CI runs: every docker/families/<family>/requirements.lock must resolve against PyPI for
# CPython 3.11 on manylinux x86_64 (wheels only, except the lock's --no-binary exceptions) and
# need no package it lacks. Nothing is installed: `uv pip compile` reads package metadata only
# (about 30 MB into a fresh cache, a few seconds for all families). Lines no registry serves
# (git commits, jaxlib's CUDA build from its --find-links page) are listed and skipped.
# Exits non-zero naming the family and package that failed.
#   scripts/check_family_locks.sh            # every family
#   scripts/check_family_locks.sh openvla    # just this one
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" scripts/family_locks.py check "$@"
