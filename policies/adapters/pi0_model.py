"""transformers' PI0 behind a numpy interface: loading, preprocessing and `sample_actions`.

PI0Processor needs torchvision, which the family environment does not carry, so its rules are
applied here (transformers/models/pi0/processing_pi0.py and image_processing_pi0.py): each
image is resized bicubically (antialiased, as torchvision does on uint8 images) keeping its
aspect so it fits the vision tower's square, rescaled to [-1, 1] (mean = std = 0.5) and padded
with zeros at the bottom and right; the prompt is `<image>` once per image token, then bos, the
instruction and a newline, right-padded to at least 48 tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as functional
from transformers import AutoTokenizer, PI0ForConditionalGeneration
from transformers.utils.hub import cached_file

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.devices import torch_device
from refinevla_bench.policies.adapters.pi0_decoding import Pi0Statistics
from refinevla_bench.policies.adapters.pi0_tiny import TINY_RANDOM, ensure_tiny_pi0
from refinevla_bench.policies.adapters.sources import model_source

PROMPT_MIN_LENGTH = 48  # PI0Processor pads to max_length 48
PIXEL_CENTRE = 127.5  # rescale 1/255 then normalise with mean = std = 0.5, fused
TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_checkpoint(checkpoint: str) -> str:
    """`tiny:random` (built once into the user cache), a local folder or a hub id."""
    if checkpoint == TINY_RANDOM:
        return str(ensure_tiny_pi0())
    return model_source(checkpoint)


def read_processor_config(source: str) -> dict[str, Any]:
    """The processor_config.json beside the model (downloaded with it for a hub id)."""
    path = cached_file(source, "processor_config.json", _raise_exceptions_for_missing_entries=False)
    if path is None:
        raise HarnessError(
            f"checkpoint {source} has no processor_config.json, so its dataset statistics "
            "(state_mean/std, actions_mean/std) are unknown",
            "save the PI0Processor built with the training data's statistics beside the model "
            "(processor.save_pretrained(CHECKPOINT))",
        )
    loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise HarnessError(
            f"checkpoint {source}: processor_config.json is not a JSON object",
            "use the processor_config.json saved with the checkpoint",
        )
    return loaded


def fitted_size(height: int, width: int, side: int) -> tuple[int, int]:
    """The size the processor resizes to: the largest that fits side x side, aspect kept,
    each edge rounded down (transformers' get_image_size_for_max_height_width)."""
    scale = min(side / height, side / width)
    return int(height * scale), int(width * scale)


def pixel_values(images: npt.NDArray[np.uint8], side: int) -> torch.Tensor:
    """(batch, H, W, 3) uint8 -> (batch, 3, side, side) float32 in [-1, 1], zero padding."""
    _, height, width, _ = images.shape
    channels_first = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    size = fitted_size(height, width, side)
    if size != (height, width):
        channels_first = functional.interpolate(
            channels_first.contiguous(),
            size=list(size),
            mode="bicubic",
            align_corners=False,
            antialias=True,
        )
    scaled = (channels_first.to(torch.float32) - PIXEL_CENTRE) / PIXEL_CENTRE
    return functional.pad(scaled, (0, side - size[1], 0, side - size[0]), value=0.0)


@dataclass(frozen=True)
class Prompts:
    input_ids: torch.Tensor  # (batch, length) int64
    attention_mask: torch.Tensor  # (batch, length) int64, 0 on padding


def prompts(
    tokenizer: Any, instructions: Sequence[str], image_token_id: int, image_tokens: int
) -> Prompts:
    """`<image>` x image_tokens + bos + instruction + newline per row, right-padded to the
    longest row and at least 48 tokens (the processor's max_length padding; a batch whose
    rows exceed 48 is padded to its longest, which the attention mask hides)."""
    texts = [f"{tokenizer.bos_token}{instruction}\n" for instruction in instructions]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = [[image_token_id] * image_tokens + list(ids) for ids in encoded]
    length = max(PROMPT_MIN_LENGTH, *(len(row) for row in rows))
    input_ids = torch.full((len(rows), length), int(tokenizer.pad_token_id), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[index, : len(row)] = 1
    return Prompts(input_ids, attention_mask)


class Pi0Runner:
    """A loaded PI0 checkpoint: numpy images, instructions, states and noise in, normalised
    action chunks out."""

    def __init__(self, checkpoint: str, device: str = "auto", dtype: str = "auto") -> None:
        self.source = resolve_checkpoint(checkpoint)
        self.device = torch_device(device)
        self.dtype = _torch_dtype(dtype, self.device)
        self.statistics = Pi0Statistics.from_processor_config(
            read_processor_config(self.source), self.source
        )
        # typed loosely: transformers' stubs do not follow PI0's sub-configs and tensor kinds
        self.model = cast(
            Any, PI0ForConditionalGeneration.from_pretrained(self.source, dtype=self.dtype)
        )
        self.model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        if self.tokenizer.bos_token is None or self.tokenizer.pad_token_id is None:
            raise HarnessError(
                f"checkpoint {self.source}'s tokenizer has no bos or pad token",
                "use the tokenizer saved with the checkpoint (PaliGemma's)",
            )
        config = self.model.config
        vision = config.vlm_config.vision_config
        self.image_side = int(vision.image_size)
        self.image_tokens = (self.image_side // int(vision.patch_size)) ** 2
        self.image_token_id = int(config.vlm_config.image_token_id)
        self.chunk_size = int(config.chunk_size)
        self.max_state_dim = int(config.max_state_dim)
        self.max_action_dim = int(config.max_action_dim)
        self.default_steps = int(config.num_inference_steps)

    def sample(
        self,
        images: npt.NDArray[np.uint8],
        instructions: Sequence[str],
        state: npt.NDArray[np.float64],
        noise: npt.NDArray[np.float64],
        num_steps: int,
    ) -> npt.NDArray[np.float64]:
        """(batch, chunk_size, max_action_dim) normalised actions, denoised from `noise`."""
        prompt = prompts(self.tokenizer, instructions, self.image_token_id, self.image_tokens)
        pixels = pixel_values(images, self.image_side)[:, None]  # one camera per row
        inputs: Mapping[str, torch.Tensor] = {
            "input_ids": prompt.input_ids,
            "attention_mask": prompt.attention_mask,
            "pixel_values": pixels.to(self.dtype),
            "pixel_attention_mask": torch.ones((len(instructions), 1), dtype=torch.bool),
            "state": torch.from_numpy(state).to(self.dtype),
            "noise": torch.from_numpy(noise).to(self.dtype),
        }
        with torch.inference_mode():
            chunks = self.model.sample_actions(
                **{key: value.to(self.device) for key, value in inputs.items()},
                num_steps=num_steps,
            )
        result: npt.NDArray[np.float64] = chunks.float().cpu().numpy().astype(np.float64)
        return result


def _torch_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on a GPU (how PI0 is served), float32 on a CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return TORCH_DTYPES[name]
