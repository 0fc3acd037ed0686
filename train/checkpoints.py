"""Where a training run keeps its checkpoints, and how they are written so a kill never leaves a
half-written one looking complete."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from refinevla_bench.train.run_record import CONFIG_NAME
from refinevla_bench.train.transfer import merge_adapters

if TYPE_CHECKING:
    from accelerate import Accelerator

    from refinevla_bench.train.vla import VLAModel

CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
CHECKPOINT_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / CHECKPOINTS_DIR / f"step-{step:06d}"


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a partial one never carries the final name)."""
    folder = out / CHECKPOINTS_DIR
    steps = [
        (int(match.group(1)), path)
        for path in (folder.iterdir() if folder.is_dir() else [])
        if (match := CHECKPOINT_NAME.match(path.name)) and path.is_dir()
    ]
    return [path for _, path in sorted(steps)]


def latest_checkpoint(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def save_checkpoint(accelerator: Accelerator, out: Path, step: int, keep: int) -> Path:
    """`save_state` into a staging folder renamed into place: a kill mid-save leaves the previous
    checkpoint as the latest. Older checkpoints beyond `keep` are removed."""
    final = checkpoint_dir(out, step)
    staging = final.with_name(f".{final.name}.partial")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        for old in checkpoints(out)[: -max(keep, 1)]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def save_final(accelerator: Accelerator, vla: VLAModel, out: Path) -> None:
    """The plain model (adapters merged) with processor and action statistics, for the policy."""
    accelerator.wait_for_everyone()
    final = out / FINAL_DIR
    staging = final.with_name(f".{final.name}.partial")
    vla.model = accelerator.unwrap_model(vla.model, keep_fp32_wrapper=False)
    merge_adapters(vla.model)
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        vla.save(staging)
        shutil.copy2(out / CONFIG_NAME, staging / CONFIG_NAME)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    accelerator.wait_for_everyone()
