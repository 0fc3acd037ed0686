"""Parsing SAPIEN's device list, and the live probe on this machine."""

from __future__ import annotations

import pytest

from refinevla_bench.harness.rendering import (
    is_vulkan_failure,
    parse_device_summary,
    probe_render_devices,
)

GPU_AND_CPU = """GPU: NVIDIA H100 80GB HBM3
  Supported: 1
  Present:   1
  cudaId:    0
  rayTrace:  1
  cudaMode   1
GPU: llvmpipe (LLVM 15.0.6, 256 bits)
  Supported: 0
  Present:   0
  cudaId:    -1
  rayTrace:  0
  cudaMode   -1
"""


def test_parse_summary_reads_each_device() -> None:
    gpu, cpu = parse_device_summary(GPU_AND_CPU)
    assert (gpu.name, gpu.supported, gpu.cuda_id, gpu.is_cpu) == (
        "NVIDIA H100 80GB HBM3",
        True,
        0,
        False,
    )
    assert (cpu.supported, cpu.cuda_id, cpu.is_cpu, cpu.ray_tracing) == (False, -1, True, False)


def test_vulkan_failures_are_recognised() -> None:
    assert is_vulkan_failure(RuntimeError("vk::createInstanceUnique: ErrorIncompatibleDriver"))
    assert is_vulkan_failure(RuntimeError("failed to find a rendering device"))
    assert not is_vulkan_failure(RuntimeError("index out of range"))


def test_probe_finds_a_supported_device_here() -> None:
    result = probe_render_devices()
    assert result.error is None
    assert any(device.supported for device in result.devices)


def test_probe_reports_a_missing_driver_without_crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VK_DRIVER_FILES", "/nonexistent/icd.json")
    monkeypatch.setenv("VK_ICD_FILENAMES", "/nonexistent/icd.json")
    result = probe_render_devices()
    assert result.devices == []
    assert result.error is not None and "rendering device" in result.error
