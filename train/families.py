"""What the trainer must know about each supported VLM family, in one table.

A family spec says which config `model_type`s belong to it, how its prompt places the image
(`train/family_prompts.py`), where its vision tower, projector, decoder blocks, final norm and
lm_head live, and whether loading it runs code from the checkpoint (remote code), which is
refused unless the user asked for it after reviewing that code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train import family_prompts
from refinevla_bench.train.family_prompts import PromptBatch, PromptParts

PromptBuilder = Callable[[PromptParts, Sequence[npt.NDArray[np.uint8]], Sequence[str]], PromptBatch]
TokenInputs = Callable[[torch.Tensor, torch.Tensor, int], dict[str, torch.Tensor]]
ImageSize = Callable[[PromptParts], tuple[int, int]]


@dataclass(frozen=True)
class FamilySpec:
    """One VLM family. Module paths are dotted attribute paths from the loaded HF model."""

    name: str
    model_types: tuple[str, ...]
    remote_code: bool
    auto_class: str  # the transformers Auto* class that loads a checkpoint of this family
    vision_paths: tuple[str, ...]  # vision tower, then projector (absent when inside the tower)
    decoder_layers_path: str
    final_norm_path: str
    lm_head_path: str
    build_prompts: PromptBuilder
    token_inputs: TokenInputs  # per-token inputs beyond input_ids (token types)
    image_size: ImageSize  # (height, width) every image is resized to before the processor


PALIGEMMA = FamilySpec(
    name="paligemma",
    model_types=("paligemma",),
    remote_code=False,
    auto_class="AutoModelForImageTextToText",
    vision_paths=("model.vision_tower", "model.multi_modal_projector"),
    decoder_layers_path="model.language_model.layers",
    final_norm_path="model.language_model.norm",
    lm_head_path="lm_head",
    build_prompts=family_prompts.paligemma_prompts,
    token_inputs=family_prompts.prefix_token_types,
    image_size=family_prompts.vision_square,
)

IDEFICS3 = FamilySpec(
    name="idefics3",
    model_types=("idefics3", "smolvlm"),  # SmolVLM: idefics3 (v1), smolvlm (v2), same layout
    remote_code=False,
    auto_class="AutoModelForImageTextToText",
    vision_paths=("model.vision_model", "model.connector"),
    decoder_layers_path="model.text_model.layers",
    final_norm_path="model.text_model.norm",
    lm_head_path="lm_head",
    build_prompts=family_prompts.idefics3_prompts,
    token_inputs=family_prompts.no_token_inputs,
    image_size=family_prompts.vision_square,
)

QWEN2_5_VL = FamilySpec(
    name="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    remote_code=False,
    auto_class="AutoModelForImageTextToText",
    vision_paths=("model.visual",),  # the patch merger (projector) is model.visual.merger
    decoder_layers_path="model.language_model.layers",
    final_norm_path="model.language_model.norm",
    lm_head_path="lm_head",
    build_prompts=family_prompts.qwen2_5_vl_prompts,
    token_inputs=family_prompts.image_token_types,
    image_size=family_prompts.qwen2_5_vl_image_size,
)

# SpatialVLA ships its modelling code with the checkpoint (PaliGemma2 layout of transformers
# 4.x: the language model is a Gemma2ForCausalLM under `language_model`). Its prompt places the
# image like PaliGemma. Not exercised offline: no code is available without the hub.
SPATIALVLA = FamilySpec(
    name="spatialvla",
    model_types=("spatialvla",),
    remote_code=True,
    auto_class="AutoModel",
    vision_paths=("vision_tower", "multi_modal_projector"),
    decoder_layers_path="language_model.model.layers",
    final_norm_path="language_model.model.norm",
    lm_head_path="language_model.lm_head",
    build_prompts=family_prompts.paligemma_prompts,
    token_inputs=family_prompts.prefix_token_types,
    image_size=family_prompts.vision_square,
)

FAMILIES: Mapping[str, FamilySpec] = {
    spec.name: spec for spec in (PALIGEMMA, IDEFICS3, QWEN2_5_VL, SPATIALVLA)
}

# Families recognised but refused with a reason, even with remote code allowed.
UNSUPPORTED_FAMILIES: Mapping[str, str] = {
    "openvla": (
        "OpenVLA splices its image patches into the sequence inside the model's forward, so "
        "the token positions of its logits do not match input_ids and the action/rationale "
        "masks cannot be aligned"
    ),
}

NATIVE_MODEL_TYPES = frozenset(
    model_type
    for spec in FAMILIES.values()
    if not spec.remote_code
    for model_type in spec.model_types
)


def family_for_model_type(model_type: str) -> FamilySpec:
    """The spec of a config's `model_type`, or a HarnessError naming what is supported."""
    for spec in FAMILIES.values():
        if model_type in spec.model_types:
            return spec
    if model_type in UNSUPPORTED_FAMILIES:
        raise HarnessError(
            f"model type '{model_type}' is not supported: {UNSUPPORTED_FAMILIES[model_type]}",
            "fine-tune a paligemma, idefics3/smolvlm, qwen2_5_vl or spatialvla checkpoint",
        )
    supported = ", ".join(sorted(t for spec in FAMILIES.values() for t in spec.model_types))
    raise HarnessError(
        f"model type '{model_type}' is not a supported VLM family (supported: {supported})",
        "pass --base with a checkpoint of one of those families",
    )


def family_by_name(name: str) -> FamilySpec:
    if name not in FAMILIES:
        raise HarnessError(
            f"unknown model family '{name}' (known: {', '.join(FAMILIES)})",
            "use a checkpoint written by this version of refinevla-bench",
        )
    return FAMILIES[name]


def module_at(model: nn.Module, dotted_path: str) -> nn.Module:
    """The submodule at a dotted attribute path, or a HarnessError naming the missing part."""
    try:
        found = functools.reduce(getattr, dotted_path.split("."), model)
    except AttributeError as error:
        raise HarnessError(
            f"{type(model).__name__} has no module '{dotted_path}' ({error})",
            "use a checkpoint whose layout matches its family (see train/families.py)",
        ) from error
    if not isinstance(found, nn.Module):
        raise HarnessError(
            f"'{dotted_path}' of {type(model).__name__} is not a module",
            "use a checkpoint whose layout matches its family (see train/families.py)",
        )
    return found
