#!/usr/bin/env bash
# System packages refinevla-bench needs to render headlessly: the Vulkan loader, a Vulkan driver
# (NVIDIA's when present, otherwise Mesa lavapipe >= 25 on the CPU) and ffmpeg for episode videos.
# Idempotent: safe to run again; it only adds what is missing. Run as root or with sudo.
# The Dockerfile and .ci/run both call this script, so the image and CI take the same steps.
set -euo pipefail

MIN_MESA_MAJOR=25
NVIDIA_ICD_PATHS=(
  /usr/share/vulkan/icd.d/nvidia_icd.json
  /etc/vulkan/icd.d/nvidia_icd.json
  /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
)

log() { printf '[install-system-deps] %s\n' "$*"; }
die() { printf '[install-system-deps] error: %s\n' "$*" >&2; exit 2; }

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  die "run as root or install sudo: this script installs system packages"
fi

# shellcheck disable=SC1091
. /etc/os-release
DISTRO="${ID:-unknown}"
CODENAME="${VERSION_CODENAME:-}"

have_nvidia_icd() {
  local path
  for path in "${NVIDIA_ICD_PATHS[@]}"; do
    [ -f "$path" ] && return 0
  done
  return 1
}

mesa_major() {
  # Major version of the installed mesa-vulkan-drivers package, or 0 when absent.
  local version
  version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  version=${version#*:}
  echo "${version%%.*}" | grep -E '^[0-9]+$' || echo 0
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    "${SUDO[@]}" apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
  done
}

ensure_bookworm_backports() {
  local list=/etc/apt/sources.list.d/bookworm-backports.list
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding Debian bookworm-backports (Mesa >= ${MIN_MESA_MAJOR} lives there)"
    echo "deb http://deb.debian.org/debian bookworm-backports main" | "${SUDO[@]}" tee "$list" >/dev/null
    apt_updated=0
  fi
}

install_lavapipe() {
  case "$DISTRO:$CODENAME" in
    debian:bookworm)
      ensure_bookworm_backports
      apt_install -t bookworm-backports mesa-vulkan-drivers
      ;;
    debian:* | ubuntu:*)
      apt_install mesa-vulkan-drivers
      ;;
    *)
      die "unsupported apt distribution '${DISTRO}': install mesa-vulkan-drivers >= ${MIN_MESA_MAJOR} by hand"
      ;;
  esac
  local major
  major=$(mesa_major)
  if [ "$major" -lt "$MIN_MESA_MAJOR" ]; then
    die "mesa-vulkan-drivers ${major}.x is too old for SAPIEN's CPU renderer (needs >= ${MIN_MESA_MAJOR}); on Ubuntu 22.04/24.04 add 'ppa:kisak/kisak-mesa' and run this script again, or upgrade to a release that ships Mesa ${MIN_MESA_MAJOR}+"
  fi
}

if ! command -v apt-get >/dev/null 2>&1; then
  die "no apt-get on '${DISTRO}': install the Vulkan loader, ffmpeg and (without an NVIDIA GPU) Mesa lavapipe >= ${MIN_MESA_MAJOR} with your package manager (Fedora: dnf install vulkan-loader vulkan-tools mesa-vulkan-drivers ffmpeg; Arch: pacman -S vulkan-icd-loader vulkan-tools vulkan-swrast ffmpeg), or use docker/Dockerfile"
fi

# libgl1 + libglib2.0-0: OpenCV (a ManiSkill dependency) loads them at import time.
base_packages=(ca-certificates libvulkan1 vulkan-tools ffmpeg libgl1 libegl1 libglib2.0-0 git)
mapfile -t wanted < <(missing_packages "${base_packages[@]}")
if [ "${#wanted[@]}" -gt 0 ]; then
  log "installing: ${wanted[*]}"
  apt_install "${wanted[@]}"
else
  log "base packages present"
fi

python_ok() {
  command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
if python_ok; then
  log "python3 $(python3 -c 'import platform; print(platform.python_version())') with venv present"
else
  log "installing python3 with venv"
  apt_install python3 python3-venv python3-pip
  python_ok || die "python3 on this system is older than 3.11: install Python >= 3.11 (Ubuntu 22.04: ppa:deadsnakes/ppa, python3.11-venv) and run docker/install-python-deps.sh with PYTHON=python3.11"
fi

if have_nvidia_icd; then
  log "NVIDIA Vulkan ICD found: rendering will use the GPU; lavapipe not needed"
elif [ "$(mesa_major)" -ge "$MIN_MESA_MAJOR" ]; then
  log "Mesa lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) present"
else
  install_lavapipe
  log "Mesa lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed"
fi
log "done"
