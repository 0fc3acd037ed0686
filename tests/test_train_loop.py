"""Fine-tuning end to end on a tiny random PaliGemma and a synthetic reasoning-enriched dataset:
the objective, selective transfer, TensorBoard logs, checkpoints, resume and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import PreTrainedModel

from refinevla_bench.harness.datasets.derive import derive_with_columns
from refinevla_bench.harness.datasets.features import FeatureSpec, camera_feature
from refinevla_bench.harness.datasets.lerobot_writer import EpisodeData, LeRobotWriter
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.refinevla import RefinevlaPolicy
from refinevla_bench.train.action_tokens import ActionStats
from refinevla_bench.train.checkpoints import checkpoints, latest_checkpoint
from refinevla_bench.train.examples import (
    DecodedEpisode,
    EpisodeReader,
    StepSampler,
    TrainingSteps,
    WindowedShuffle,
    locate_training_data,
    open_annotated_dataset,
    split_episodes,
    training_action_stats,
)
from refinevla_bench.train.run_record import CONFIG_NAME
from refinevla_bench.train.tiny import build_tiny_base
from refinevla_bench.train.trainer import TrainConfig, run_training
from refinevla_bench.train.transfer import TransferSettings, apply_transfer
from refinevla_bench.train.vla import VLAModel

CAMERA = "observation.images.image"
HEIGHT, WIDTH = 48, 64
EPISODES = 5
STEPS = 12
PHASES = ("reach", "grasp", "lift", "place")
TASKS = (("carrot", "plate"), ("green block", "yellow block"))
TOP_K = 1
CONVENTIONS = {"rotation": "roll_pitch_yaw", "gripper": "absolute"}


def _instruction(episode: int) -> str:
    source, target = TASKS[episode % len(TASKS)]
    return f"put the {source} on the {target}"


def _phase(step: int) -> int:
    return step * len(PHASES) // STEPS


def _rationale(episode: int, step: int) -> str:
    if episode == 1 and step == 0:
        return ""  # a step the teacher left without rationale: its loss is masked
    source, target = TASKS[episode % len(TASKS)]
    return f"Subtask: {PHASES[_phase(step)]} the {source}. Next: move toward the {target}."


def _actions(episode: int) -> npt.NDArray[np.float32]:
    """One action per phase, plus a little noise: learnable from the rationale and image."""
    rng = np.random.default_rng(episode)
    per_phase = np.linspace(-0.5, 0.5, len(PHASES) * 7).reshape(len(PHASES), 7)
    rows = [per_phase[_phase(step)] + 0.0005 * rng.standard_normal(7) for step in range(STEPS)]
    return np.asarray(rows, dtype=np.float32)


def _frames(episode: int) -> npt.NDArray[np.uint8]:
    frames = np.full((STEPS, HEIGHT, WIDTH, 3), 40 * (episode % len(TASKS)), dtype=np.uint8)
    for step in range(STEPS):
        column = 4 * step
        frames[step, 10:30, column : column + 12] = (230, 120, 30)
    return frames


def _write_demonstrations(root: Path, *, record_conventions: bool = True) -> None:
    """As `collect` writes them, which records the actions' conventions in info.json."""
    recorded = {"refinevla": {"action_conventions": CONVENTIONS}} if record_conventions else {}
    writer = LeRobotWriter.create_or_resume(
        root,
        fps=5,
        robot_type="widowx",
        features={CAMERA: camera_feature(HEIGHT, WIDTH), "action": FeatureSpec("float32", (7,))},
        extra_info=recorded,
    )
    for episode in range(EPISODES):
        writer.add_episode(
            EpisodeData(
                instruction=_instruction(episode),
                frames={CAMERA: _frames(episode)},
                columns={"action": _actions(episode)},
            )
        )


def _annotate(root: Path, teacher: str) -> Path:
    """What `annotate` leaves: an annotation folder with a manifest and the merged dataset."""
    folder = root / "annotations" / teacher
    derive_with_columns(
        root,
        folder / "dataset",
        lambda episode, length: {
            "reasoning": [_rationale(episode, step) for step in range(length)],
            "reasoning.subtask": [PHASES[_phase(step)] for step in range(length)],
        },
    )
    (folder / "manifest.json").write_text(json.dumps({"teacher": teacher}), encoding="utf-8")
    return folder / "dataset"


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train-data") / "demos"
    _write_demonstrations(root)
    _annotate(root, "synthetic")
    return root


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = [_instruction(e) for e in range(EPISODES)] + [
        _rationale(e, s) for e in range(EPISODES) for s in range(STEPS)
    ]
    return build_tiny_base(tmp_path_factory.mktemp("tiny") / "paligemma", "paligemma", corpus)


def _config(data: Path, base: Path, out: Path, **changes: Any) -> TrainConfig:
    config = TrainConfig(
        data=data,
        base=str(base),
        out=out,
        transfer=TransferSettings(mode="top_k", top_k=TOP_K),
        steps=30,
        batch_size=4,
        lr=5e-3,
        bf16=False,
        eval_episodes=1,
        eval_every=10,
        eval_samples=4,
        save_every=0,
        log_every=1,
        episodes_in_memory=2,
    )
    return replace(config, **changes)


def _scalars(out: Path, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    return {event.step: event.value for event in events.Scalars(tag)}


def _stats(out: Path) -> ActionStats:
    record = json.loads((out / CONFIG_NAME).read_text(encoding="utf-8"))
    return ActionStats.from_json(record["action_stats"])


def _parameters(modules: list[torch.nn.Module]) -> list[torch.Tensor]:
    return [tensor.detach().clone() for module in modules for tensor in module.parameters()]


def _input_rows(vla: VLAModel) -> torch.Tensor:
    model = vla.model
    assert isinstance(model, PreTrainedModel)
    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding)
    return embeddings.weight.detach().clone()


def _same(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return len(first) == len(second) and all(
        torch.equal(a, b) for a, b in zip(first, second, strict=True)
    )


@pytest.fixture(scope="module")
def reasoning_run(demos: Path, tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "reasoning"
    result = run_training(_config(demos, tiny_base, out))
    assert result.step == 30 and result.final == out / "final"
    return out


@pytest.fixture(scope="module")
def action_only_run(demos: Path, tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "action-only"
    run_training(_config(demos, tiny_base, out, lambda_reasoning=0.0))
    return out


# --- data -----------------------------------------------------------------------------------


def test_data_option_accepts_the_source_the_annotation_or_the_merged_folder(demos: Path) -> None:
    merged = demos / "annotations" / "synthetic" / "dataset"
    assert locate_training_data(demos) == merged
    assert locate_training_data(merged.parent) == merged
    assert locate_training_data(merged) == merged


def test_data_option_names_the_choices_when_several_annotations_exist(tmp_path: Path) -> None:
    root = tmp_path / "demos"
    _write_demonstrations(root)
    _annotate(root, "grounded")
    _annotate(root, "openai-gpt")
    with pytest.raises(HarnessError, match="2 annotated datasets") as raised:
        locate_training_data(root)
    assert "grounded/dataset" in raised.value.problem
    assert "openai-gpt/dataset" in raised.value.problem


def test_examples_carry_frames_rationales_and_actions(demos: Path) -> None:
    dataset = open_annotated_dataset(locate_training_data(demos))
    assert dataset.has_reasoning and dataset.annotation_dir is not None
    steps = TrainingSteps(EpisodeReader(dataset, capacity=1), episodes=[1, 3])
    assert len(steps) == 2 * STEPS
    first = steps[0]
    assert first.image.shape == (HEIGHT, WIDTH, 3) and first.image.dtype == np.uint8
    assert first.rationale == "" and first.instruction == _instruction(1)
    later = steps[STEPS + 5]
    assert later.rationale == _rationale(3, 5)
    np.testing.assert_array_equal(later.action, _actions(3)[5])


class _CountingReader(EpisodeReader):
    decoded: list[int]

    def decode(self, index: int, steps: Sequence[int]) -> DecodedEpisode:
        self.decoded.append(index)
        return super().decode(index, steps)


def test_episodes_are_decoded_once_while_cached(demos: Path) -> None:
    dataset = open_annotated_dataset(locate_training_data(demos))
    reader = _CountingReader(dataset, capacity=2)
    reader.decoded = []
    steps = TrainingSteps(reader, episodes=[0, 2, 4])
    for flat in [0, 5, STEPS, 1, STEPS + 3, 2 * STEPS, 0]:
        steps[flat]
    assert reader.decoded == [0, 2, 4, 0]  # the third episode pushed the first one out


def test_split_is_by_episode_deterministic_and_stats_see_only_training_episodes(
    demos: Path,
) -> None:
    dataset = open_annotated_dataset(locate_training_data(demos))
    split = split_episodes(dataset.episode_indices, eval_episodes=2, eval_fraction=None, seed=3)
    again = split_episodes(dataset.episode_indices, eval_episodes=2, eval_fraction=None, seed=3)
    assert split == again and len(split.eval) == 2
    assert sorted(split.train + split.eval) == list(range(EPISODES))
    stats = training_action_stats(dataset, split.train)
    expected = ActionStats.from_actions(np.concatenate([_actions(e) for e in split.train]))
    np.testing.assert_allclose(stats.q99, expected.q99, rtol=1e-6)
    everything = ActionStats.from_actions(np.concatenate([_actions(e) for e in range(EPISODES)]))
    assert not np.allclose(stats.q99, everything.q99, rtol=1e-6)
    with pytest.raises(HarnessError, match="still train"):
        split_episodes(dataset.episode_indices, eval_episodes=EPISODES, eval_fraction=None, seed=0)


def test_every_process_draws_its_own_part_of_one_stream() -> None:
    order = WindowedShuffle(np.array([5, 7, 3, 6]), window=2, seed=1)
    epoch = order.epoch_order(0)
    assert sorted(epoch.tolist()) == list(range(21))
    assert not np.array_equal(epoch, order.epoch_order(1))

    def drawn(processes: int, index: int, start: int) -> Iterator[int]:
        sampler = StepSampler(
            order, 2, process_index=index, num_processes=processes, start_batch=start
        )
        return iter(sampler)

    alone = drawn(1, 0, 0)
    single = [next(alone) for _ in range(16)]
    first, second = drawn(2, 0, 0), drawn(2, 1, 0)
    interleaved = []
    for _ in range(4):
        interleaved += [next(first), next(first), next(second), next(second)]
    assert interleaved == single
    resumed = drawn(1, 0, 3)
    assert [next(resumed) for _ in range(4)] == single[6:10]


# --- transfer -------------------------------------------------------------------------------


def test_top_k_freezes_vision_and_lower_blocks(tiny_base: Path) -> None:
    vla = VLAModel.from_base(str(tiny_base), ActionStats.from_actions(_actions(0)))
    report = apply_transfer(vla, TransferSettings(mode="top_k", top_k=TOP_K))
    blocks = list(vla.decoder_layers())
    frozen = [*vla.vision_modules(), *blocks[:-TOP_K]]
    assert all(not p.requires_grad for module in frozen for p in module.parameters())
    trained = [blocks[-1], *vla.head_modules()]
    assert all(p.requires_grad for module in trained for p in module.parameters())
    unique = {id(p): p for p in vla.model.parameters()}.values()
    assert report.trainable == sum(p.numel() for p in unique if p.requires_grad)
    assert report.total == sum(p.numel() for p in unique)
    groups = {group.name: group for group in report.groups}
    assert groups["vision"].trainable == 0 and groups["decoder rest"].trainable == 0
    assert groups["decoder top"].trainable == groups["decoder top"].total > 0
    assert report.trained_blocks == (len(blocks) - 1,)


def test_lora_trains_only_adapters_and_the_head(tiny_base: Path) -> None:
    vla = VLAModel.from_base(str(tiny_base), ActionStats.from_actions(_actions(0)))
    report = apply_transfer(vla, TransferSettings(mode="lora", top_k=TOP_K, lora_rank=4))
    head = {id(p) for module in vla.head_modules() for p in module.parameters()}
    trainable = [(n, p) for n, p in vla.model.named_parameters() if p.requires_grad]
    adapters = [n for n, p in trainable if "lora_" in n]
    assert adapters and all("lora_" in n or id(p) in head for n, p in trainable)
    top_block = f".layers.{len(vla.decoder_layers()) - 1}."
    assert all(top_block in name for name in adapters)
    groups = {group.name: group for group in report.groups}
    assert groups["adapters"].trainable == groups["adapters"].total > 0
    assert groups["decoder top"].trainable == 0


def test_a_top_k_beyond_the_model_is_refused(tiny_base: Path) -> None:
    vla = VLAModel.from_base(str(tiny_base), ActionStats.from_actions(_actions(0)))
    with pytest.raises(HarnessError, match="--top-k 99"):
        apply_transfer(vla, TransferSettings(mode="top_k", top_k=99))


# --- training -------------------------------------------------------------------------------


def test_both_losses_decrease(reasoning_run: Path) -> None:
    for tag in ("loss/action", "loss/rationale"):
        values = _scalars(reasoning_run, tag)
        assert sorted(values) == list(range(1, 31))
        early = np.mean([values[step] for step in range(1, 6)])
        late = np.mean([values[step] for step in range(26, 31)])
        assert late < 0.8 * early, (tag, early, late)


def test_tensorboard_has_training_and_held_out_scalars(reasoning_run: Path) -> None:
    events = EventAccumulator(str(reasoning_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"loss/action", "loss/rationale", "loss/total", "lr", "tokens_per_s"}
    expected |= {"samples_per_s", "eval/action_token_accuracy", "eval/action_l1"}
    assert expected <= tags
    assert sorted(_scalars(reasoning_run, "eval/action_l1")) == [10, 20, 30]


def test_run_record_says_what_was_trained_on_what(reasoning_run: Path, demos: Path) -> None:
    record = json.loads((reasoning_run / CONFIG_NAME).read_text(encoding="utf-8"))
    assert record["config"]["lambda_reasoning"] == 1.0
    assert record["config"]["transfer"]["mode"] == "top_k"
    assert record["config"]["seed"] == 0
    merged = demos / "annotations" / "synthetic" / "dataset"
    assert record["dataset"]["root"] == str(merged.resolve())
    assert record["dataset"]["annotation_manifest"] == {"teacher": "synthetic"}
    assert len(record["split"]["eval"]) == 1
    assert record["transfer"]["trainable"] < record["transfer"]["total"]
    assert (reasoning_run / "final" / CONFIG_NAME).is_file()


def test_final_checkpoint_loads_and_predicts(reasoning_run: Path) -> None:
    vla = VLAModel.from_checkpoint(reasoning_run / "final")
    images = np.stack([_frames(0)[3], _frames(1)[8]])
    instructions = [_instruction(0), _instruction(1)]
    plain = vla.predict(images, instructions, reasoning=False)
    assert plain.actions.shape == (2, 7) and np.isfinite(plain.actions).all()
    stats = _stats(reasoning_run)
    assert (plain.actions >= np.array(stats.q01) - 1e-6).all()
    assert (plain.actions <= np.array(stats.q99) + 1e-6).all()
    reasoned = vla.predict(images, instructions, reasoning=True, max_rationale_tokens=8)
    assert reasoned.rationales is not None and len(reasoned.rationales) == 2
    policy = RefinevlaPolicy(str(reasoning_run / "final"), device="cpu")
    assert (policy.conventions.rotation, policy.conventions.gripper) == tuple(CONVENTIONS.values())


def test_only_the_top_blocks_and_head_change(reasoning_run: Path, tiny_base: Path) -> None:
    trained = VLAModel.from_checkpoint(reasoning_run / "final")
    base = VLAModel.from_base(str(tiny_base), _stats(reasoning_run))
    for part in (
        lambda vla: vla.vision_modules(),
        lambda vla: list(vla.decoder_layers())[:-TOP_K],
    ):
        assert _same(_parameters(part(trained)), _parameters(part(base)))
    top_trained = _parameters(list(trained.decoder_layers())[-TOP_K:])
    top_base = _parameters(list(base.decoder_layers())[-TOP_K:])
    assert all(not torch.equal(a, b) for a, b in zip(top_trained, top_base, strict=True))


def test_lambda_zero_changes_the_loss_and_nothing_else(
    reasoning_run: Path, action_only_run: Path
) -> None:
    for tag in ("loss/action", "loss/rationale", "train/action_token_accuracy"):
        assert _scalars(action_only_run, tag)[1] == _scalars(reasoning_run, tag)[1]
    assert _scalars(action_only_run, "loss/total")[1] == pytest.approx(
        _scalars(action_only_run, "loss/action")[1], rel=1e-6
    )
    assert _scalars(reasoning_run, "loss/total")[1] > _scalars(reasoning_run, "loss/action")[1]
    with_reasoning = VLAModel.from_checkpoint(reasoning_run / "final")
    without = VLAModel.from_checkpoint(action_only_run / "final")
    top = _parameters(list(with_reasoning.decoder_layers())[-TOP_K:])
    assert not _same(top, _parameters(list(without.decoder_layers())[-TOP_K:]))


def test_resume_continues_the_step_count_and_repeats_an_uninterrupted_run(
    demos: Path, tiny_base: Path, tmp_path: Path
) -> None:
    config = _config(demos, tiny_base, tmp_path / "resumed", steps=20, save_every=5)
    stopped = run_training(replace(config, stop_after=10))
    assert stopped.final is None and stopped.step == 10
    assert latest_checkpoint(config.out) == config.out / "checkpoints" / "step-000010"
    with pytest.raises(HarnessError) as refused:
        run_training(config)
    assert "--resume" in refused.value.fix
    with pytest.raises(HarnessError, match="lr"):
        run_training(replace(config, resume=True, lr=1e-4))
    resumed = run_training(replace(config, resume=True))
    assert resumed.step == 20 and resumed.final is not None
    straight = run_training(replace(config, out=tmp_path / "straight"))
    assert straight.final is not None
    resumed_losses = _scalars(config.out, "loss/action")
    assert sorted(resumed_losses) == list(range(1, 21))
    assert resumed_losses == _scalars(tmp_path / "straight", "loss/action")
    after_resume = VLAModel.from_checkpoint(resumed.final).model.state_dict()
    uninterrupted = VLAModel.from_checkpoint(straight.final).model.state_dict()
    assert after_resume.keys() == uninterrupted.keys()
    assert all(torch.equal(after_resume[key], uninterrupted[key]) for key in after_resume)
    assert [path.name for path in checkpoints(config.out)] == ["step-000015", "step-000020"]


def test_lora_checkpoint_is_a_plain_model_with_adapters_merged(
    demos: Path, tiny_base: Path, tmp_path: Path
) -> None:
    settings = TransferSettings(mode="lora", top_k=TOP_K, lora_rank=4)
    result = run_training(
        _config(demos, tiny_base, tmp_path / "lora", steps=4, transfer=settings, eval_every=0)
    )
    assert result.final is not None
    trained = VLAModel.from_checkpoint(result.final)
    assert not any("lora_" in name for name, _ in trained.model.named_parameters())
    base = VLAModel.from_base(str(tiny_base), _stats(tmp_path / "lora"))
    assert _same(
        _parameters([*trained.vision_modules(), *list(trained.decoder_layers())[:-TOP_K]]),
        _parameters([*base.vision_modules(), *list(base.decoder_layers())[:-TOP_K]]),
    )
    assert not _same(
        _parameters(list(trained.decoder_layers())[-TOP_K:]),
        _parameters(list(base.decoder_layers())[-TOP_K:]),
    )


def test_untied_embeddings_train_only_the_added_token_rows(demos: Path, tmp_path: Path) -> None:
    """Idefics3 does not tie its input embeddings to the head: the rows of the added tokens
    train (weight decay included, it must not move the other rows), every other row stays."""
    base = build_tiny_base(tmp_path / "idefics3", "idefics3", [_instruction(0), _rationale(0, 0)])
    out = tmp_path / "untied"
    config = _config(demos, base, out, steps=3, eval_every=0, weight_decay=0.1)
    result = run_training(config)
    assert result.final is not None and result.transfer.row_masked
    groups = {group.name: group for group in result.transfer.groups}
    trained = VLAModel.from_checkpoint(result.final)
    before = VLAModel.from_base(str(base), _stats(out))
    added = before.layout_token_ids()
    new_rows = _input_rows(trained)
    old_rows = _input_rows(before)
    assert groups["embeddings"].trainable == len(added) * old_rows.shape[1]
    others = torch.ones(len(old_rows), dtype=torch.bool)
    others[added] = False
    assert torch.equal(new_rows[others], old_rows[others])
    assert not torch.equal(new_rows[added], old_rows[added])


def test_rationale_loss_needs_annotated_data(demos: Path, tiny_base: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _write_demonstrations(raw)
    with pytest.raises(HarnessError) as raised:
        run_training(_config(raw, tiny_base, tmp_path / "out"))
    assert "refinevla-bench annotate" in raised.value.fix


def test_action_conventions_come_from_the_data_or_the_options(
    demos: Path, tiny_base: Path, tmp_path: Path
) -> None:
    unrecorded = tmp_path / "unrecorded"
    _write_demonstrations(unrecorded, record_conventions=False)
    action_only = {"lambda_reasoning": 0.0, "steps": 1, "eval_every": 0}
    with pytest.raises(HarnessError) as missing:
        run_training(_config(unrecorded, tiny_base, tmp_path / "a", **action_only))
    assert "--action-rotation" in missing.value.fix
    stated = {"action_rotation": "axis_angle", "action_gripper": "relative"}
    result = run_training(_config(unrecorded, tiny_base, tmp_path / "b", **action_only, **stated))
    assert result.final is not None
    info = json.loads((result.final / "refinevla.json").read_text(encoding="utf-8"))
    assert info["action_conventions"] == {"rotation": "axis_angle", "gripper": "relative"}
    with pytest.raises(HarnessError, match="records action conventions"):
        run_training(_config(demos, tiny_base, tmp_path / "c", **stated))


def test_cli_command_trains_in_bf16_with_accumulation_and_checkpointing(
    demos: Path, tiny_base: Path, tmp_path: Path
) -> None:
    """In a fresh process: Accelerate fixes the precision once per process."""
    out = tmp_path / "cli-run"
    arguments = ["--data", str(demos), "--base", str(tiny_base), "--out", str(out)]
    arguments += ["--epochs", "0.25", "--batch-size", "2", "--grad-accum", "2", "--bf16"]
    arguments += ["--gradient-checkpointing", "--top-k", "1", "--eval-episodes", "1"]
    arguments += ["--eval-every", "3", "--eval-samples", "2", "--log-every", "1"]
    script = "import typer; from refinevla_bench.train.commands import train; typer.run(train)"
    completed = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = completed.stdout
    assert "transfer top_k" in output and "trainable of" in output
    assert "plan: 3 steps of 4 samples" in output
    assert "step 3/3" in output and "action L1" in output
    assert str(out / "final") in output
    record = json.loads((out / CONFIG_NAME).read_text(encoding="utf-8"))
    assert record["config"]["bf16"] and record["config"]["gradient_checkpointing"]
    assert VLAModel.from_checkpoint(out / "final").predict(
        _frames(0)[:1], [_instruction(0)], reasoning=False
    ).actions.shape == (1, 7)
