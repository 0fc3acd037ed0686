#!/usr/bin/env bash
# Create a virtual environment and install refinevla-bench into it. Used by ./bench, .ci/run and
# docker/Dockerfile, so the image, CI and a user's machine take the same steps.
#   --venv DIR        where the environment goes (default .venv)
#   --extras LIST     comma-separated extras (default sim,dev)
#   --editable        install the checkout in editable mode (development)
#   --torch MODE      cpu: torch==2.13.0 first (set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#                     off this project's CI to get the small CPU wheel); cuda: PyPI's regular CUDA
#                     build of torch 2.13.x; auto (default): cuda when nvidia-smi sees a GPU
set -euo pipefail

VENV=.venv
EXTRAS=sim,dev
EDITABLE=0
TORCH=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=$2; shift 2 ;;
    --extras) EXTRAS=$2; shift 2 ;;
    --editable) EDITABLE=1; shift ;;
    --torch) TORCH=$2; shift 2 ;;
    *) echo "install-python-deps: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

log() { printf '[install-python-deps] %s\n' "$*"; }
here=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}

"$PYTHON" - <<'PY' || { echo "[install-python-deps] error: Python >= 3.11 needed; fix: install python3.11+ and set PYTHON=/path/to/python3.11" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip

if [ "$TORCH" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then TORCH=cuda; else TORCH=cpu; fi
fi
case "$TORCH" in
  cpu) log "torch 2.13.0 (CPU machine)"
       "${pip[@]}" install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0" ;;
  cuda) log "torch 2.13.x (CUDA build)"
        "${pip[@]}" install -q "torch>=2.13,<2.14" ;;
  *) echo "install-python-deps: --torch must be cpu, cuda or auto" >&2; exit 2 ;;
esac

target="$here[$EXTRAS]"
if [ "$EDITABLE" -eq 1 ]; then
  log "installing $target (editable)"
  "${pip[@]}" install -q -e "$target"
else
  log "installing $target"
  "${pip[@]}" install -q "$target"
fi
"$VENV/bin/refinevla-bench" --version
