"""`refinevla-bench attention`: heatmaps of the action tokens' attention over the image, on
frames of a recorded episode, side by side for two checkpoints (e.g. lambda 0 vs lambda 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console

from refinevla_bench.harness.choices import one_of
from refinevla_bench.harness.datasets.open import open_dataset
from refinevla_bench.harness.errors import HarnessError

if TYPE_CHECKING:
    from refinevla_bench.train.attention import LayerChoice

out_console = Console(highlight=False)


def _layer_choice(text: str) -> LayerChoice:
    from refinevla_bench.train.attention import LAYER_CHOICES

    return one_of(text, LAYER_CHOICES, "--layers")


def _steps(text: str | None, length: int) -> list[int]:
    if text is None:  # four frames spread over the episode
        return sorted({round(fraction * (length - 1)) for fraction in (0.0, 0.33, 0.66, 1.0)})
    try:
        steps = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as error:
        raise HarnessError(
            f"--steps '{text}' is not a list of integers", "e.g. --steps 0,20"
        ) from error
    outside = [step for step in steps if not 0 <= step < length]
    if outside or not steps:
        raise HarnessError(
            f"--steps {text} outside the episode's {length} steps", f"use steps 0..{length - 1}"
        )
    return steps


def _label(checkpoint: Path) -> str:
    return checkpoint.name if checkpoint.name not in ("final", "") else checkpoint.parent.name


def attention(
    checkpoint: Annotated[Path, typer.Argument(help="A `refinevla-bench train` checkpoint.")],
    data: Annotated[Path, typer.Option(help="Dataset holding the episode (LeRobot or RLDS).")],
    episode: Annotated[int, typer.Option(min=0, help="Episode index in the dataset.")] = 0,
    steps: Annotated[
        str | None, typer.Option(help="Comma-separated steps (default: 4 spread over it).")
    ] = None,
    compare: Annotated[
        Path | None, typer.Option(help="A second checkpoint shown beside the first.")
    ] = None,
    layers: Annotated[str, typer.Option(help="Average over all layers, or the last.")] = "all",
    out: Annotated[Path, typer.Option(help="Folder for the PNGs and attention.json.")] = Path(
        "attention"
    ),
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow checkpoints whose model code ships with them.")
    ] = False,
) -> None:
    """Action-token attention over image patches, overlaid on the episode's frames (PNG)."""
    from refinevla_bench.train.attention import action_attention, overlay, side_by_side
    from refinevla_bench.train.vla import VLAModel  # the model stack loads only when used

    layer_choice = _layer_choice(layers)
    source = open_dataset(data)
    if episode >= len(source):
        raise HarnessError(
            f"the dataset has {len(source)} episodes, no episode {episode}",
            f"use --episode 0..{len(source) - 1}",
        )
    view = source.episode(episode)
    chosen = _steps(steps, view.length)
    checkpoints = [checkpoint, *([compare] if compare else [])]
    models = [
        (_label(path), VLAModel.from_checkpoint(path, trust_remote_code=trust_remote_code))
        for path in checkpoints
    ]
    frames = view.frames(chosen)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {
        "dataset": str(data.resolve()),
        "episode": episode,
        "instruction": view.instruction,
        "layers": layer_choice,
        "checkpoints": [str(path.resolve()) for path in checkpoints],
        "steps": [],
    }
    rows = []
    for step, frame in zip(chosen, frames, strict=True):
        action = np.asarray(view.actions[step], dtype=np.float32)
        panels = [(f"step {step}", frame)]
        entry: dict[str, object] = {"step": step}
        for label, vla in models:
            attention_map = action_attention(vla, frame, view.instruction, action, layer_choice)
            panels.append(
                (f"{label} (entropy {attention_map.entropy:.2f})", overlay(frame, attention_map))
            )
            entry[label] = {
                "entropy": round(attention_map.entropy, 4),
                "peak_patch": attention_map.peak,
                "grid": list(attention_map.weights.shape),
                "weights": np.round(attention_map.weights, 6).tolist(),
            }
        path = out / f"episode_{episode:06d}-step_{step:04d}.png"
        side_by_side(panels).save(path)
        entry["image"] = path.name
        rows.append(entry)
    summary["steps"] = rows
    (out / "attention.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    out_console.print(f"attention: {len(rows)} image(s) in {out}", markup=False)
