"""Where a VLA looks when it acts: attention of the action tokens over the image patches.

ReFineVLA's claim is that reasoning-aware fine-tuning shifts this attention toward the objects
the task is about. The map for one frame is the attention that the positions predicting action
tokens pay to the image-patch positions, averaged over heads and over the chosen layers, with
the action tokens teacher-forced from the recorded action (the sequence the model is trained on
with reasoning off), and renormalised over the patches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageDraw

from refinevla_bench.train.vla import EncodedBatch, TrainingExample, VLAModel

LayerChoice = Literal["last", "all"]
LAYER_CHOICES: tuple[LayerChoice, ...] = ("last", "all")

# A dark-to-bright ramp (black, purple, orange, yellow-white): low attention stays dark.
_RAMP = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64
)


@dataclass(frozen=True)
class AttentionMap:
    weights: npt.NDArray[np.float64]  # (rows, cols) over the patch grid, summing to 1
    entropy: float  # of the weights in nats: lower = more focused

    @property
    def peak(self) -> tuple[int, int]:
        row, col = np.unravel_index(int(self.weights.argmax()), self.weights.shape)
        return int(row), int(col)


@contextmanager
def _eager_attention(vla: VLAModel) -> Iterator[None]:
    """Fused attention kernels return no weights; switch to the eager path meanwhile."""
    model: Any = vla.model
    previous = getattr(model.config, "_attn_implementation", None)
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if previous is not None:
            model.set_attn_implementation(previous)


def _patch_grid(batch: EncodedBatch, patches: int) -> tuple[int, int]:
    grid = batch.inputs.get("image_grid_thw")
    if grid is not None:  # Qwen2.5-VL merges 2x2 patches into one token
        _, height, width = (int(value) for value in grid[0])
        return height // 2, width // 2
    side = math.isqrt(patches)
    if side * side != patches:
        raise ValueError(f"{patches} image tokens do not form a square grid")
    return side, side


@torch.no_grad()
def action_attention(
    vla: VLAModel,
    image: npt.NDArray[np.uint8],
    instruction: str,
    action: npt.NDArray[np.float32],
    layers: LayerChoice = "all",
) -> AttentionMap:
    batch = vla.encode([TrainingExample(image, instruction, "", action)])
    device = next(vla.model.parameters()).device
    batch = batch.to(device)
    with _eager_attention(vla):  # called as in training: the family's own attention mask
        outputs = vla.model_outputs(batch, output_attentions=True)
    stacked = torch.stack([layer[0].float() for layer in outputs.attentions])  # (L, H, T, T)
    chosen = stacked[-1:] if layers == "last" else stacked
    per_query = chosen.mean(dim=(0, 1))  # (T, T)
    queries = batch.action_mask[0]
    keys = vla.image_token_positions(batch)[0]
    weights = per_query[queries][:, keys].mean(dim=0).double().cpu().numpy()
    weights = weights / weights.sum()
    grid = _patch_grid(batch, int(keys.sum()))
    entropy = float(-(weights * np.log(np.clip(weights, 1e-12, None))).sum())
    return AttentionMap(weights.reshape(grid), entropy)


def heat_colours(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Values in [0, 1] -> RGB along the ramp."""
    position = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    fraction = (position - low)[..., None]
    colours: npt.NDArray[np.float64] = _RAMP[low] * (1 - fraction) + _RAMP[low + 1] * fraction
    return colours.round().astype(np.uint8)


def overlay(
    frame: npt.NDArray[np.uint8], attention: AttentionMap, alpha: float = 0.55
) -> npt.NDArray[np.uint8]:
    """The frame with the map upsampled over it (scaled to its own maximum)."""
    height, width = frame.shape[:2]
    scaled = attention.weights / attention.weights.max()
    smooth = Image.fromarray((scaled * 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    heat = heat_colours(np.asarray(smooth, dtype=np.float64) / 255.0)
    blended = frame.astype(np.float64) * (1 - alpha) + heat.astype(np.float64) * alpha
    return blended.round().astype(np.uint8)


def side_by_side(
    panels: list[tuple[str, npt.NDArray[np.uint8]]], label_height: int = 18
) -> Image.Image:
    """Panels left to right, each under its label."""
    height, width = panels[0][1].shape[:2]
    sheet = Image.new("RGB", (width * len(panels), height + label_height), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (label, image) in enumerate(panels):
        sheet.paste(Image.fromarray(image), (column * width, label_height))
        draw.text((column * width + 4, 3), label, fill="black")
    return sheet
