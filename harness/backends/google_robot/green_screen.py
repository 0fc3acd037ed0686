"""SimplerEnv's "green screen": simulated background pixels replaced by a real photo.

Upstream (ManiSkill2_real2sim custom_scenes/base_env.py `get_obs`) keeps the pixels whose
actor-level segmentation id is a robot link or a task object and shows the overlay photo,
resized with OpenCV's default (bilinear) interpolation to the camera's size, everywhere else.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import torch

from refinevla_bench.harness.errors import HarnessError


def load_overlay(path: Path, width: int, height: int) -> npt.NDArray[np.uint8]:
    """The photo as RGB uint8 at the camera's size: resized as [0, 1] floats like upstream,
    then clip(x * 255) truncated to uint8 like ManiSkill2's colour-to-rgb conversion."""
    image = cv2.imread(str(path))
    if image is None:
        raise HarnessError(
            f"no overlay image at {path}", "refinevla-bench assets fetch --suite google_robot"
        )
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0
    resized: npt.NDArray[np.float64] = np.asarray(cv2.resize(rgb, (width, height)), np.float64)
    return np.clip(resized * 255.0, 0, 255).astype(np.uint8)


def composite(
    rgb: torch.Tensor, segmentation: torch.Tensor, keep_ids: torch.Tensor, overlay: torch.Tensor
) -> torch.Tensor:
    """Per env row: rendered pixels where the segmentation id is in `keep_ids`, else the
    overlay. rgb (N, H, W, 3) uint8, segmentation (N, H, W, 1), overlay (H, W, 3) uint8 for
    every row or (N, H, W, 3), one photo per row."""
    keep = torch.isin(segmentation[..., 0].long(), keep_ids.to(segmentation.device).long())
    return torch.where(keep[..., None], rgb, overlay.to(rgb.device).expand_as(rgb))
