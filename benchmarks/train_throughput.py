"""Training-step throughput and peak memory of the ReFineVLA objective, random weights.

Presets:
  tiny           the CI model (train/tiny.py), on the CPU
  paligemma2-3b  PaliGemma2-3B's shapes (SigLIP So400m/14 at 224 px, Gemma2-2B: 26 blocks of
                 width 2304, vocabulary 257,216), meant for a GPU in bf16

One step = the trainer's inner step: encode a batch of [prompt ; rationale ; actions],
`loss_terms`, action + lambda x rationale, backward, AdamW step, under selective transfer
(vision tower and lower blocks frozen, top-k blocks and head trained). The baseline in the same
run is lambda = 0 on identical batches (the action-only ablation): the ratio says what the
rationale tokens cost. Model FLOPs per token are approximated as 2 N (forward through all N
parameters) + 4 N_trainable (backward through the trained blocks and head only: nothing below
them needs gradients); MFU divides that by the GPU's dense bf16 peak (H100/H200: 989 TFLOP/s)
and is reported only on CUDA.

    python -m benchmarks.train_throughput --preset tiny
    python -m benchmarks.train_throughput --preset paligemma2-3b --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from refinevla_bench.train.action_tokens import ActionStats
from refinevla_bench.train.objective import total_loss
from refinevla_bench.train.tiny import build_tiny_base
from refinevla_bench.train.transfer import TransferSettings, apply_transfer
from refinevla_bench.train.vla import TrainingExample, VLAModel

RESULTS = Path(__file__).parent / "results"
GPU_PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
RATIONALE = (
    "Observation: The gripper is open above the table; the carrot lies 12 cm to its left. "
    "Situation: Nothing is held yet; the carrot must go onto the plate. "
    "Spatial: The carrot is to the left of and closer to the robot than the plate. "
    "Plan: 1. reach the carrot 2. grasp it 3. lift it 4. carry it 5. place it on the plate. "
    "Next: Move the open gripper 12 cm left and 8 cm down."
)


def paligemma2_3b_base(out: Path) -> Path:
    """A folder like a PaliGemma2-3B checkpoint (random weights; a local tokenizer whose ids
    index the first rows of the full 257,216-row vocabulary)."""
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    build_tiny_base(out, "paligemma", image_size=224)
    tiny: Any = PaliGemmaConfig.from_pretrained(out)
    config = PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "vision_use_head": False,
        },
        text_config={
            "model_type": "gemma2",
            "hidden_size": 2304,
            "intermediate_size": 9216,
            "num_hidden_layers": 26,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "head_dim": 256,
            "vocab_size": 257216,
            "pad_token_id": tiny.text_config.pad_token_id,
        },
        image_token_index=tiny.image_token_index,
        vocab_size=257216,
        projection_dim=2304,
        hidden_size=2304,
    )
    with torch.device("meta"):
        shapes = PaliGemmaForConditionalGeneration(config)
    parameters = sum(parameter.numel() for parameter in shapes.parameters())
    if not 2.8e9 < parameters < 3.1e9:
        raise RuntimeError(f"the 3B preset has {parameters:,} parameters")
    model: Any = PaliGemmaForConditionalGeneration(config)
    model.to(torch.bfloat16).save_pretrained(out)
    return out


def batches(rng: np.random.Generator, size: int, count: int) -> list[list[TrainingExample]]:
    return [
        [
            TrainingExample(
                image=rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
                instruction="put carrot on plate",
                rationale=RATIONALE,
                action=rng.normal(0, 0.02, 7).astype(np.float32),
            )
            for _ in range(size)
        ]
        for _ in range(count)
    ]


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: kilobytes


def measure(
    vla: VLAModel, data: list[list[TrainingExample]], lambda_reasoning: float, warmup: int
) -> dict[str, Any]:
    device = next(vla.model.parameters()).device
    trainable = [parameter for parameter in vla.model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    tokens = samples = 0
    started = 0.0
    for index, examples in enumerate(data):
        if index == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started, tokens, samples = time.perf_counter(), 0, 0
        batch = vla.encode(examples).to(device)
        terms = vla.loss_terms(batch)
        loss: Any = total_loss(terms, lambda_reasoning)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch.inputs["attention_mask"].sum())
        samples += len(examples)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return {
        "samples_per_s": samples / seconds,
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "tokens_per_sample": tokens / samples,
    }


def mfu(tokens_per_s: float, parameters: int, trainable: int, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((flops for key, flops in GPU_PEAK_BF16_FLOPS.items() if key in name), None)
    return None if peak is None else (2 * parameters + 4 * trainable) * tokens_per_s / peak


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=("tiny", "paligemma2-3b"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=4)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    rng = np.random.default_rng(0)
    data = batches(rng, args.batch_size, args.warmup + args.steps)
    stats = ActionStats.from_actions(rng.normal(0, 0.02, (1000, 7)))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / args.preset
        if args.preset == "tiny":
            build_tiny_base(base)
        else:
            paligemma2_3b_base(base)
        for label, lambda_reasoning in (("action_only", 0.0), ("refinevla", 1.0)):
            vla = VLAModel.from_base(str(base), stats, dtype=dtype)
            report = apply_transfer(vla, TransferSettings(mode="top_k", top_k=args.top_k))
            vla.model.to(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            measured = measure(vla, data, lambda_reasoning, args.warmup)
            measured["peak_memory_gb"] = peak_memory_gb(device)
            measured["mfu"] = mfu(measured["tokens_per_s"], report.total, report.trainable, device)
            measured["trainable_parameters"] = report.trainable
            measured["parameters"] = report.total
            results[label] = measured
            del vla
    ratio = results["refinevla"]["samples_per_s"] / results["action_only"]["samples_per_s"]
    payload = {
        "command": "python -m benchmarks.train_throughput " + " ".join(sys.argv[1:]),
        "preset": args.preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_cores": os.cpu_count(),
        "dtype": dtype_name,
        "batch_size": args.batch_size,
        "steps_timed": args.steps,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": results,
        "refinevla_vs_action_only_samples_per_s": ratio,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = f"train_throughput-{args.preset}-{device.type}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
