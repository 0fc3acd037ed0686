"""Checkpoints that ship their own model code, end to end and offline.

Tiny OpenVLA and SpatialVLA stand-ins (`tests/remote_code_models/`, the published interfaces
written from scratch) are saved like hub checkpoints: config.json with `auto_map`, their
Python files, weights, tokenizer and image processor. VLAModel must refuse them without
trust_remote_code, and with it load them through transformers' remote-code loader and train,
act and round-trip them like the families transformers implements itself.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoConfig, PreTrainedTokenizerFast, SiglipImageProcessorPil
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train.attention import action_attention
from refinevla_bench.train.tiny import DEFAULT_CORPUS, train_tokenizer
from refinevla_bench.train.token_layout import IGNORED
from refinevla_bench.train.vla import EncodedBatch, TrainingExample, VLAModel
from refinevla_bench.train.vla_checkpoint import ActionConventions
from tests.test_train_model import (
    ACTION_DIM,
    INSTRUCTIONS,
    STATS,
    backward,
    break_ties,
    images_of,
    make_examples,
)

MODEL_CODE = Path(__file__).parent / "remote_code_models"
IMAGE_SIDE = 32
PATCH_SIZE = 8
PATCHES = (IMAGE_SIDE // PATCH_SIZE) ** 2
SPATIAL_TOKENS = tuple(f"<spatial_{index}>" for index in range(8))
PROMPT_WORDS = "In: What action should the robot take to ?\nOut:"
# SpatialVLA's processor_config.json records cameras by dataset; "default" is the one used.
CAMERAS = {
    "default": {"intrinsic": [[600, 0, 320], [0, 600, 240], [0, 0, 1]], "width": 640, "height": 480}
}


@dataclass(frozen=True)
class RemoteFamily:
    name: str
    special_tokens: tuple[str, ...]  # padding, eos, bos, unknown, then the family's own
    added_tokens: tuple[str, ...]  # appended after training: the last vocabulary ids
    code_files: tuple[str, ...]
    model_key: str  # the auto_map key naming the model class
    model_class: str
    config: Callable[[PreTrainedTokenizerFast], dict[str, Any]]
    write_processors: Callable[[Path], None]
    inserted_patches: int  # image embeddings the forward splices in after BOS
    token_inputs: tuple[str, ...]  # per-token model inputs
    vision_inputs: dict[str, tuple[int, ...]]  # per-row shapes


def _text_config(tokenizer: PreTrainedTokenizerFast, vocabulary: int) -> dict[str, Any]:
    return {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "vocab_size": vocabulary,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _openvla_config(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """As published: AutoModelForVision2Seq (gone from transformers 5), a vocabulary padded to
    a multiple of 64, the transformers version its code was written for."""
    padded = -(-len(tokenizer) // 64) * 64
    return {
        "model_type": "openvla",
        "auto_map": {
            "AutoConfig": "configuration_prismatic.OpenVLAConfig",
            "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction",
        },
        "image_sizes": [IMAGE_SIDE, IMAGE_SIDE],
        "patch_size": PATCH_SIZE,
        "vision_width": 16,
        "text_config": {"model_type": "llama", **_text_config(tokenizer, padded)},
        "pad_token_id": tokenizer.pad_token_id,
        "transformers_version": "4.40.1",
    }


def _openvla_processors(out: Path) -> None:
    config = {
        "image_processor_type": "PrismaticImageProcessor",
        "auto_map": {"AutoImageProcessor": "processing_prismatic.PrismaticImageProcessor"},
        "image_size": IMAGE_SIDE,
    }
    (out / "preprocessor_config.json").write_text(json.dumps(config), encoding="utf-8")


def _spatialvla_config(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    return {
        "model_type": "spatialvla",
        "auto_map": {
            "AutoConfig": "configuration_spatialvla.SpatialVLAConfig",
            "AutoModel": "modeling_spatialvla.SpatialVLAForConditionalGeneration",
        },
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIDE,
            "patch_size": PATCH_SIZE,
        },
        "text_config": _text_config(tokenizer, len(tokenizer)),
        "image_token_index": tokenizer.convert_tokens_to_ids("<image>"),
        "use_vision_zoe": True,
        "use_spatial_token": True,
        "spatial_token_num": len(SPATIAL_TOKENS),
        "action_token_begin_idx": tokenizer.convert_tokens_to_ids(SPATIAL_TOKENS[0]),
        "pad_token_id": tokenizer.pad_token_id,
        "transformers_version": "4.47.0",
    }


def _spatialvla_processors(out: Path) -> None:
    SiglipImageProcessorPil(size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}).save_pretrained(out)
    processor = {"processor_class": "SpatialVLAProcessor", "intrinsic_config": CAMERAS}
    (out / "processor_config.json").write_text(json.dumps(processor), encoding="utf-8")


OPENVLA = RemoteFamily(
    name="openvla",
    special_tokens=("<PAD>", "</s>", "<s>", "<unk>"),
    added_tokens=(),
    code_files=("configuration_prismatic.py", "modeling_prismatic.py", "processing_prismatic.py"),
    model_key="AutoModelForVision2Seq",
    model_class="OpenVLAForActionPrediction",
    config=_openvla_config,
    write_processors=_openvla_processors,
    inserted_patches=PATCHES,
    token_inputs=("input_ids", "attention_mask"),
    vision_inputs={"pixel_values": (6, IMAGE_SIDE, IMAGE_SIDE)},
)
SPATIALVLA = RemoteFamily(
    name="spatialvla",
    special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<image>"),
    added_tokens=SPATIAL_TOKENS,
    code_files=("configuration_spatialvla.py", "modeling_spatialvla.py"),
    model_key="AutoModel",
    model_class="SpatialVLAForConditionalGeneration",
    config=_spatialvla_config,
    write_processors=_spatialvla_processors,
    inserted_patches=0,
    token_inputs=("input_ids", "attention_mask", "token_type_ids"),
    vision_inputs={"pixel_values": (3, IMAGE_SIDE, IMAGE_SIDE), "intrinsic": (3, 3)},
)
REMOTE_FAMILIES = {family.name: family for family in (OPENVLA, SPATIALVLA)}


def build_remote_checkpoint(out: Path, family: RemoteFamily) -> Path:
    """A randomly initialised checkpoint of `family`, built by its own code from the folder."""
    out.mkdir(parents=True, exist_ok=True)
    for name in family.code_files:
        shutil.copy(MODEL_CODE / family.name / name, out / name)
    tokenizer = train_tokenizer([*DEFAULT_CORPUS, PROMPT_WORDS], family.special_tokens)
    tokenizer.add_tokens(list(family.added_tokens), special_tokens=True)
    (out / "config.json").write_text(json.dumps(family.config(tokenizer)), encoding="utf-8")
    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    model_class = get_class_from_dynamic_module(config.auto_map[family.model_key], str(out))
    torch.manual_seed(0)
    model_class(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    family.write_processors(out)
    return out


@pytest.fixture(scope="module")
def remote_bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        name: build_remote_checkpoint(tmp_path_factory.mktemp(name), family)
        for name, family in REMOTE_FAMILIES.items()
    }


@pytest.fixture(params=sorted(REMOTE_FAMILIES))
def remote_base(
    request: pytest.FixtureRequest, remote_bases: dict[str, Path]
) -> tuple[RemoteFamily, Path]:
    name = str(request.param)
    return REMOTE_FAMILIES[name], remote_bases[name]


def trusted(base: Path) -> VLAModel:
    return VLAModel.from_base(str(base), STATS, trust_remote_code=True)


def model_scored_labels(vla: VLAModel, batch: EncodedBatch) -> torch.Tensor:
    """transformers-convention labels (each target at its own input position) worked out from
    the row layout alone: prompt ; rationale ; marker ; D actions ; eos, where the rationale's
    tokens and marker are targets when there is a rationale, the actions always."""
    prompts = vla.encode(make_examples(), with_targets=False)
    input_ids = batch.inputs["input_ids"]
    labels = torch.full_like(input_ids, IGNORED)
    for row, example in enumerate(make_examples()):
        start = int(prompts.inputs["attention_mask"][row].sum())
        words = vla.tokenizer(example.rationale, add_special_tokens=False)["input_ids"]
        rationale = len(words) if example.rationale else 0
        first = start if rationale else start + 1
        end = start + rationale + 1 + ACTION_DIM
        labels[row, first:end] = input_ids[row, first:end]
    return labels


# --------------------------------------------------------------------- loading


def test_checkpoint_code_runs_only_when_trusted(remote_base: tuple[RemoteFamily, Path]) -> None:
    family, base = remote_base
    with pytest.raises(HarnessError) as refused:
        VLAModel.from_base(str(base), STATS)
    assert f"model type '{family.name}'" in refused.value.problem
    assert "--trust-remote-code" in refused.value.fix
    vla = trusted(base)
    assert vla.family == family.name
    model_class = type(vla.model)
    assert model_class.__name__ == family.model_class
    assert model_class.__module__.startswith("transformers_modules.")  # the folder's own file
    assert vla.inserted_patches == family.inserted_patches
    assert len(vla.decoder_layers()) == 4
    head = vla.head_modules()[1]
    assert head is vla.model.get_output_embeddings()  # type: ignore[operator]
    assert head.weight.shape[0] == len(vla.tokenizer) > max(vla.layout_token_ids())


@pytest.mark.parametrize(
    ("family", "broken_code", "named", "fix"),
    [
        (SPATIALVLA, "from transformers.cache_utils import HybridCache\n", "HybridCache", "4.47.0"),
        (OPENVLA, 'raise NotImplementedError("needs timm 0.9")\n', "needs timm 0.9", "4.40.1"),
    ],
)
def test_failing_checkpoint_code_is_one_line_naming_transformers_versions(
    tmp_path: Path, family: RemoteFamily, broken_code: str, named: str, fix: str
) -> None:
    """Published code imports what transformers 5 removed (SpatialVLA: HybridCache) or
    refuses the installed packages (OpenVLA checks its timm version)."""
    tokenizer = train_tokenizer(list(DEFAULT_CORPUS), family.special_tokens)
    tokenizer.add_tokens(list(family.added_tokens), special_tokens=True)
    folder = tmp_path / f"broken_{family.name}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(family.config(tokenizer)), encoding="utf-8")
    for name in family.code_files:
        shutil.copy(MODEL_CODE / family.name / name, folder / name)
    model_file = next(name for name in family.code_files if name.startswith("modeling_"))
    (folder / model_file).write_text(broken_code, encoding="utf-8")
    with pytest.raises(HarnessError) as failed:
        VLAModel.from_base(str(folder), STATS, trust_remote_code=True)
    problem, line = failed.value.problem, failed.value.one_line()
    assert f"failed under transformers {transformers.__version__}" in problem
    assert named in problem
    assert fix in failed.value.fix
    assert "\n" not in line


# --------------------------------------------------------------------- training


def test_inputs_are_what_the_published_forward_takes(
    remote_base: tuple[RemoteFamily, Path],
) -> None:
    """OpenVLA: 6-channel pixels (one normalisation per vision backbone); SpatialVLA: token
    types and the camera intrinsics of its processor config, scaled to the image size."""
    family, base = remote_base
    inputs = trusted(base).encode(make_examples()).inputs
    assert {name: tuple(value.shape[1:]) for name, value in inputs.items()} == {
        **{name: (inputs["input_ids"].shape[1],) for name in family.token_inputs},
        **family.vision_inputs,
    }
    if "intrinsic" in inputs:
        scaled = torch.tensor([[30.0, 0, 16], [0, 40, 16], [0, 0, 1]])  # 640x480 -> 32x32
        assert torch.allclose(inputs["intrinsic"], scaled.expand(4, 3, 3))


def test_targets_sit_at_the_outputs_that_predict_them(
    remote_base: tuple[RemoteFamily, Path],
) -> None:
    """OpenVLA's outputs run `inserted` places behind its inputs; the model's own scoring of
    labels (written in its code) must agree with ours."""
    family, base = remote_base
    vla = trusted(base)
    examples = make_examples()
    batch = vla.encode(examples)
    input_ids = batch.inputs["input_ids"]
    inserted = family.inserted_patches
    assert batch.labels.shape[1] == input_ids.shape[1] + inserted
    assert not bool((batch.action_mask | batch.rationale_mask)[:, :inserted].any())
    for row, example in enumerate(examples):
        outputs = batch.action_mask[row].nonzero().flatten()
        bins = vla.action_tokenizer.bins(example.action[None])[0]
        expected = [vla.action_token_ids[index] for index in bins]
        assert batch.labels[row, outputs].tolist() == expected
        # the output at p has read input p - inserted (its sequence position p); the next
        # input is the token it predicts
        assert input_ids[row, outputs - inserted + 1].tolist() == expected
        assert int(input_ids[row, int(outputs[0]) - inserted]) == vla.marker_id
    image = vla.image_token_positions(batch)
    assert image.shape == batch.labels.shape
    assert set(image.sum(dim=1).tolist()) == {inserted or PATCHES}  # placeholders or spliced
    if inserted:
        assert bool(image[:, 1 : 1 + inserted].all())
    with torch.no_grad():
        own = vla.model(**batch.inputs, labels=model_scored_labels(vla, batch)).loss
        terms = vla.loss_terms(batch)
    tokens = terms.action_tokens + terms.rationale_tokens
    ours = (terms.action * terms.action_tokens + terms.rationale * terms.rationale_tokens) / tokens
    assert torch.allclose(own, ours, atol=1e-5)


def test_training_outputs_never_see_later_inputs(remote_base: tuple[RemoteFamily, Path]) -> None:
    """Replacing each row's last input (eos, after every target) leaves both losses alone:
    the training forward is causal (SpatialVLA's code makes it so only when given labels)."""
    _, base = remote_base
    vla = trusted(base)
    batch = vla.encode(make_examples())
    ids = batch.inputs["input_ids"].clone()
    last = batch.inputs["attention_mask"].sum(dim=1) - 1
    assert bool((ids[torch.arange(len(ids)), last] == vla.eos_id).all())
    ids[torch.arange(len(ids)), last] = vla.action_token_ids[0]
    changed = EncodedBatch(
        {**batch.inputs, "input_ids": ids}, batch.labels, batch.action_mask, batch.rationale_mask
    )
    with torch.no_grad():
        before, after = vla.loss_terms(batch), vla.loss_terms(changed)
    assert torch.allclose(before.action, after.action)
    assert torch.allclose(before.rationale, after.rationale)


def test_both_losses_reach_the_weights_and_fall_in_a_few_steps(
    remote_base: tuple[RemoteFamily, Path],
) -> None:
    _, base = remote_base
    torch.manual_seed(0)
    vla = trusted(base)
    batch = vla.encode(make_examples())
    terms = vla.loss_terms(batch)
    assert terms.action_tokens == 4 * ACTION_DIM
    assert terms.rationale_tokens == int(batch.rationale_mask.sum()) > 0
    backward(terms.action + terms.rationale)
    for module in (*vla.head_modules(), vla.decoder_layers()[-1], *vla.vision_modules()):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    optimizer = torch.optim.AdamW(vla.model.parameters(), lr=3e-3)
    initial = terms
    for _ in range(6):
        optimizer.zero_grad()
        terms = vla.loss_terms(batch)
        backward(terms.action + terms.rationale)
        optimizer.step()
    with torch.no_grad():
        final = vla.loss_terms(batch)
    assert float(final.action) < 0.8 * float(initial.action.detach())
    assert float(final.rationale) < 0.8 * float(initial.rationale.detach())


# --------------------------------------------------------------------- acting


@dataclass(frozen=True)
class Generation:
    prompt_length: int
    sequences: torch.Tensor  # (rows, prompt + new)
    logits: torch.Tensor  # (rows, new, vocabulary): raw, before the layout's masking


def recording_generations(vla: VLAModel, monkeypatch: pytest.MonkeyPatch) -> list[Generation]:
    """Each `generate` call `predict` makes, with the raw logits of every step."""
    calls: list[Generation] = []
    model: Any = vla.model
    original = model.generate

    def generate(**inputs: Any) -> torch.Tensor:
        result = original(**inputs, output_logits=True, return_dict_in_generate=True)
        length = int(inputs["input_ids"].shape[1])
        sequences: torch.Tensor = result.sequences
        calls.append(Generation(length, sequences, torch.stack(result.logits, dim=1)))
        return sequences

    monkeypatch.setattr(vla.model, "generate", generate)
    return calls


def test_acting_scores_actions_exactly_as_training_does(
    remote_base: tuple[RemoteFamily, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acting without reasoning sees the sequence training sees: the logits greedy decoding
    chose each action from equal the training forward's at those actions' outputs, with the
    decoded actions as targets (spliced patches, left padding, marker attended causally)."""
    _, base = remote_base
    vla = trusted(base)
    break_ties(vla)
    images = images_of(make_examples())
    calls = recording_generations(vla, monkeypatch)
    quiet = vla.predict(images, INSTRUCTIONS, reasoning=False)
    assert quiet.actions.shape == (4, ACTION_DIM)
    assert quiet.rationales is None
    assert np.all((quiet.actions >= STATS.q01) & (quiet.actions <= STATS.q99))
    acting = []
    for call in calls:
        for row in range(call.sequences.shape[0]):
            new = call.sequences[row, call.prompt_length :].tolist()
            first = new.index(vla.marker_id) + 1 if vla.marker_id in new else 0
            acting.append(call.logits[row, first : first + ACTION_DIM])
    replay = [
        TrainingExample(image, instruction, "", action.astype(np.float32))
        for image, instruction, action in zip(images, INSTRUCTIONS, quiet.actions, strict=True)
    ]
    batch = vla.encode(replay)
    with torch.no_grad():
        training = vla.model_outputs(batch).logits
    for row, logits in enumerate(acting):
        expected = training[row, batch.action_mask[row]]
        assert torch.allclose(logits, expected, atol=1e-4), float((logits - expected).abs().max())
    thinking = vla.predict(images, INSTRUCTIONS, reasoning=True, max_rationale_tokens=6)
    assert thinking.actions.shape == (4, ACTION_DIM)
    assert thinking.rationales is not None and len(thinking.rationales) == 4


def test_checkpoint_round_trip_needs_the_flag_and_keeps_outputs(
    remote_base: tuple[RemoteFamily, Path], tmp_path: Path
) -> None:
    family, base = remote_base
    vla = trusted(base)
    break_ties(vla)
    vla.action_conventions = ActionConventions(rotation="axis_angle", gripper="absolute")
    checkpoint = tmp_path / "checkpoint"
    vla.save(checkpoint)
    assert all((checkpoint / name).is_file() for name in family.code_files)
    with pytest.raises(HarnessError, match="runs code shipped with it"):
        VLAModel.from_checkpoint(checkpoint)
    loaded = VLAModel.from_checkpoint(checkpoint, trust_remote_code=True)
    assert loaded.family == family.name
    assert loaded.layout_token_ids() == vla.layout_token_ids()
    assert loaded.inserted_patches == vla.inserted_patches
    assert loaded.prompt_parts.intrinsic_config == vla.prompt_parts.intrinsic_config
    examples = make_examples()
    with torch.no_grad():
        before, after = (
            vla.loss_terms(vla.encode(examples)),
            loaded.loss_terms(loaded.encode(examples)),
        )
    assert torch.allclose(before.action, after.action)
    assert torch.allclose(before.rationale, after.rationale)
    images = images_of(examples)
    first = vla.predict(images, INSTRUCTIONS, reasoning=False)
    assert np.array_equal(
        first.actions, loaded.predict(images, INSTRUCTIONS, reasoning=False).actions
    )


def test_action_attention_covers_the_spliced_patches(remote_bases: dict[str, Path]) -> None:
    vla = trusted(remote_bases[OPENVLA.name])
    example = make_examples()[0]
    attention = action_attention(vla, example.image, example.instruction, example.action)
    side = IMAGE_SIDE // PATCH_SIZE
    assert attention.weights.shape == (side, side)
    assert np.isclose(attention.weights.sum(), 1.0)
