"""`refinevla-bench train`: reasoning-aware fine-tuning of a pretrained VLA (ReFineVLA step two).

    refinevla-bench train --data D --base MODEL --out RUN [--lambda-reasoning 1.0]
    accelerate launch --config_file cfg.yaml -m refinevla_bench train ...   (several GPUs)

RUN holds train_config.json, tensorboard/, checkpoints/step-XXXXXX (resume with --resume) and
final/, the checkpoint the `refinevla` policy loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from refinevla_bench.harness.choices import one_of
from refinevla_bench.train.objective import DEFAULT_LAMBDA_REASONING

if TYPE_CHECKING:  # torch, transformers and peft load only when `train` runs
    from refinevla_bench.train.examples import AnnotatedDataset
    from refinevla_bench.train.trainer import TrainingPlan
    from refinevla_bench.train.transfer import TransferReport

out_console = Console(highlight=False)


class _ConsoleReport:
    """Prints what the main process reports, one line per event."""

    def started(
        self, dataset: AnnotatedDataset, plan: TrainingPlan, transfer: TransferReport, step: int
    ) -> None:
        source = f" (annotations: {dataset.annotation_dir})" if dataset.annotation_dir else ""
        out_console.print(f"data: {dataset.root}{source}")
        out_console.print(
            f"episodes: {plan.train_episodes} train ({plan.steps_per_epoch} steps), "
            f"{plan.eval_episodes} held out"
        )
        for line in transfer.lines():
            out_console.print(line)
        resumed = f", resuming at step {step}" if step else ""
        out_console.print(
            f"plan: {plan.total_steps} steps of {plan.global_batch} samples, "
            f"{plan.warmup_steps} warmup{resumed}"
        )

    def logged(self, step: int, total_steps: int, metrics: Mapping[str, float]) -> None:
        parts = [f"step {step}/{total_steps}"]
        if "loss/total" in metrics:
            parts.append(
                f"loss {metrics['loss/total']:.4f} (action {metrics['loss/action']:.4f}, "
                f"rationale {metrics['loss/rationale']:.4f})"
            )
            parts.append(f"lr {metrics['lr']:.2e}")
            parts.append(f"{metrics['samples_per_s']:.1f} samples/s")
        if "eval/action_l1" in metrics:
            parts.append(
                f"eval: action tokens {100 * metrics['eval/action_token_accuracy']:.1f}% right, "
                f"action L1 {metrics['eval/action_l1']:.4f}"
            )
        out_console.print("  ".join(parts))

    def saved(self, path: Path) -> None:
        out_console.print(f"saved {path}")


def train(
    data: Annotated[
        Path,
        typer.Option(
            help="Annotated dataset: D/annotations/<teacher>/dataset, or D with one annotation."
        ),
    ],
    base: Annotated[
        str,
        typer.Option(
            help="Pretrained VLM: hub id or local folder (transformers format: PaliGemma(2), "
            "SmolVLM/Idefics3, Qwen2.5-VL; OpenVLA and SpatialVLA with --trust-remote-code); "
            "tiny:paligemma (or tiny:idefics3, tiny:qwen2_5_vl): a tiny random model for smoke "
            "runs."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Run folder: config, TensorBoard, checkpoints, final/.")
    ],
    lambda_reasoning: Annotated[
        float, typer.Option(help="Weight of the rationale loss; 0 = action-only ablation.")
    ] = DEFAULT_LAMBDA_REASONING,
    transfer: Annotated[
        str, typer.Option(help="What trains: top_k (top blocks + head), lora, full.")
    ] = "top_k",
    top_k: Annotated[int, typer.Option(help="Top decoder blocks trained (or adapted).")] = 4,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank (--transfer lora).")] = 32,
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 32,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.0,
    lora_scope: Annotated[
        str, typer.Option(help="Blocks that get adapters: top_k or all.")
    ] = "top_k",
    lora_targets: Annotated[
        str | None,
        typer.Option(help="Comma-separated linear layer names, e.g. q_proj,v_proj (default all)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps to train.")] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Or: passes over the training split.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Samples per process and micro-batch.")] = 8,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 2e-5,
    warmup_ratio: Annotated[float, typer.Option(help="Share of steps warming up.")] = 0.005,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.0,
    max_grad_norm: Annotated[float, typer.Option(help="Gradient clipping; 0: none.")] = 1.0,
    bf16: Annotated[bool, typer.Option(help="bf16 mixed precision.")] = True,
    gradient_checkpointing: Annotated[
        bool, typer.Option(help="Recompute activations in backward to save memory.")
    ] = False,
    eval_episodes: Annotated[
        int | None, typer.Option(help="Episodes held out for evaluation.")
    ] = None,
    eval_fraction: Annotated[
        float | None, typer.Option(help="Or: share of episodes held out (default 0.05).")
    ] = None,
    eval_every: Annotated[int, typer.Option(help="Steps between evaluations; 0: none.")] = 500,
    eval_samples: Annotated[int, typer.Option(help="Held-out steps evaluated.")] = 64,
    save_every: Annotated[int, typer.Option(help="Steps between checkpoints; 0: none.")] = 1000,
    keep_checkpoints: Annotated[int, typer.Option(help="Checkpoints kept.")] = 2,
    log_every: Annotated[int, typer.Option(help="Steps between log lines.")] = 10,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    stop_after: Annotated[
        int | None, typer.Option(help="End this invocation after this step (resume later).")
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow a --base that runs its own code (review it first).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, data order, dropout.")] = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the held-out episode choice.")] = 0,
    camera: Annotated[
        str | None, typer.Option(help="Camera feature (default: the dataset's first).")
    ] = None,
    episodes_in_memory: Annotated[
        int, typer.Option(help="Decoded episodes kept, and mixed into each batch.")
    ] = 4,
    n_bins: Annotated[int, typer.Option(help="Action token bins per dimension.")] = 256,
    action_rotation: Annotated[
        str | None,
        typer.Option(
            help="Rotation of the data's actions (axis_angle|roll_pitch_yaw|euler_xyz), where "
            "the dataset does not record it."
        ),
    ] = None,
    action_gripper: Annotated[
        str | None,
        typer.Option(help="Gripper of the data's actions (absolute|relative), likewise."),
    ] = None,
) -> None:
    """Fine-tune a VLA on [rationale ; action] tokens: action CE + lambda x rationale CE."""
    from accelerate import PartialState

    from refinevla_bench.train.trainer import TrainConfig, run_training
    from refinevla_bench.train.transfer import LORA_SCOPES, TRANSFER_MODES, TransferSettings

    settings = TransferSettings(
        mode=one_of(transfer, TRANSFER_MODES, "--transfer"),
        top_k=top_k,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_scope=one_of(lora_scope, LORA_SCOPES, "--lora-scope"),
        lora_targets=tuple(
            name.strip() for name in (lora_targets or "").split(",") if name.strip()
        ),
    )
    config = TrainConfig(
        data=data,
        base=base,
        out=out,
        lambda_reasoning=lambda_reasoning,
        transfer=settings,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        bf16=bf16,
        gradient_checkpointing=gradient_checkpointing,
        eval_episodes=eval_episodes,
        eval_fraction=eval_fraction,
        eval_every=eval_every,
        eval_samples=eval_samples,
        save_every=save_every,
        keep_checkpoints=keep_checkpoints,
        log_every=log_every,
        resume=resume,
        stop_after=stop_after,
        trust_remote_code=trust_remote_code,
        seed=seed,
        split_seed=split_seed,
        camera=camera,
        episodes_in_memory=episodes_in_memory,
        n_bins=n_bins,
        action_rotation=action_rotation,
        action_gripper=action_gripper,
    )
    result = run_training(config, _ConsoleReport())
    if not PartialState().is_main_process:
        return
    if result.final is None:
        out_console.print(
            f"stopped at step {result.step}/{result.total_steps}; continue with the same "
            "command and --resume"
        )
    else:
        out_console.print(
            f"done: {result.step} steps; checkpoint for the refinevla policy: {result.final}"
        )
