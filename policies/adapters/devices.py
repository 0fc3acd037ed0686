"""Picking the torch device an adapter runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from refinevla_bench.harness.errors import HarnessError

if TYPE_CHECKING:
    import torch


def torch_device(name: str) -> torch.device:
    """`auto` takes the GPU when one is visible; asking for cuda without one is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError as error:
        raise HarnessError(f"unknown device '{name}'", "pass device=auto, cpu or cuda") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError("device cuda was asked for but no GPU is visible", "pass device=cpu")
    return chosen
