"""A tiny randomly initialised PI0 checkpoint, saved like a real one, for runs without downloads.

`checkpoint=tiny:random` builds it once into the user cache: a few-layer PaliGemma + Gemma
action expert from transformers' PI0 classes, a tokenizer trained on the WidowX instructions, and
a processor_config.json with the dataset statistics, so the adapter loads it exactly as it loads
a published checkpoint. Its actions are noise, kept small by the action statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

TINY_RANDOM = "tiny:random"

IMAGE_SIDE = 224  # the real PI0's input side, so the full resize-and-pad path runs
PATCH_SIDE = 56  # 4 x 4 = 16 image tokens per camera
CHUNK_SIZE = 8
DENOISING_STEPS = 4
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<image>")
SEED = 0

# pos_rpy_gripper state: a gripper above the table, pointing down, half open
STATE_MEAN = (0.3, 0.0, 0.15, 0.0, 0.0, 0.0, 0.5)
STATE_STD = (0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 0.5)
# [dx, dy, dz, droll, dpitch, dyaw, openness]: millimetre moves, an open gripper on average
ACTIONS_MEAN = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
ACTIONS_STD = (0.005, 0.005, 0.005, 0.01, 0.01, 0.01, 0.3)


def tiny_pi0_dir() -> Path:
    """Where the tiny model lives, keyed by its recipe so a changed recipe is rebuilt."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    recipe = json.dumps([_corpus(), _processor_config(), _config_kwargs(0, 0)], sort_keys=True)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    return Path(cache_home) / "refinevla-bench" / "tiny-pi0" / f"random-{digest}"


def ensure_tiny_pi0() -> Path:
    """The cached tiny checkpoint, built first when missing (a staging folder renamed into
    place, so a killed build never leaves a folder that looks complete)."""
    folder = tiny_pi0_dir()
    if (folder / "processor_config.json").is_file():
        return folder
    staging = folder.with_name(f".{folder.name}.{os.getpid()}")
    build_tiny_pi0(staging)
    try:
        staging.replace(folder)
    except OSError:  # another process finished first: keep its copy
        if not (folder / "processor_config.json").is_file():
            raise
    return folder


def build_tiny_pi0(out: Path) -> Path:
    """Writes model, tokenizer and processor_config.json to `out` (created) and returns it."""
    import torch
    from transformers import PI0Config, PI0ForConditionalGeneration

    from refinevla_bench.train.tiny import train_tokenizer

    tokenizer = train_tokenizer(_corpus(), SPECIAL_TOKENS)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    if not isinstance(image_token, int):
        raise ValueError("the tiny tokenizer has no single <image> token")
    torch.manual_seed(SEED)
    config = PI0Config(**_config_kwargs(len(tokenizer), image_token))
    model = PI0ForConditionalGeneration(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "processor_config.json").write_text(json.dumps(_processor_config(), indent=2) + "\n")
    return out


def _corpus() -> list[str]:
    from refinevla_bench.harness.suites.widowx import WIDOWX

    return [task.instruction for task in WIDOWX.tasks]


def _config_kwargs(vocabulary: int, image_token: int) -> dict[str, Any]:
    """The action expert attends to the language model's cache: layers, key/value heads and
    head size must match between the two."""
    shared = {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1}
    return {
        "vlm_config": {
            "model_type": "paligemma",
            "text_config": {
                "model_type": "gemma",
                "hidden_size": 64,
                "intermediate_size": 128,
                "head_dim": 16,
                "vocab_size": vocabulary,
                **shared,
            },
            "vision_config": {
                "model_type": "siglip_vision_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": IMAGE_SIDE,
                "patch_size": PATCH_SIDE,
                "vision_use_head": False,
            },
            "projection_dim": 64,
            "image_token_id": image_token,
            "vocab_size": vocabulary,
        },
        "dit_config": {
            "model_type": "gemma",
            "hidden_size": 32,
            "intermediate_size": 64,
            "head_dim": 16,
            **shared,
        },
        "chunk_size": CHUNK_SIZE,
        "num_inference_steps": DENOISING_STEPS,
    }


def _processor_config() -> dict[str, Any]:
    """What PI0Processor.save_pretrained writes: statistics at the top level."""
    return {
        "processor_class": "PI0Processor",
        "chunk_size": CHUNK_SIZE,
        "max_state_dim": 32,
        "state_mean": list(STATE_MEAN),
        "state_std": list(STATE_STD),
        "actions_mean": list(ACTIONS_MEAN),
        "actions_std": list(ACTIONS_STD),
        "image_processor": {
            "image_processor_type": "PI0ImageProcessor",
            "image_seq_length": (IMAGE_SIDE // PATCH_SIDE) ** 2,
            "size": {"max_height": IMAGE_SIDE, "max_width": IMAGE_SIDE},
            "pad_size": {"height": IMAGE_SIDE, "width": IMAGE_SIDE},
            "resample": 3,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        },
    }
