"""Each family's prompt: where the image placeholder tokens go and how many there are.

Prompts are written as text with the family's own special tokens and tokenized whole, as the
families' processors do, so a fine-tuned model sees its pretraining format. The number of
image placeholders follows from the model config (and, for Qwen2.5-VL, the image grid), so no
processor class is needed: Qwen2.5-VL's would require torchvision for its video half.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

Images = Sequence[npt.NDArray[np.uint8]]

QWEN_LARGEST_SIDE = 224  # 64 image tokens: enough for one robot camera frame per step


@dataclass(frozen=True)
class PromptParts:
    """What prompt building reads: the tokenizer, the image processor and the HF config."""

    tokenizer: Any
    image_processor: Any
    config: Any

    @property
    def image_token(self) -> str:
        return str(self.tokenizer.convert_ids_to_tokens(image_token_id(self.config)))

    @property
    def bos(self) -> str:
        return str(self.tokenizer.bos_token or "")


@dataclass(frozen=True)
class PromptBatch:
    """Unpadded prompt token ids per row and the vision tensors of the whole batch."""

    token_ids: list[list[int]]
    vision_inputs: dict[str, torch.Tensor]


def image_token_id(config: Any) -> int:
    """The id of the image placeholder token (PaliGemma 1.x configs call it an index)."""
    found = getattr(config, "image_token_id", None)
    if found is None:
        found = config.image_token_index
    return int(found)


def _tokenize(parts: PromptParts, texts: list[str]) -> list[list[int]]:
    encoded = parts.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [list(map(int, ids)) for ids in encoded]


def paligemma_prompts(
    parts: PromptParts, images: Images, instructions: Sequence[str]
) -> PromptBatch:
    """`<image>` x n, BOS, the instruction, a newline: PaliGemma's prefix."""
    vision = parts.config.vision_config
    count = (int(vision.image_size) // int(vision.patch_size)) ** 2
    texts = [f"{parts.image_token * count}{parts.bos}{text}\n" for text in instructions]
    pixels = parts.image_processor(images=list(images), return_tensors="pt")
    return PromptBatch(_tokenize(parts, texts), {"pixel_values": pixels["pixel_values"]})


def idefics3_prompts(
    parts: PromptParts, images: Images, instructions: Sequence[str]
) -> PromptBatch:
    """Idefics3/SmolVLM chat turn with one global image (no sub-image splitting: one frame
    per step at the vision encoder's native size keeps the sequence short)."""
    vision = parts.config.vision_config
    side = int(vision.image_size) // int(vision.patch_size)
    count = int(side**2 / int(parts.config.scale_factor) ** 2)
    fake = "<fake_token_around_image>"
    image = f"{fake}<global-img>{parts.image_token * count}{fake}"
    texts = [
        f"{parts.bos}User:{image}{text}<end_of_utterance>\nAssistant:" for text in instructions
    ]
    pixels = parts.image_processor(
        images=[[frame] for frame in images], do_image_splitting=False, return_tensors="pt"
    )
    return PromptBatch(_tokenize(parts, texts), dict(pixels))


def qwen2_5_vl_prompts(
    parts: PromptParts, images: Images, instructions: Sequence[str]
) -> PromptBatch:
    """Qwen chat turn; one placeholder per merged patch group of the image grid."""
    pixels = dict(parts.image_processor(images=list(images), return_tensors="pt"))
    merge = int(parts.config.vision_config.spatial_merge_size)
    counts = [int(grid.prod()) // merge**2 for grid in pixels["image_grid_thw"]]
    texts = [
        "<|im_start|>user\n<|vision_start|>"
        f"{parts.image_token * count}<|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n"
        for text, count in zip(instructions, counts, strict=True)
    ]
    return PromptBatch(_tokenize(parts, texts), pixels)


def qwen2_5_vl_image_size(parts: PromptParts) -> tuple[int, int]:
    """The largest square of whole merged patches up to 224 pixels that the processor's pixel
    budget allows (Qwen2.5-VL takes any size; a fixed one keeps training and acting alike)."""
    vision = parts.config.vision_config
    unit = int(vision.patch_size) * int(vision.spatial_merge_size)
    budget = math.isqrt(int(parts.image_processor.size.longest_edge))
    side = max(unit, min(QWEN_LARGEST_SIDE, budget) // unit * unit)
    return side, side


def vision_square(parts: PromptParts) -> tuple[int, int]:
    side = int(parts.config.vision_config.image_size)
    return side, side


def prefix_token_types(
    input_ids: torch.Tensor, is_prompt: torch.Tensor, image_id: int
) -> dict[str, torch.Tensor]:
    """PaliGemma attends bidirectionally over the prefix (type 0) and causally after it."""
    del input_ids, image_id
    return {"token_type_ids": (~is_prompt).long()}


def image_token_types(
    input_ids: torch.Tensor, is_prompt: torch.Tensor, image_id: int
) -> dict[str, torch.Tensor]:
    """Qwen2.5-VL places 3-D rotary positions on tokens of type 1 (image)."""
    del is_prompt
    return {"mm_token_type_ids": (input_ids == image_id).int()}


def no_token_inputs(
    input_ids: torch.Tensor, is_prompt: torch.Tensor, image_id: int
) -> dict[str, torch.Tensor]:
    del input_ids, is_prompt, image_id
    return {}
