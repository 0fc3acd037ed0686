"""ReFineVLA's whole loop at tiny scale, through the CLI on the real simulator: collect ->
annotate (grounded) -> train a tiny random VLM (lambda 1 and the lambda 0 ablation) -> evaluate
the checkpoint as the `refinevla` policy in the WidowX suite -> tables -> attention maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.support import run_cli

pytestmark = pytest.mark.sim

TRAIN = ["--base", "tiny:paligemma", "--steps", "40", "--batch-size", "8", "--lr", "3e-3"]
TRAIN += ["--warmup-ratio", "0", "--eval-episodes", "1", "--eval-every", "40", "--no-bf16"]
TRAIN += ["--log-every", "1", "--save-every", "20", "--seed", "0"]


def scalars(run: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


@pytest.fixture(scope="module")
def trained(
    demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory, tiny_cache: dict[str, str]
) -> dict[str, Path]:
    """The demonstrations annotated by the grounded teacher, and two runs: lambda 1 and 0."""
    root = tmp_path_factory.mktemp("loop")
    data = root / "demos"
    shutil.copytree(demo_dataset, data)
    annotated = run_cli(["annotate", str(data), "--teacher", "grounded"], assets=None)
    assert annotated.returncode == 0, annotated.stderr[-2000:]
    runs = {}
    for name, weight in (("reasoning", "1"), ("action_only", "0")):
        out = root / name
        trained = run_cli(
            ["train", "--data", str(data), "--out", str(out), "--lambda-reasoning", weight, *TRAIN],
            assets=None,
            extra_env=tiny_cache,
        )
        assert trained.returncode == 0, trained.stderr[-3000:]
        runs[name] = out
    return {"data": data, **runs}


def test_both_losses_fall_and_both_runs_log_both_terms(trained: dict[str, Path]) -> None:
    for name in ("reasoning", "action_only"):
        action = scalars(trained[name], "loss/action")
        rationale = scalars(trained[name], "loss/rationale")
        assert len(action) == len(rationale) == 40
        assert action[-1] < 0.7 * action[0]
        if name == "reasoning":
            assert rationale[-1] < 0.7 * rationale[0]
    reasoning = scalars(trained["reasoning"], "loss/rationale")
    action_only = scalars(trained["action_only"], "loss/rationale")
    assert reasoning[0] == pytest.approx(action_only[0])  # same start: only the loss differs
    assert action_only[-1] > reasoning[-1]  # lambda 0 never learns to reason
    stored = [
        json.loads((trained[name] / "train_config.json").read_text())
        for name in trained
        if name != "data"
    ]
    differing = {
        key for key in stored[0]["config"] if stored[0]["config"][key] != stored[1]["config"][key]
    }
    assert differing == {"lambda_reasoning", "out"}


def test_checkpoint_evaluates_in_the_suite_and_stores_its_reasoning(
    trained: dict[str, Path], widowx_assets: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "eval"
    checkpoint = trained["reasoning"] / "final"
    evaluated = run_cli(
        [
            "run",
            "--policy",
            "refinevla",
            "--policy-arg",
            f"checkpoint={checkpoint}",
            "--policy-arg",
            "reasoning=on",
            "--policy-arg",
            "max_rationale_tokens=16",
            "--tasks",
            "carrot_on_plate",
            "--episodes",
            "1",
            "--seeds",
            "0",
            "--device",
            "cpu",
            "--out",
            str(run_dir),
        ],
        assets=widowx_assets,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    (line,) = (run_dir / "episodes.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["error"] is None and record["steps"] == 60
    assert len(record["rationales"]) == 60 and all(isinstance(t, str) for t in record["rationales"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["policy"]["name"] == "refinevla"
    assert manifest["invocations"][-1]["git"] == manifest["git"]  # each invocation's commit
    table = run_cli(["tables", str(run_dir)], assets=None)
    assert table.returncode == 0 and "Put Carrot on Plate" in table.stdout


def test_attention_maps_compare_the_two_checkpoints(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "attention"
    shown = run_cli(
        [
            "attention",
            str(trained["reasoning"] / "final"),
            "--compare",
            str(trained["action_only"] / "final"),
            "--data",
            str(trained["data"]),
            "--episode",
            "0",
            "--steps",
            "0,30",
            "--out",
            str(out),
        ],
        assets=None,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    summary = json.loads((out / "attention.json").read_text())
    assert [entry["step"] for entry in summary["steps"]] == [0, 30]
    for entry in summary["steps"]:
        image = Image.open(out / entry["image"])
        assert image.size[0] == 3 * 640  # frame, lambda 1, lambda 0 side by side
        maps = [value for key, value in entry.items() if isinstance(value, dict)]
        assert len(maps) == 2
        assert all(abs(sum(map(sum, m["weights"])) - 1) < 1e-3 for m in maps)
