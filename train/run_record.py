"""The record a training run writes first (options, data, split, plan, versions) and the check
that lets `--resume` continue only the run it describes."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from refinevla_bench.harness.datasets.atomic_files import write_json_atomically
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.manifest import git_state, package_versions, redact_command

if TYPE_CHECKING:
    from refinevla_bench.train.action_tokens import ActionStats
    from refinevla_bench.train.examples import AnnotatedDataset, EpisodeSplit
    from refinevla_bench.train.trainer import TrainConfig, TrainingPlan
    from refinevla_bench.train.transfer import TransferReport

CONFIG_NAME = "train_config.json"
# Options that may change when resuming: they do not change what the run computes.
RESUMABLE_OPTIONS = frozenset(
    {
        "out",
        "resume",
        "stop_after",
        "eval_every",
        "eval_samples",
        "save_every",
        "keep_checkpoints",
        "log_every",
        "gradient_checkpointing",
    }
)
RECORDED_PACKAGES = ("torch", "transformers", "accelerate", "peft", "tokenizers")


def prepare_out(config: TrainConfig) -> bool:
    """Whether this invocation resumes the run in `config.out`; refuses to mix runs."""
    record = config.out / CONFIG_NAME
    if not record.is_file():
        if config.out.is_dir() and any(config.out.iterdir()):
            raise HarnessError(
                f"{config.out} has files but no {CONFIG_NAME}: it is not a training run",
                "choose a new or empty --out folder",
            )
        return False
    if not config.resume:
        raise HarnessError(
            f"{config.out} already holds a training run",
            "pass --resume to continue it, or choose a new --out folder",
        )
    stored = json.loads(record.read_text(encoding="utf-8"))["config"]
    current = config.to_json()
    changed = sorted(
        key
        for key in {*stored, *current}
        if key not in RESUMABLE_OPTIONS and stored.get(key) != current.get(key)
    )
    if changed:
        raise HarnessError(
            f"{config.out} was trained with other {', '.join(changed)} "
            f"({', '.join(f'{key}={stored.get(key)!r}' for key in changed)})",
            "resume with the options the run started with, or train into a new --out folder",
        )
    return True


def write_run_record(
    config: TrainConfig,
    dataset: AnnotatedDataset,
    split: EpisodeSplit,
    plan: TrainingPlan,
    transfer: TransferReport,
    family: str,
    stats: ActionStats,
) -> None:
    config.out.mkdir(parents=True, exist_ok=True)
    record = {
        "config": config.to_json(),
        "family": family,
        "dataset": {
            "root": str(dataset.root.resolve()),
            "camera": dataset.camera,
            "has_reasoning": dataset.has_reasoning,
            "annotation_dir": str(dataset.annotation_dir) if dataset.annotation_dir else None,
            "annotation_manifest": dataset.annotation_manifest(),
        },
        "split": {"train": list(split.train), "eval": list(split.eval)},
        "action_stats": stats.to_json(),
        "plan": asdict(plan),
        "transfer": transfer.to_json(),
        "versions": package_versions(RECORDED_PACKAGES),
        "git": git_state(config.out),
        "command": redact_command(sys.argv),
    }
    write_json_atomically(config.out / CONFIG_NAME, record)
