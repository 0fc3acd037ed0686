"""Tiny randomly initialised VLMs of each supported family, saved like hub checkpoints.

Tests and smoke runs need a base model without downloading weights: this trains a small BPE
tokenizer on local text, builds a few-layer model of the family from a config and saves model,
tokenizer and image processor to a folder that `VLAModel.from_base` loads like any checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    SiglipImageProcessorPil,
)

DEFAULT_CORPUS: tuple[str, ...] = (
    "put the spoon on the towel",
    "put carrot on plate",
    "stack the green block on the yellow block",
    "put eggplant into yellow basket",
    "Observation: In view: the gripper, open and empty; the spoon 19 cm from it.",
    "Situation: The task is to put the carrot on the plate; nothing is held yet.",
    "Spatial: The gripper is to the left of, closer to the robot than and above the block.",
    "Plan: 1. reach the spoon 2. grasp the spoon 3. lift the spoon 4. carry the spoon",
    "5. place the spoon on the towel 6. release the spoon and retreat",
    "Subtask: reach grasp lift move place release",
    "Next: Move the open gripper 11 cm right, 9.0 cm farther from the robot and 12 cm down.",
    "Next: Close the gripper on the eggplant, then raise it above the basket.",
)

TEXT_WIDTH = 64  # hidden size of the language model
TEXT_LAYERS = 4  # enough to freeze some and train others
VISION_WIDTH = 32
TOKENIZER_VOCABULARY = 1024


@dataclass(frozen=True)
class _Recipe:
    special_tokens: tuple[str, ...]  # first four: padding, eos, bos (or ""), unknown (or "")
    scaffold: str  # the family's prompt words, so the tokenizer has merges for them
    config: Callable[[PreTrainedTokenizerFast, int], Any]
    image_processor: Callable[[int], Any]
    model_class: type[Any]


def build_tiny_base(
    out: Path,
    family: str = "paligemma",
    corpus: Iterable[str] = DEFAULT_CORPUS,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Writes a tiny `family` base model to `out` (created) and returns `out`."""
    if family not in _RECIPES:
        raise ValueError(f"no tiny recipe for family '{family}' (known: {', '.join(_RECIPES)})")
    recipe = _RECIPES[family]
    tokenizer = train_tokenizer([*corpus, recipe.scaffold], recipe.special_tokens)
    torch.manual_seed(seed)
    model = recipe.model_class(recipe.config(tokenizer, image_size))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    recipe.image_processor(image_size).save_pretrained(out)
    return out


def train_tokenizer(texts: list[str], special_tokens: tuple[str, ...]) -> PreTrainedTokenizerFast:
    """A byte-level BPE: any text encodes, and merges come from the given text only."""
    bpe = Tokenizer(models.BPE(unk_token=special_tokens[3] or None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCABULARY,
        special_tokens=[token for token in special_tokens if token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    pad, eos, bos, unk = special_tokens[:4]
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # untyped in transformers
        tokenizer_object=bpe,
        pad_token=pad,
        eos_token=eos,
        bos_token=bos or None,
        unk_token=unk or None,
    )


def _id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int):
        raise ValueError(f"the tiny tokenizer has no single token {token!r}")
    return found


def _text_config(tokenizer: PreTrainedTokenizerFast, **extra: Any) -> dict[str, Any]:
    return {
        "hidden_size": TEXT_WIDTH,
        "intermediate_size": 2 * TEXT_WIDTH,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": 4,
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        **extra,
    }


def _vision_config(image_size: int, patch_size: int, **extra: Any) -> dict[str, Any]:
    return {
        "hidden_size": VISION_WIDTH,
        "intermediate_size": 2 * VISION_WIDTH,
        "image_size": image_size,
        "patch_size": patch_size,
        **extra,
    }


def _paligemma_config(tokenizer: PreTrainedTokenizerFast, image_size: int) -> PaliGemmaConfig:
    vision = _vision_config(
        image_size,
        16,
        model_type="siglip_vision_model",
        num_hidden_layers=2,
        num_attention_heads=2,
        vision_use_head=False,
    )
    text = _text_config(tokenizer, model_type="gemma", num_key_value_heads=1, head_dim=16)
    return PaliGemmaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=_id(tokenizer, "<image>"),
        vocab_size=len(tokenizer),
        projection_dim=TEXT_WIDTH,
        hidden_size=TEXT_WIDTH,
    )


def _idefics3_config(tokenizer: PreTrainedTokenizerFast, image_size: int) -> Idefics3Config:
    vision = _vision_config(image_size, 16, num_hidden_layers=2, num_attention_heads=2)
    text = _text_config(tokenizer, model_type="llama", num_key_value_heads=2)
    return Idefics3Config(
        vision_config=vision,
        text_config=text,
        scale_factor=2,
        image_token_id=_id(tokenizer, "<image>"),
    )


QWEN_UNIT = 28  # patch 14 x merge 2: Qwen2.5-VL image sides are multiples of this


def _qwen_side(image_size: int) -> int:
    return max(QWEN_UNIT, image_size // QWEN_UNIT * QWEN_UNIT)


def _qwen2_5_vl_config(tokenizer: PreTrainedTokenizerFast, image_size: int) -> Qwen2_5_VLConfig:
    del image_size  # Qwen2.5-VL's vision tower takes any multiple of QWEN_UNIT
    vision = {
        "depth": 2,
        "hidden_size": VISION_WIDTH,
        "intermediate_size": 2 * VISION_WIDTH,
        "num_heads": 2,
        "out_hidden_size": TEXT_WIDTH,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 2 * QWEN_UNIT,
        "fullatt_block_indexes": [1],
    }
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    text = _text_config(
        tokenizer,
        num_key_value_heads=2,
        rope_parameters=rope,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return Qwen2_5_VLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=_id(tokenizer, "<|image_pad|>"),
        video_token_id=_id(tokenizer, "<|video_pad|>"),
        vision_start_token_id=_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=_id(tokenizer, "<|vision_end|>"),
    )


def _qwen_image_processor(image_size: int) -> Qwen2VLImageProcessorPil:
    side = _qwen_side(image_size)
    return Qwen2VLImageProcessorPil(
        min_pixels=QWEN_UNIT**2,
        max_pixels=side**2,
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
    )


_RECIPES: dict[str, _Recipe] = {
    "paligemma": _Recipe(
        special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<image>"),
        scaffold="",
        config=_paligemma_config,
        image_processor=lambda side: SiglipImageProcessorPil(size={"height": side, "width": side}),
        model_class=PaliGemmaForConditionalGeneration,
    ),
    "idefics3": _Recipe(
        special_tokens=(
            "<pad>",
            "<eos>",
            "<bos>",
            "<unk>",
            "<image>",
            "<fake_token_around_image>",
            "<global-img>",
            "<end_of_utterance>",
        ),
        scaffold="User: Assistant:",
        config=_idefics3_config,
        image_processor=lambda side: Idefics3ImageProcessorPil(
            size={"longest_edge": side},
            max_image_size={"longest_edge": side},
            do_image_splitting=False,
        ),
        model_class=Idefics3ForConditionalGeneration,
    ),
    "qwen2_5_vl": _Recipe(
        special_tokens=(
            "<|endoftext|>",
            "<|im_end|>",
            "",
            "",
            "<|im_start|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|image_pad|>",
            "<|video_pad|>",
        ),
        scaffold="user assistant",
        config=_qwen2_5_vl_config,
        image_processor=_qwen_image_processor,
        model_class=Qwen2_5_VLForConditionalGeneration,
    ),
}

TINY_FAMILIES: tuple[str, ...] = tuple(_RECIPES)
