"""What the trainer must know about each supported VLM family, in one table.

A family spec says which config `model_type`s belong to it, how its prompt places the image
(`train/family_prompts.py`), where its vision tower, projector, decoder blocks, final norm and
lm_head live, and whether loading it runs code from the checkpoint (remote code), which is
refused unless the user asked for it after reviewing that code. Remote-code families also
state how their published forward differs from transformers' own families (see the fields
after `image_size`), so one VLAModel serves them all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train import family_prompts
from refinevla_bench.train.family_prompts import PromptBatch, PromptParts

PromptBuilder = Callable[[PromptParts, Sequence[npt.NDArray[np.uint8]], Sequence[str]], PromptBatch]
TokenInputs = Callable[[torch.Tensor, torch.Tensor, int | None], dict[str, torch.Tensor]]
ImageSize = Callable[[PromptParts], tuple[int, int]]
ImageTokenId = Callable[[Any], int | None]
InsertedPatches = Callable[[nn.Module], int]


def no_inserted_patches(model: nn.Module) -> int:
    del model
    return 0


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
    # The image placeholder token's id from the config; None: the prompt has no placeholders.
    image_token_id: ImageTokenId = family_prompts.image_token_id
    # How many image embeddings the forward splices in right after the first input token
    # (BOS), read from the loaded model: logits then outnumber input_ids by that many.
    inserted_patches: InsertedPatches = no_inserted_patches
    # Whether the forward takes `logits_to_keep` (computing logits for the last positions only).
    logits_to_keep: bool = True
    # Whether the forward applies its training attention mask only when given `labels`.
    training_needs_labels: bool = False
    # Whether generation's first pass attends over every input token (token types ignored):
    # the end-of-rationale marker must then be generated, not fed, to stay causal as in training.
    bidirectional_first_pass: bool = False
    # Whether generation handles one row at a time.
    generates_single_rows: bool = False
    # auto_map keys of older transformers naming the model class, used when `auto_class`'s
    # own key is absent (transformers 5 has no AutoModelForVision2Seq).
    auto_class_aliases: tuple[str, ...] = ()
    # Config attributes set before the remote model is built.
    config_overrides: tuple[tuple[str, Any], ...] = ()
    # Whether prompts read camera intrinsics from the checkpoint's processor_config.json.
    camera_intrinsics: bool = False
    # What to fine-tune instead when the checkpoint's own code does not run.
    native_alternative: str = ""


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
# 4.47: the language model is a Gemma2ForCausalLM under `language_model`). Its prompt places
# the image like PaliGemma. Its forward builds the training mask (causal, prefix bidirectional)
# only when given labels, and otherwise lets a first pass attend over every input token. Its
# `use_spatial_token` makes its loader copy its spatial action embeddings into the last rows
# of the input embeddings, which are ours after the action tokens are added: it is switched
# off, as our action tokens replace its spatial ones.
SPATIALVLA = FamilySpec(
    name="spatialvla",
    model_types=("spatialvla",),
    remote_code=True,
    auto_class="AutoModel",
    vision_paths=("vision_tower", "multi_modal_projector"),
    decoder_layers_path="language_model.model.layers",
    final_norm_path="language_model.model.norm",
    lm_head_path="language_model.lm_head",
    build_prompts=family_prompts.spatialvla_prompts,
    token_inputs=family_prompts.prefix_token_types,
    image_size=family_prompts.vision_square,
    logits_to_keep=False,  # it scores its own labels over every position
    training_needs_labels=True,
    bidirectional_first_pass=True,
    config_overrides=(("use_spatial_token", False),),
    camera_intrinsics=True,
    native_alternative="a PaliGemma2 base (model type paligemma, no remote code)",
)


def prismatic_patches(model: nn.Module) -> int:
    """The patch count of OpenVLA's vision backbone, where timm keeps it (the fused second
    backbone's patches are stacked on the feature axis, not appended)."""
    path = "vision_backbone.featurizer.patch_embed"
    count = getattr(module_at(model, path), "num_patches", None)
    if not isinstance(count, int):
        raise HarnessError(
            f"'{path}' of {type(model).__name__} does not say how many patches it makes",
            "use a checkpoint whose layout matches its family (see train/families.py)",
        )
    return count


# OpenVLA (Prismatic) ships its modelling code with the checkpoint: two vision backbones, a
# projector and a Llama-2 under `language_model`. Its prompt holds no image placeholder: the
# forward splices the projected patches in after BOS. Its generation handles one row at a time.
# Its own action tokenizer reuses the last 256 vocabulary ids; fine-tuning here adds our action
# tokens and statistics instead, like every family (zero-shot OpenVLA is a served baseline).
OPENVLA = FamilySpec(
    name="openvla",
    model_types=("openvla",),
    remote_code=True,
    auto_class="AutoModelForImageTextToText",
    vision_paths=("vision_backbone", "projector"),
    decoder_layers_path="language_model.model.layers",
    final_norm_path="language_model.model.norm",
    lm_head_path="language_model.lm_head",
    build_prompts=family_prompts.openvla_prompts,
    token_inputs=family_prompts.no_token_inputs,
    image_size=family_prompts.prismatic_image_size,
    image_token_id=family_prompts.no_image_token,
    inserted_patches=prismatic_patches,
    logits_to_keep=False,
    generates_single_rows=True,
    auto_class_aliases=("AutoModelForVision2Seq",),
    native_alternative="a native base (paligemma, idefics3/smolvlm or qwen2_5_vl)",
)

FAMILIES: Mapping[str, FamilySpec] = {
    spec.name: spec for spec in (PALIGEMMA, IDEFICS3, QWEN2_5_VL, SPATIALVLA, OPENVLA)
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
