"""The fine-tuning loop: Accelerate (one device, DDP, DeepSpeed ZeRO-1/2), resumable checkpoints,
TensorBoard scalars, held-out evaluation, and the final checkpoint the `refinevla` policy loads.

Data order is a pure function of the seed and the position in the stream (`examples.py`), so a
checkpoint only stores how many optimizer steps were taken: resuming rebuilds the stream and
starts at that position. `accelerate save_state` keeps the model, the optimizer, the schedule,
the progress counter and every RNG, so a resumed run repeats an uninterrupted one.

Evaluation on the held-out episodes reports teacher-forced metrics (the action-token accuracy
and both losses, from `loss_terms`) and the closed-loop-free action error: `eval/action_l1` is
the mean absolute difference, over all action dimensions, between the de-tokenised actions of
`VLAModel.predict(reasoning=False)` and the recorded actions. Evaluation runs the unwrapped
model on each process's share of the samples, and the final save writes it: parameters must be
whole on every process, so FSDP and ZeRO-3 are refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from transformers import PreTrainedModel

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train.base_models import resolve_base
from refinevla_bench.train.checkpoints import (
    FINAL_DIR,
    latest_checkpoint,
    save_checkpoint,
    save_final,
)
from refinevla_bench.train.examples import (
    AnnotatedDataset,
    EpisodeReader,
    EpisodeSplit,
    StepSampler,
    TrainingSteps,
    WindowedShuffle,
    held_out_examples,
    locate_training_data,
    open_annotated_dataset,
    split_episodes,
    training_action_stats,
)
from refinevla_bench.train.objective import (
    DEFAULT_LAMBDA_REASONING,
    check_lambda_reasoning,
    total_loss,
)
from refinevla_bench.train.run_record import prepare_out, write_run_record
from refinevla_bench.train.transfer import (
    TransferReport,
    TransferSettings,
    apply_transfer,
)
from refinevla_bench.train.vla import EncodedBatch, LossTerms, TrainingExample, VLAModel
from refinevla_bench.train.vla_checkpoint import ActionConventions

TENSORBOARD_DIR = "tensorboard"
# What the metric windows add up between log lines (train) and over held-out samples (eval).
TRAIN_SUMS = (
    "action_loss",
    "action_tokens",
    "correct",
    "rationale_loss",
    "rationale_tokens",
    "total",
    "micro_batches",
    "samples",
    "tokens",
)
EVAL_SUMS = (
    "correct",
    "action_tokens",
    "action_loss",
    "rationale_loss",
    "rationale_tokens",
    "l1",
    "values",
)


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    base: str  # hub id or local folder of a transformers VLM
    out: Path
    lambda_reasoning: float = DEFAULT_LAMBDA_REASONING
    transfer: TransferSettings = field(default_factory=TransferSettings)
    steps: int | None = None  # optimizer steps; or
    epochs: float | None = None  # passes over the training split
    batch_size: int = 8  # per process and micro-batch
    grad_accum: int = 1
    lr: float = 2e-5
    warmup_ratio: float = 0.005
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0: no clipping
    bf16: bool = True
    gradient_checkpointing: bool = False
    eval_episodes: int | None = None
    eval_fraction: float | None = None
    eval_every: int = 500  # 0: no evaluation
    eval_samples: int = 64
    save_every: int = 1000  # 0: checkpoints only when stopping early
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    stop_after: int | None = None  # end this invocation after this step (a time-limited job)
    trust_remote_code: bool = False
    seed: int = 0
    split_seed: int = 0
    camera: str | None = None
    episodes_in_memory: int = 4
    n_bins: int = 256
    # How the data's actions express rotation and gripper, for datasets that do not record it
    # (`collect` records it in meta/info.json); the policy declares these to the harness.
    action_rotation: str | None = None
    action_gripper: str | None = None

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["data"] = str(self.data.resolve())
        payload["out"] = str(self.out.resolve())
        payload["transfer"] = self.transfer.to_json()
        return payload


@dataclass(frozen=True)
class TrainingPlan:
    train_episodes: int
    eval_episodes: int
    steps_per_epoch: int  # dataset steps in the training split
    global_batch: int  # batch_size x processes x grad_accum
    total_steps: int
    warmup_steps: int


@dataclass(frozen=True)
class TrainResult:
    step: int
    total_steps: int
    final: Path | None  # None when this invocation stopped early
    checkpoint: Path | None  # the latest resumable checkpoint
    transfer: TransferReport


class TrainListener(Protocol):
    """What the main process reports while training (the CLI prints it)."""

    def started(
        self, dataset: AnnotatedDataset, plan: TrainingPlan, transfer: TransferReport, step: int
    ) -> None: ...

    def logged(self, step: int, total_steps: int, metrics: Mapping[str, float]) -> None: ...

    def saved(self, path: Path) -> None: ...


class TrainingProgress:
    """The step counter, saved with every checkpoint; it also fixes the data position."""

    def __init__(self, grad_accum: int, num_processes: int) -> None:
        self.step = 0
        self.grad_accum = grad_accum
        self.num_processes = num_processes

    @property
    def micro_batches(self) -> int:
        """Micro-batches each process has consumed: where its data stream resumes."""
        return self.step * self.grad_accum

    def state_dict(self) -> dict[str, int]:
        return {
            "step": self.step,
            "micro_batches": self.micro_batches,
            "grad_accum": self.grad_accum,
            "num_processes": self.num_processes,
        }

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        if (state["grad_accum"], state["num_processes"]) != (self.grad_accum, self.num_processes):
            raise HarnessError(
                f"the checkpoint ran {state['num_processes']} process(es) x grad-accum "
                f"{state['grad_accum']}, this run {self.num_processes} x {self.grad_accum}",
                "resume with the same number of processes and --grad-accum",
            )
        self.step = int(state["step"])


def run_training(config: TrainConfig, listener: TrainListener | None = None) -> TrainResult:
    """Train (or resume) the run in `config.out`; every process of a launch calls this."""
    check_lambda_reasoning(config.lambda_reasoning)
    _check_numbers(config)
    accelerator = Accelerator(
        mixed_precision="bf16" if config.bf16 else "no",
        gradient_accumulation_steps=config.grad_accum,
    )
    dataset = open_annotated_dataset(locate_training_data(config.data), config.camera)
    _check_reasoning(dataset, config.lambda_reasoning)
    conventions = _action_conventions(dataset.root, config)
    split = split_episodes(
        dataset.episode_indices,
        eval_episodes=config.eval_episodes,
        eval_fraction=config.eval_fraction,
        seed=config.split_seed,
    )
    _check_whole_parameters(accelerator)
    resuming = prepare_out(config)
    accelerator.wait_for_everyone()  # every process decided before the main one writes there
    set_seed(config.seed)
    stats = training_action_stats(dataset, split.train)
    base = resolve_base(
        config.base, dataset, accelerator.is_main_process, accelerator.wait_for_everyone
    )
    vla = VLAModel.from_base(
        base, stats, trust_remote_code=config.trust_remote_code, n_bins=config.n_bins
    )
    vla.action_conventions = conventions
    if config.gradient_checkpointing:
        _enable_gradient_checkpointing(vla.model)
    transfer = apply_transfer(vla, config.transfer)
    reader = EpisodeReader(dataset, config.episodes_in_memory)
    steps = TrainingSteps(reader, split.train)
    plan = _plan(config, split, len(steps), accelerator.num_processes)
    trainable = [parameter for parameter in vla.model.parameters() if parameter.requires_grad]
    optimizer = _optimizer(vla.model, transfer, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup_decay(plan.warmup_steps, plan.total_steps)
    )
    _set_deepspeed_batch(accelerator, config.batch_size)
    model, optimizer = accelerator.prepare(vla.model, optimizer)
    vla.model = model
    progress = TrainingProgress(config.grad_accum, accelerator.num_processes)
    accelerator.register_for_checkpointing(scheduler, progress)
    if not resuming and accelerator.is_main_process:
        write_run_record(config, dataset, split, plan, transfer, vla.family, stats)
    checkpoint = latest_checkpoint(config.out) if resuming else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
    final = config.out / FINAL_DIR
    if progress.step >= plan.total_steps and final.is_dir():
        return TrainResult(progress.step, plan.total_steps, final, checkpoint, transfer)
    if listener is not None and accelerator.is_main_process:
        listener.started(dataset, plan, transfer, progress.step)
    order = WindowedShuffle(steps.lengths, config.episodes_in_memory, config.seed)
    sampler = StepSampler(
        order,
        config.batch_size,
        process_index=accelerator.process_index,
        num_processes=accelerator.num_processes,
        start_batch=progress.micro_batches,
    )
    loader = DataLoader(steps, batch_size=config.batch_size, sampler=sampler, collate_fn=list)
    held_out = held_out_examples(reader, split.eval, config.eval_samples)
    writer = (
        SummaryWriter(str(config.out / TENSORBOARD_DIR), purge_step=progress.step + 1)
        if accelerator.is_main_process
        else None
    )
    loop = _Loop(accelerator, vla, config, plan, progress, optimizer, scheduler, trainable)
    try:
        last_save = loop.run(iter(loader), held_out, writer, listener)
    finally:
        if writer is not None:
            writer.close()
    if progress.step < plan.total_steps:
        return TrainResult(progress.step, plan.total_steps, None, last_save, transfer)
    save_final(accelerator, vla, config.out)
    if listener is not None and accelerator.is_main_process:
        listener.saved(final)
    return TrainResult(progress.step, plan.total_steps, final, last_save, transfer)


class _Loop:
    """Optimizer steps until the plan (or --stop-after) is reached; logs, evaluates, saves."""

    def __init__(
        self,
        accelerator: Accelerator,
        vla: VLAModel,
        config: TrainConfig,
        plan: TrainingPlan,
        progress: TrainingProgress,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        trainable: Sequence[torch.nn.Parameter],
    ) -> None:
        self.accelerator = accelerator
        self.vla = vla
        self.config = config
        self.plan = plan
        self.progress = progress
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.trainable = trainable
        self.window = _MetricWindow()

    def run(
        self,
        batches: Iterator[list[TrainingExample]],
        held_out: Sequence[TrainingExample],
        writer: SummaryWriter | None,
        listener: TrainListener | None,
    ) -> Path | None:
        """Returns the latest checkpoint written, if any."""
        config = self.config
        stop = min(self.plan.total_steps, config.stop_after or self.plan.total_steps)
        saved: Path | None = None
        self.vla.model.train()
        while self.progress.step < stop:
            self._step(batches)
            step = self.progress.step
            last = step == stop
            metrics: dict[str, float] = {}
            if step % config.log_every == 0 or last:
                metrics.update(self.window.reduce(self.accelerator))
                self.window = _MetricWindow()
            evaluate_now = bool(held_out) and config.eval_every > 0
            if evaluate_now and (step % config.eval_every == 0 or step == self.plan.total_steps):
                metrics.update(evaluate(self.vla, held_out, config.batch_size, self.accelerator))
            if metrics and self.accelerator.is_main_process:
                _write_scalars(writer, step, metrics)
                if listener is not None:
                    listener.logged(step, self.plan.total_steps, metrics)
            periodic = config.save_every > 0 and step % config.save_every == 0
            if periodic or (last and step < self.plan.total_steps):
                saved = save_checkpoint(self.accelerator, config.out, step, config.keep_checkpoints)
                if listener is not None and self.accelerator.is_main_process:
                    listener.saved(saved)
        return saved

    def _step(self, batches: Iterator[list[TrainingExample]]) -> None:
        started = time.perf_counter()
        lr = float(self.scheduler.get_last_lr()[0])
        grad_norm = float("nan")
        for _ in range(self.config.grad_accum):
            examples = next(batches)
            batch = self.vla.encode(examples).to(self.accelerator.device)
            with self.accelerator.accumulate(self.vla.model):
                terms = self.vla.loss_terms(batch)
                loss = total_loss(terms, self.config.lambda_reasoning)
                self.accelerator.backward(loss)
                if self.accelerator.sync_gradients and self.config.max_grad_norm > 0:
                    norm = self.accelerator.clip_grad_norm_(
                        self.trainable, self.config.max_grad_norm
                    )
                    grad_norm = float(norm) if norm is not None else grad_norm
                self.optimizer.step()
                self.optimizer.zero_grad()
            self.window.add(batch, terms, loss)
        self.scheduler.step()
        self.progress.step += 1
        self.window.finish_step(time.perf_counter() - started, lr, grad_norm)


class _MetricWindow:
    """Sums since the last log line; reduced over processes only when logging (a collective).
    Losses and accuracy are token-weighted, so micro-batches without rationales do not pull
    the logged rationale loss toward 0."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(TRAIN_SUMS, 0.0)
        self.seconds = 0.0
        self.lr = 0.0
        self.grad_norm = float("nan")

    def add(self, batch: EncodedBatch, terms: LossTerms, total: torch.Tensor) -> None:
        mask = batch.inputs.get("attention_mask")
        tokens = int(mask.sum()) if mask is not None else batch.labels.numel()
        _accumulate(
            self.sums,
            action_loss=float(terms.action.detach()) * terms.action_tokens,
            action_tokens=terms.action_tokens,
            correct=float(terms.action_accuracy) * terms.action_tokens,
            rationale_loss=float(terms.rationale.detach()) * terms.rationale_tokens,
            rationale_tokens=terms.rationale_tokens,
            total=float(total.detach()),
            micro_batches=1,
            samples=batch.labels.shape[0],
            tokens=tokens,
        )

    def finish_step(self, seconds: float, lr: float, grad_norm: float) -> None:
        self.seconds += seconds
        self.lr = lr
        self.grad_norm = grad_norm

    def reduce(self, accelerator: Accelerator) -> dict[str, float]:
        sums = _sum_over_processes(accelerator, self.sums)
        metrics = {
            "loss/action": sums["action_loss"] / sums["action_tokens"],
            "loss/rationale": _ratio(sums["rationale_loss"], sums["rationale_tokens"]),
            "loss/total": sums["total"] / sums["micro_batches"],
            "train/action_token_accuracy": sums["correct"] / sums["action_tokens"],
            "lr": self.lr,
            "samples_per_s": sums["samples"] / self.seconds,
            "tokens_per_s": sums["tokens"] / self.seconds,
        }
        if math.isfinite(self.grad_norm):
            metrics["grad_norm"] = self.grad_norm
        if accelerator.device.type == "cuda":
            metrics["gpu_memory_gb"] = torch.cuda.max_memory_allocated(accelerator.device) / 2**30
        return metrics


def evaluate(
    vla: VLAModel, examples: Sequence[TrainingExample], batch_size: int, accelerator: Accelerator
) -> dict[str, float]:
    """Held-out metrics, each process on its share of `examples`, summed over processes."""
    share = list(examples[accelerator.process_index :: accelerator.num_processes])
    sums = dict.fromkeys(EVAL_SUMS, 0.0)  # all names, also on a process with no samples
    with _unwrapped(vla, accelerator), torch.no_grad(), accelerator.autocast():
        was_training = vla.model.training
        vla.model.eval()
        for start in range(0, len(share), batch_size):
            chunk = share[start : start + batch_size]
            terms = vla.loss_terms(vla.encode(chunk).to(accelerator.device))
            prediction = vla.predict(
                np.stack([example.image for example in chunk]),
                [example.instruction for example in chunk],
                reasoning=False,
            )
            truth = np.stack([example.action for example in chunk])
            _accumulate(
                sums,
                correct=float(terms.action_accuracy) * terms.action_tokens,
                action_tokens=terms.action_tokens,
                action_loss=float(terms.action) * terms.action_tokens,
                rationale_loss=float(terms.rationale) * terms.rationale_tokens,
                rationale_tokens=terms.rationale_tokens,
                l1=float(np.abs(prediction.actions - truth).sum()),
                values=truth.size,
            )
        vla.model.train(was_training)
    totals = _sum_over_processes(accelerator, sums)
    return {
        "eval/action_token_accuracy": totals["correct"] / totals["action_tokens"],
        "eval/loss_action": totals["action_loss"] / totals["action_tokens"],
        "eval/loss_rationale": _ratio(totals["rationale_loss"], totals["rationale_tokens"]),
        "eval/action_l1": totals["l1"] / totals["values"],
    }


def _accumulate(sums: dict[str, float], **values: float) -> None:
    for name, value in values.items():
        sums[name] += value


def _sum_over_processes(accelerator: Accelerator, sums: Mapping[str, float]) -> dict[str, float]:
    """A collective: every process calls it with the same names."""
    names = sorted(sums)
    local = torch.tensor([sums[name] for name in names], dtype=torch.float64)
    reduced = accelerator.reduce(local.to(accelerator.device), reduction="sum")
    return dict(zip(names, reduced.tolist(), strict=True))


def _ratio(numerator: float, denominator: float) -> float:
    """0 when nothing was counted (no rationale tokens), as the loss itself reports then."""
    return numerator / denominator if denominator else 0.0


@contextmanager
def _unwrapped(vla: VLAModel, accelerator: Accelerator) -> Iterator[None]:
    """`vla.model` as the plain model (not the DDP wrapper) for generation and saving."""
    wrapped = vla.model
    vla.model = accelerator.unwrap_model(wrapped)
    try:
        yield
    finally:
        vla.model = wrapped


def _optimizer(
    model: torch.nn.Module, transfer: TransferReport, config: TrainConfig
) -> torch.optim.AdamW:
    """AdamW; row-masked parameters without weight decay (it would move their frozen rows)."""
    decayed: list[torch.nn.Parameter] = []
    undecayed: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (undecayed if name in transfer.row_masked else decayed).append(parameter)
    groups: list[dict[str, Any]] = [{"params": decayed, "weight_decay": config.weight_decay}]
    if undecayed:
        groups.append({"params": undecayed, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=config.lr)


def linear_warmup_decay(warmup: int, total: int) -> Callable[[int], float]:
    """The learning-rate factor: from 0 up to 1 over `warmup` steps, then down to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    if not isinstance(model, PreTrainedModel) or not model.supports_gradient_checkpointing:
        raise HarnessError(
            f"{type(model).__name__} does not support gradient checkpointing",
            "train without --gradient-checkpointing",
        )
    # Non-reentrant: the frozen embeddings give inputs without grad, which the reentrant
    # variant would silently cut the gradient at. transformers 5 renamed the method.
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(  # type: ignore[no-untyped-call]  # untyped in 4.x
            gradient_checkpointing_kwargs=kwargs
        )


def _write_scalars(writer: SummaryWriter | None, step: int, metrics: Mapping[str, float]) -> None:
    if writer is None:
        return
    for name, value in metrics.items():
        writer.add_scalar(name, value, step)
    writer.flush()


def _check_numbers(config: TrainConfig) -> None:
    if (config.steps is None) == (config.epochs is None):
        raise HarnessError(
            "say how long to train with exactly one of --steps and --epochs",
            "pass e.g. --steps 1000 or --epochs 1",
        )
    positive = {
        "--steps": config.steps if config.steps is not None else 1,
        "--epochs": config.epochs if config.epochs is not None else 1,
        "--batch-size": config.batch_size,
        "--grad-accum": config.grad_accum,
        "--lr": config.lr,
        "--log-every": config.log_every,
        "--episodes-in-memory": config.episodes_in_memory,
    }
    for option, value in positive.items():
        if not value > 0:
            raise HarnessError(f"{option} {value} is not above 0", f"pass a positive {option}")
    if not 0 <= config.warmup_ratio < 1:
        raise HarnessError(
            f"--warmup-ratio {config.warmup_ratio} is outside [0, 1)", "use e.g. 0.005"
        )
    if config.stop_after is not None and config.stop_after < 1:
        raise HarnessError(f"--stop-after {config.stop_after} < 1", "pass a step number >= 1")


def _check_reasoning(dataset: AnnotatedDataset, lambda_reasoning: float) -> None:
    if lambda_reasoning > 0 and not dataset.has_reasoning:
        raise HarnessError(
            f"{dataset.root} has no per-step 'reasoning' column for the rationale loss "
            f"(--lambda-reasoning {lambda_reasoning})",
            f"annotate it first (refinevla-bench annotate {dataset.root}) and pass the "
            "annotated dataset, or train on actions alone with --lambda-reasoning 0",
        )


def _action_conventions(root: Path, config: TrainConfig) -> ActionConventions:
    """What the dataset records, or what the options state where it records nothing; options
    that contradict the record are refused rather than trusted."""
    stated = None
    if config.action_rotation is not None or config.action_gripper is not None:
        try:
            stated = ActionConventions.from_json(
                {"rotation": config.action_rotation, "gripper": config.action_gripper}
            )
        except ValueError as error:
            raise HarnessError(
                f"unusable --action-rotation/--action-gripper: {error}",
                "pass both: --action-rotation axis_angle|roll_pitch_yaw|euler_xyz and "
                "--action-gripper absolute|relative",
            ) from error
    try:
        recorded = ActionConventions.from_dataset(root)
    except HarnessError as error:
        if stated is not None:
            return stated
        raise HarnessError(
            error.problem,
            "pass --action-rotation and --action-gripper as the dataset's actions are",
        ) from error
    if stated is not None and stated != recorded:
        raise HarnessError(
            f"{root} records action conventions {recorded.to_json()}, the options say "
            f"{stated.to_json()}",
            "drop --action-rotation/--action-gripper: the dataset says how its actions are",
        )
    return recorded


def _check_whole_parameters(accelerator: Accelerator) -> None:
    """Evaluation generates with the plain model and the final save writes it: both need every
    parameter whole on each process, which FSDP and ZeRO-3 do not keep."""
    plugin = accelerator.state.deepspeed_plugin
    if accelerator.distributed_type == DistributedType.FSDP or (
        accelerator.distributed_type == DistributedType.DEEPSPEED
        and plugin is not None
        and plugin.zero_stage == 3
    ):
        raise HarnessError(
            "training with sharded parameters (FSDP, DeepSpeed ZeRO-3) is not supported",
            "launch with DDP (accelerate launch --multi_gpu) or DeepSpeed ZeRO-1/2; freeze more "
            "(--transfer lora, a smaller --top-k) or use --gradient-checkpointing to fit",
        )


def _set_deepspeed_batch(accelerator: Accelerator, batch_size: int) -> None:
    """DeepSpeed reads the micro-batch size from its config, which usually says "auto"; with no
    prepared DataLoader Accelerate cannot fill it in, so it is set here."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = batch_size


def _plan(
    config: TrainConfig, split: EpisodeSplit, steps_per_epoch: int, processes: int
) -> TrainingPlan:
    global_batch = config.batch_size * processes * config.grad_accum
    if config.steps is not None:
        total = config.steps
    else:
        assert config.epochs is not None
        total = max(1, math.ceil(config.epochs * steps_per_epoch / global_batch))
    return TrainingPlan(
        train_episodes=len(split.train),
        eval_episodes=len(split.eval),
        steps_per_epoch=steps_per_epoch,
        global_batch=global_batch,
        total_steps=total,
        warmup_steps=math.ceil(config.warmup_ratio * total),
    )
