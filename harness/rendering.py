"""Which Vulkan devices SAPIEN can render with, and the fix when there is none.

SAPIEN prints its device list as text (`sapien.render.get_device_summary()`); a machine with
no usable driver raises instead. The doctor probes in a child process, because a broken
driver can take the whole interpreter down; the backend checks in-process right before
building an environment, where a failure would otherwise surface as a cryptic Vulkan error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass

from refinevla_bench.harness.errors import HarnessError

NO_RENDER_DEVICE_FIX = (
    "install the Vulkan loader and Mesa lavapipe >= 25 (CPU) or the NVIDIA driver with its "
    "Vulkan ICD (GPU): sudo bash docker/install-system-deps.sh, then run refinevla-bench doctor"
)
_VULKAN_FAILURE = re.compile(r"rendering device|vk::|vulkan|ErrorIncompatibleDriver", re.IGNORECASE)


@dataclass(frozen=True)
class RenderDevice:
    name: str
    supported: bool
    cuda_id: int
    ray_tracing: bool

    @property
    def is_cpu(self) -> bool:
        """Mesa's lavapipe reports itself as llvmpipe: rendering runs on the CPU."""
        return "llvmpipe" in self.name.lower()


def parse_device_summary(summary: str) -> list[RenderDevice]:
    """Parse the text of `sapien.render.get_device_summary()` into devices."""
    devices: list[RenderDevice] = []
    for block in re.split(r"^(?=\S.*?:)", summary, flags=re.MULTILINE):
        header = re.match(r"(?:GPU|CPU|Device)\s*:\s*(.+)", block)
        if header is None:
            continue
        fields = dict(re.findall(r"^\s+(\w+):?\s+(-?\d+)\s*$", block, flags=re.MULTILINE))
        devices.append(
            RenderDevice(
                name=header.group(1).strip(),
                supported=fields.get("Supported", "0") == "1",
                cuda_id=int(fields.get("cudaId", "-1")),
                ray_tracing=fields.get("rayTrace", "0") == "1",
            )
        )
    return devices


def is_vulkan_failure(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and bool(_VULKAN_FAILURE.search(str(error)))


def render_devices_in_process() -> list[RenderDevice]:
    """Devices SAPIEN sees from this process; raises HarnessError when it sees none usable."""
    import sapien

    try:
        devices = parse_device_summary(sapien.render.get_device_summary())
    except RuntimeError as error:
        raise HarnessError(
            f"SAPIEN found no Vulkan render device ({error})", NO_RENDER_DEVICE_FIX
        ) from error
    if not any(device.supported for device in devices):
        names = ", ".join(device.name for device in devices) or "none"
        raise HarnessError(
            f"no Vulkan device SAPIEN can render with (seen: {names})", NO_RENDER_DEVICE_FIX
        )
    return devices


_PROBE = """
import json, sys
try:
    import sapien
    print(json.dumps({"summary": sapien.render.get_device_summary()}))
except Exception as error:
    print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
"""


@dataclass(frozen=True)
class ProbeResult:
    devices: list[RenderDevice]
    error: str | None

    def to_json(self) -> dict[str, object]:
        return {"devices": [asdict(device) for device in self.devices], "error": self.error}


def probe_render_devices(timeout_s: float = 120.0) -> ProbeResult:
    """Ask a child interpreter which devices SAPIEN can render with."""
    try:
        completed = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(os.environ),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ProbeResult([], f"the SAPIEN device probe hung for {timeout_s:.0f} s")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        detail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return ProbeResult(
            [], f"the SAPIEN device probe crashed (exit {completed.returncode}): {detail}"
        )
    payload = json.loads(lines[-1])
    if "error" in payload:
        return ProbeResult([], str(payload["error"]))
    return ProbeResult(parse_device_summary(str(payload["summary"])), None)
