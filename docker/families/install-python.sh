#!/usr/bin/env bash
# CPython 3.11 in a virtual environment for a policy-family image (Ubuntu 22.04 CUDA base).
# Every family lock is resolved for CPython 3.11; Ubuntu 22.04's own python3 is 3.10, so 3.11
# comes from the deadsnakes PPA (the route docker/install-system-deps.sh names for 22.04).
# git is for lock lines pinned to a git commit (octo). Run as root: install-python.sh VENV
set -euo pipefail
venv=${1:?usage: install-python.sh VENV_DIR}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends ca-certificates git gnupg software-properties-common
add-apt-repository -y ppa:deadsnakes/ppa
apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv
apt-get purge -y -qq --auto-remove software-properties-common
rm -rf /var/lib/apt/lists/*
python3.11 -m venv "$venv"
"$venv/bin/python" -m pip install -q --no-cache-dir --upgrade pip
