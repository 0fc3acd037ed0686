"""Each family's prompt: where the image placeholder tokens go and how many there are.

Prompts are written as text with the family's own special tokens and tokenized whole, as the
families' processors do, so a fine-tuned model sees its pretraining format. The number of
image placeholders follows from the model config (and, for Qwen2.5-VL, the image grid), so no
processor class is needed: Qwen2.5-VL's would require torchvision for its video half, and the
remote-code families' would run their code for what a format string does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from refinevla_bench.harness.errors import HarnessError

Images = Sequence[npt.NDArray[np.uint8]]

QWEN_LARGEST_SIDE = 224  # 64 image tokens: enough for one robot camera frame per step
# The question OpenVLA and SpatialVLA were trained on (OpenVLA lower-cases the instruction).
ROBOT_QUESTION = "What action should the robot take to {instruction}?"


@dataclass(frozen=True)
class PromptParts:
    """What prompt building reads: the tokenizer, the image processor and the HF config, and
    the cameras of SpatialVLA's processor config (`intrinsic_config`: name -> 3x3 `intrinsic`
    for an image of `width` x `height`), when the checkpoint has them."""

    tokenizer: Any
    image_processor: Any
    config: Any
    intrinsic_config: Mapping[str, Any] | None = None

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


def no_image_token(config: Any) -> None:
    """Families whose forward places the image without placeholder tokens."""
    del config


def _tokenize(parts: PromptParts, texts: list[str]) -> list[list[int]]:
    encoded = parts.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [list(map(int, ids)) for ids in encoded]


def paligemma_prompts(
    parts: PromptParts, images: Images, instructions: Sequence[str]
) -> PromptBatch:
    """`<image>` x n, BOS, the instruction, a newline: PaliGemma's prefix."""
    return _paligemma_layout(parts, images, instructions)


def spatialvla_prompts(
    parts: PromptParts, images: Images, instructions: Sequence[str]
) -> PromptBatch:
    """PaliGemma's prefix around SpatialVLA's question. Its model normalises pixels itself
    (the processor only resizes and rescales) and reads the camera `intrinsic`: the processor
    config's "default" camera, scaled to the image size, as its own processor does."""
    questions = [ROBOT_QUESTION.format(instruction=text) for text in instructions]
    batch = _paligemma_layout(parts, images, questions, do_normalize=False)
    intrinsic = _default_intrinsic(parts)
    if intrinsic is not None:
        batch.vision_inputs["intrinsic"] = intrinsic.expand(len(images), 3, 3).clone()
    elif getattr(parts.config, "use_vision_zoe", False):
        raise HarnessError(
            "the SpatialVLA checkpoint encodes 3-D positions from the camera intrinsics, but "
            "its processor_config.json has no intrinsic_config.default",
            "restore processor_config.json from the published checkpoint",
        )
    return batch


def _paligemma_layout(
    parts: PromptParts, images: Images, texts: Sequence[str], **processor_options: Any
) -> PromptBatch:
    vision = parts.config.vision_config
    count = (int(vision.image_size) // int(vision.patch_size)) ** 2
    prompts = [f"{parts.image_token * count}{parts.bos}{text}\n" for text in texts]
    pixels = parts.image_processor(images=list(images), return_tensors="pt", **processor_options)
    return PromptBatch(_tokenize(parts, prompts), {"pixel_values": pixels["pixel_values"]})


def _default_intrinsic(parts: PromptParts) -> torch.Tensor | None:
    camera = (parts.intrinsic_config or {}).get("default")
    if camera is None:
        return None
    height, width = vision_square(parts)
    matrix = torch.tensor(camera["intrinsic"], dtype=torch.float32).reshape(3, 3)
    matrix[0] *= width / float(camera["width"])
    matrix[1] *= height / float(camera["height"])
    return matrix


def openvla_prompts(parts: PromptParts, images: Images, instructions: Sequence[str]) -> PromptBatch:
    """BOS and OpenVLA's question: no image placeholders, since its forward splices the image
    patches in right after BOS. Its image processor takes PIL images."""
    texts = [
        f"{parts.bos}In: {ROBOT_QUESTION.format(instruction=text.lower())}\nOut:"
        for text in instructions
    ]
    pixels = parts.image_processor(
        images=[Image.fromarray(frame) for frame in images], return_tensors="pt"
    )
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


def prismatic_image_size(parts: PromptParts) -> tuple[int, int]:
    """OpenVLA's config lists one (square) size per vision backbone; both read one image."""
    side = int(parts.config.image_sizes[0])
    return side, side


def prefix_token_types(
    input_ids: torch.Tensor, is_prompt: torch.Tensor, image_id: int | None
) -> dict[str, torch.Tensor]:
    """PaliGemma attends bidirectionally over the prefix (type 0) and causally after it."""
    del input_ids, image_id
    return {"token_type_ids": (~is_prompt).long()}


def image_token_types(
    input_ids: torch.Tensor, is_prompt: torch.Tensor, image_id: int | None
) -> dict[str, torch.Tensor]:
    """Qwen2.5-VL places 3-D rotary positions on tokens of type 1 (image)."""
    del is_prompt
    if image_id is None:
        raise ValueError("image token types need the image placeholder's id")
    return {"mm_token_type_ids": input_ids.eq(image_id).int()}


def no_token_inputs(
    input_ids: torch.Tensor, is_prompt: torch.Tensor, image_id: int | None
) -> dict[str, torch.Tensor]:
    del input_ids, is_prompt, image_id
    return {}
