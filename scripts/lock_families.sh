#!/usr/bin/env bash
# Regenerate docker/families/<family>/requirements.lock from its requirements.in plus
# refinevla-bench's core and `serve` dependencies, for CPython 3.11 on manylinux x86_64:
#   scripts/lock_families.sh              # every family
#   scripts/lock_families.sh octo rt1     # just these
# Resolves with `uv pip compile` against PyPI (needs uv: `pip install uv` into the venv). The
# current lock's pins are kept where they still fit, so only what requirements.in changed moves.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" scripts/family_locks.py lock "$@"
