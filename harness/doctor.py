"""`refinevla-bench doctor`: everything a suite needs, each problem with its fix.

Checks run without building an environment, and the render probe runs in a child process,
so a broken Vulkan driver shows up as a failed check instead of a crashed doctor.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path
from typing import Literal

from refinevla_bench.harness.assets.store import AssetStatus, suite_asset_status
from refinevla_bench.harness.errors import INSTALL_SIM_FIX
from refinevla_bench.harness.rendering import NO_RENDER_DEVICE_FIX, probe_render_devices
from refinevla_bench.harness.suites.spec import SuiteSpec

Status = Literal["ok", "warn", "fail"]
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    blocks_suites: bool = False  # a failure here stops every suite from running


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    suites: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.suites.values())

    def to_json(self) -> dict[str, object]:
        return {"checks": [asdict(check) for check in self.checks], "suites": self.suites}


def pinned_versions() -> dict[str, str]:
    """Exact pins from this distribution's own metadata: pyproject.toml stays the one source."""
    pins: dict[str, str] = {}
    for requirement in requires("refinevla-bench") or []:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*==\s*([^;\s]+)", requirement)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def check_python() -> Check:
    current = sys.version_info[:3]
    text = ".".join(map(str, current))
    if current[:2] < MIN_PYTHON:
        return Check("python", "fail", text, "use Python >= 3.11", blocks_suites=True)
    return Check("python", "ok", f"{text} ({sys.executable})")


def check_torch() -> tuple[Check, bool]:
    """The torch check, and whether torch sees a CUDA GPU."""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return Check("torch", "fail", "not installed", INSTALL_SIM_FIX, blocks_suites=True), False
    detail = f"{torch.__version__}"
    has_cuda = bool(torch.cuda.is_available())
    if has_cuda:
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        detail += f", CUDA {torch.version.cuda}: {', '.join(names)}"
    else:
        detail += ", no CUDA GPU (simulation runs on the CPU)"
    if not str(torch.__version__).startswith("2.13"):
        return Check("torch", "warn", detail, "this project is tested with torch 2.13.x"), has_cuda
    return Check("torch", "ok", detail), has_cuda


def check_simulator(pins: dict[str, str]) -> list[Check]:
    checks = []
    for package in ("mani-skill", "sapien"):
        try:
            found = version(package)
        except PackageNotFoundError:
            checks.append(
                Check(package, "fail", "not installed", INSTALL_SIM_FIX, blocks_suites=True)
            )
            continue
        wanted = pins.get(package)
        if wanted and found != wanted:
            checks.append(
                Check(
                    package,
                    "warn",
                    f"{found}, pinned {wanted}: results may differ",
                    f"pip install '{package}=={wanted}'",
                )
            )
        else:
            checks.append(Check(package, "ok", found))
    return checks


def _vulkan_driver_info() -> list[str]:
    if shutil.which("vulkaninfo") is None:
        return []
    try:
        completed = subprocess.run(
            ["vulkaninfo", "--summary"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return []
    return re.findall(r"driverInfo\s*=\s*(.+)", completed.stdout)


def check_render(torch_has_cuda: bool) -> list[Check]:
    probe = probe_render_devices()
    if probe.error is not None or not any(device.supported for device in probe.devices):
        seen = ", ".join(device.name for device in probe.devices) or "none"
        detail = probe.error or f"no supported device (seen: {seen})"
        return [
            Check("vulkan render device", "fail", detail, NO_RENDER_DEVICE_FIX, blocks_suites=True)
        ]
    parts = []
    for device in probe.devices:
        kind = "CPU, Mesa lavapipe" if device.is_cpu else f"GPU, CUDA id {device.cuda_id}"
        parts.append(f"{device.name} ({kind}{'' if device.supported else ', unsupported'})")
    drivers = _vulkan_driver_info()
    detail = "; ".join(parts) + (f" [driver: {', '.join(drivers)}]" if drivers else "")
    checks = [Check("vulkan render device", "ok", detail)]
    if torch_has_cuda and not any(
        device.cuda_id >= 0 and device.supported for device in probe.devices
    ):
        checks.append(
            Check(
                "gpu rendering",
                "warn",
                "CUDA is available but no Vulkan device shares it: rendering falls back to the CPU",
                "install the NVIDIA Vulkan ICD (libnvidia-gl, nvidia_icd.json); see the README",
            )
        )
    return checks


def check_ffmpeg() -> Check:
    path = shutil.which("ffmpeg")
    if path is None:
        return Check(
            "ffmpeg",
            "warn",
            "not found (needed only for --video)",
            "sudo bash docker/install-system-deps.sh",
        )
    return Check("ffmpeg", "ok", path)


def check_assets(root: Path, suite: SuiteSpec) -> tuple[Check, bool]:
    statuses: list[AssetStatus] = suite_asset_status(root, suite.asset_suite)
    usable = all(status.state in ("installed", "unmanaged") for status in statuses)
    standins = sum(len(status.standins) for status in statuses)
    detail = ", ".join(f"{status.id}: {status.state}" for status in statuses) + f" in {root}"
    if not usable:
        fix = f"refinevla-bench assets fetch --suite {suite.asset_suite}"
        return Check(f"assets ({suite.name})", "fail", detail, fix), False
    if standins:
        return Check(
            f"assets ({suite.name})",
            "warn",
            f"{detail}; {standins} stand-in file(s)",
            "results on stand-ins are for tests only: see refinevla-bench assets status",
        ), True
    return Check(f"assets ({suite.name})", "ok", detail), True


def run_doctor(
    root: Path,
    suites: Sequence[SuiteSpec],
    progress: Callable[[str], None] | None = None,
) -> DoctorReport:
    report = DoctorReport()

    def add(checks: Sequence[Check]) -> None:
        report.checks.extend(checks)
        if progress is not None:
            for check in checks:
                progress(check.name)

    add([check_python()])
    torch_check, has_cuda = check_torch()
    add([torch_check])
    add(check_simulator(pinned_versions()))
    add(check_render(torch_has_cuda=has_cuda))
    add([check_ffmpeg()])
    blocked = any(check.blocks_suites and check.status == "fail" for check in report.checks)
    for suite in suites:
        asset_check, assets_ok = check_assets(root, suite)
        add([asset_check])
        report.suites[suite.name] = assets_ok and not blocked
    return report
