"""The VLA model interface on tiny random models of every supported family: action tokens,
token layout and masks, the two loss terms, constrained decoding, checkpoints, the remote-code
gate, and that the objective can be trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train.action_decoding import ActionLayoutProcessor, Grammar
from refinevla_bench.train.action_tokens import ActionStats, ActionTokenizer
from refinevla_bench.train.tiny import build_tiny_base
from refinevla_bench.train.token_layout import IGNORED
from refinevla_bench.train.vla import EncodedBatch, TrainingExample, VLAModel
from refinevla_bench.train.vla_checkpoint import ActionConventions

FAMILIES = ("paligemma", "idefics3", "qwen2_5_vl")
ACTION_DIM = 7
STATS = ActionStats(
    q01=(-0.05, -0.05, -0.05, -0.3, -0.3, -0.3, -1.0),
    q99=(0.05, 0.05, 0.05, 0.3, 0.3, 0.3, 1.0),
    mean=(0.0,) * ACTION_DIM,
    std=(0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0),
)
INSTRUCTIONS = (
    "put the spoon on the towel",
    "put carrot on plate",
    "put eggplant into yellow basket",
    "stack the green block on the yellow block",
)
RATIONALES = (
    "Plan: 1. reach the spoon 2. grasp the spoon",
    "",
    "Next: Close the gripper on the eggplant.",
    "",
)


def make_examples(seed: int = 0, height: int = 48, width: int = 64) -> list[TrainingExample]:
    """Four steps: odd rows without a rationale; actions inside the statistics' range."""
    rng = np.random.default_rng(seed)
    low, high = np.array(STATS.q01), np.array(STATS.q99)
    return [
        TrainingExample(
            image=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            instruction=instruction,
            rationale=rationale,
            action=rng.uniform(low, high).astype(np.float32),
        )
        for instruction, rationale in zip(INSTRUCTIONS, RATIONALES, strict=True)
    ]


def backward(loss: torch.Tensor) -> None:
    loss.backward()  # type: ignore[no-untyped-call]  # untyped in torch


def images_of(examples: list[TrainingExample]) -> npt.NDArray[np.uint8]:
    return np.stack([example.image for example in examples])


@pytest.fixture(scope="module", params=FAMILIES)
def family_base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    family = str(request.param)
    return build_tiny_base(tmp_path_factory.mktemp(family), family)


@pytest.fixture(scope="module")
def paligemma_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("paligemma"), "paligemma")


# --------------------------------------------------------------------- action tokens


def test_bins_lie_in_range_and_centres_lie_within_half_a_bin() -> None:
    tokenizer = ActionTokenizer(STATS, n_bins=256)
    half_width = tokenizer.bin_width() / 2
    rng = np.random.default_rng(1)
    for scale in (0.01, 0.1, 1.0, 10.0):  # from inside the range to far outside it
        actions = rng.normal(0, scale, (500, ACTION_DIM))
        bins = tokenizer.bins(actions)
        assert bins.dtype == np.int64
        assert bins.min() >= 0 and bins.max() < 256
        clipped = np.clip(actions, STATS.q01, STATS.q99)
        assert np.all(np.abs(tokenizer.values(bins) - clipped) <= half_width + 1e-12)


def test_bin_centres_map_back_to_their_bins() -> None:
    for n_bins in (2, 7, 256):
        tokenizer = ActionTokenizer(STATS, n_bins=n_bins)
        bins = np.stack([np.arange(n_bins)] * ACTION_DIM, axis=1)
        assert np.array_equal(tokenizer.bins(tokenizer.values(bins)), bins)
        assert len(tokenizer.token_strings) == n_bins
        assert tokenizer.token_strings[0] == "<act_0>"
        assert tokenizer.token_strings[-1] == f"<act_{n_bins - 1}>"


def test_range_ends_decode_to_the_outer_bin_centres() -> None:
    tokenizer = ActionTokenizer(STATS, n_bins=4)
    bins = tokenizer.bins(np.array([STATS.q01, STATS.q99]))
    assert bins.tolist() == [[0] * ACTION_DIM, [3] * ACTION_DIM]
    width = (np.array(STATS.q99) - np.array(STATS.q01)) / 4
    assert np.allclose(tokenizer.values(bins)[0], np.array(STATS.q01) + width / 2)


def test_stats_from_actions_are_the_percentiles_and_survive_json() -> None:
    actions = np.random.default_rng(2).normal(size=(1000, 3))
    stats = ActionStats.from_actions(actions)
    assert np.allclose(stats.q01, np.quantile(actions, 0.01, axis=0))
    assert np.allclose(stats.q99, np.quantile(actions, 0.99, axis=0))
    assert np.allclose(stats.mean, actions.mean(axis=0))
    assert np.allclose(stats.std, actions.std(axis=0))
    assert ActionStats.from_json(json.loads(json.dumps(stats.to_json()))) == stats


def test_constant_dimension_decodes_to_its_constant() -> None:
    actions = np.zeros((50, 2))
    actions[:, 0] = np.linspace(-1, 1, 50)
    actions[:, 1] = 0.25
    tokenizer = ActionTokenizer(ActionStats.from_actions(actions), n_bins=16)
    bins = tokenizer.bins(actions)
    assert set(bins[:, 1].tolist()) == {0}
    assert np.allclose(tokenizer.values(bins)[:, 1], 0.25)


def test_malformed_statistics_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="equal"):
        ActionStats(q01=(0.0,), q99=(1.0, 2.0), mean=(0.0,), std=(1.0,))
    with pytest.raises(ValueError, match="q01 above q99"):
        ActionStats(q01=(1.0,), q99=(0.0,), mean=(0.0,), std=(1.0,))
    with pytest.raises(ValueError, match="lists"):
        ActionStats.from_json({"q01": [0.0]})
    tokenizer = ActionTokenizer(STATS)
    with pytest.raises(ValueError, match="shape"):
        tokenizer.bins(np.zeros((3, 6)))
    with pytest.raises(ValueError, match="bin indices"):
        tokenizer.values(np.full((1, ACTION_DIM), 256))


# --------------------------------------------------------------------- decoding layout


def test_decoding_allows_text_then_marker_then_actions_then_eos() -> None:
    """Vocabulary of 10: 0 pad, 1 eos, 5 marker, 6-8 actions, the rest text; prompt of 2."""
    grammar = Grammar(
        marker_id=5,
        eos_id=1,
        action_ids=torch.tensor([6, 7, 8]),
        banned_in_rationale=torch.tensor([6, 7, 8, 1, 0]),
        action_dim=2,
    )

    def allowed(generated: list[int], *, marker_in_prompt: bool = False) -> set[int]:
        processor = ActionLayoutProcessor(
            grammar, prompt_length=2, marker_in_prompt=marker_in_prompt, max_rationale=3
        )
        scores = processor(torch.tensor([[9, 9, *generated]]), torch.zeros(1, 10))
        return set((scores[0] > -1).nonzero().flatten().tolist())

    text_or_marker = {2, 3, 4, 5, 9}
    assert allowed([]) == text_or_marker
    assert allowed([3, 4]) == text_or_marker
    assert allowed([3, 4, 2]) == {5}  # the rationale cap forces the marker
    assert allowed([3, 5]) == allowed([3, 5, 7]) == {6, 7, 8}
    assert allowed([3, 5, 7, 6]) == {1}
    assert allowed([], marker_in_prompt=True) == {6, 7, 8}
    assert allowed([8, 8], marker_in_prompt=True) == {1}


# --------------------------------------------------------------------- every family


def test_encode_masks_prompt_marks_actions_and_rationales(family_base: Path) -> None:
    vla = VLAModel.from_base(str(family_base), STATS)
    examples = make_examples()
    batch = vla.encode(examples)
    input_ids = batch.inputs["input_ids"]
    prompts = vla.encode(examples, with_targets=False)
    assert not bool(prompts.labels.ne(IGNORED).any())
    prompt_lengths = prompts.inputs["attention_mask"].sum(dim=1).tolist()
    action_ids = set(vla.action_token_ids)
    for row, example in enumerate(examples):
        labels = batch.labels[row]
        trained = labels != IGNORED
        assert torch.equal(trained, batch.action_mask[row] | batch.rationale_mask[row])
        assert not bool((batch.action_mask[row] & batch.rationale_mask[row]).any())
        # shifted targets: the label at t is the input token at t + 1
        positions = trained.nonzero().flatten()
        assert torch.equal(labels[positions], input_ids[row, positions + 1])
        # exactly D action tokens, in the order of the action's bins
        action_targets = labels[batch.action_mask[row]].tolist()
        assert len(action_targets) == ACTION_DIM
        assert set(action_targets) <= action_ids
        expected_bins = vla.action_tokenizer.bins(example.action[None])[0]
        assert [vla.action_token_ids.index(t) for t in action_targets] == expected_bins.tolist()
        # the rationale's tokens and its end marker, or nothing when it has none
        rationale_targets = labels[batch.rationale_mask[row]].tolist()
        if example.rationale:
            words = vla.tokenizer(example.rationale, add_special_tokens=False)["input_ids"]
            assert rationale_targets == [*words, vla.marker_id]
        else:
            assert rationale_targets == []
        # the prompt is masked: training starts at its last token (or, without a rationale,
        # at the marker after it)
        first = int(positions[0])
        assert first == prompt_lengths[row] - (1 if example.rationale else 0)
        image_positions = vla.image_token_positions(batch)[row]
        assert int(image_positions.sum()) > 0
        assert int(image_positions.nonzero().max()) < first


def test_rows_without_rationale_hold_the_untrained_marker(family_base: Path) -> None:
    vla = VLAModel.from_base(str(family_base), STATS)
    batch = vla.encode(make_examples())
    for row in (1, 3):
        ids = batch.inputs["input_ids"][row]
        marker_at = int((ids == vla.marker_id).nonzero().flatten()[0])
        assert int(batch.labels[row, marker_at - 1]) == IGNORED  # marker is an input only
        assert bool(batch.action_mask[row, marker_at])  # its output predicts the first action


def test_loss_terms_come_from_one_forward_and_reach_the_weights(family_base: Path) -> None:
    vla = VLAModel.from_base(str(family_base), STATS)
    batch = vla.encode(make_examples())
    terms = vla.loss_terms(batch)
    assert terms.action_tokens == 4 * ACTION_DIM
    assert terms.rationale_tokens == int(batch.rationale_mask.sum())
    assert terms.rationale_tokens > 0
    assert 0.0 <= float(terms.action_accuracy) <= 1.0
    assert not terms.action_accuracy.requires_grad
    backward(terms.action + 1.0 * terms.rationale)
    for module in (*vla.head_modules(), vla.decoder_layers()[-1], vla.vision_modules()[0]):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_batch_without_rationales_has_a_zero_rationale_term(family_base: Path) -> None:
    vla = VLAModel.from_base(str(family_base), STATS)
    examples = make_examples()
    terms = vla.loss_terms(vla.encode([examples[1], examples[3]]))
    assert terms.rationale_tokens == 0
    assert float(terms.rationale) == 0.0
    assert torch.isfinite(terms.action)


def test_predict_decodes_actions_in_range_and_rationales(family_base: Path) -> None:
    vla = VLAModel.from_base(str(family_base), STATS)
    examples = make_examples()
    images = images_of(examples)
    quiet = vla.predict(images, INSTRUCTIONS, reasoning=False)
    assert quiet.actions.shape == (4, ACTION_DIM)
    assert quiet.rationales is None
    assert np.all(quiet.actions >= np.array(STATS.q01))
    assert np.all(quiet.actions <= np.array(STATS.q99))
    thinking = vla.predict(images, INSTRUCTIONS, reasoning=True, max_rationale_tokens=8)
    assert thinking.actions.shape == (4, ACTION_DIM)
    assert thinking.rationales is not None and len(thinking.rationales) == 4
    assert all(isinstance(text, str) for text in thinking.rationales)
    assert np.all(np.isfinite(thinking.actions))


def break_ties(vla: VLAModel) -> None:
    """Untrained, all added tokens share one embedding, so their scores tie exactly and
    rounding picks among them: spread them a little so decoding compares real choices."""
    generator = torch.Generator().manual_seed(0)
    added = vla.layout_token_ids()
    model = vla.model
    embeddings = (model.get_input_embeddings(), model.get_output_embeddings())  # type: ignore[operator]
    with torch.no_grad():
        for weight in {id(m.weight): m.weight for m in embeddings}.values():
            weight[added] += 0.05 * torch.randn(len(added), weight.shape[1], generator=generator)


def test_batched_prediction_equals_row_by_row(family_base: Path) -> None:
    """Left padding of shorter prompts must not change what a row decodes."""
    vla = VLAModel.from_base(str(family_base), STATS)
    break_ties(vla)
    images = images_of(make_examples())
    together = vla.predict(images, INSTRUCTIONS, reasoning=True, max_rationale_tokens=6)
    for row, instruction in enumerate(INSTRUCTIONS):
        alone = vla.predict(
            images[row : row + 1], [instruction], reasoning=True, max_rationale_tokens=6
        )
        assert np.array_equal(alone.actions[0], together.actions[row])
        assert together.rationales is not None
        assert alone.rationales == [together.rationales[row]]


def test_checkpoint_round_trip_keeps_logits_and_predictions(
    family_base: Path, tmp_path: Path
) -> None:
    vla = VLAModel.from_base(str(family_base), STATS)
    vla.action_conventions = ActionConventions(rotation="axis_angle", gripper="absolute")
    examples = make_examples()
    batch = vla.encode(examples)
    vla.save(tmp_path / "checkpoint")
    loaded = VLAModel.from_checkpoint(tmp_path / "checkpoint")
    assert loaded.family == vla.family
    assert loaded.layout_token_ids() == vla.layout_token_ids()
    assert loaded.image_size == vla.image_size
    assert loaded.action_conventions == vla.action_conventions
    assert loaded.action_tokenizer.stats == STATS
    reloaded_batch = loaded.encode(examples)
    assert torch.equal(reloaded_batch.inputs["input_ids"], batch.inputs["input_ids"])
    with torch.no_grad():
        before, after = vla.loss_terms(batch), loaded.loss_terms(reloaded_batch)
    assert torch.allclose(before.action, after.action)
    assert torch.allclose(before.rationale, after.rationale)
    images = images_of(examples)
    first = vla.predict(images, INSTRUCTIONS, reasoning=True, max_rationale_tokens=5)
    second = loaded.predict(images, INSTRUCTIONS, reasoning=True, max_rationale_tokens=5)
    assert np.array_equal(first.actions, second.actions)
    assert first.rationales == second.rationales


def test_layout_modules_are_found(family_base: Path) -> None:
    vla = VLAModel.from_base(str(family_base), STATS)
    assert len(vla.decoder_layers()) == 4
    assert all(sum(p.numel() for p in module.parameters()) > 0 for module in vla.vision_modules())
    norm, head = vla.head_modules()
    assert head is vla.model.get_output_embeddings()  # type: ignore[operator]
    assert sum(p.numel() for p in norm.parameters()) > 0


def test_added_tokens_start_at_the_mean_embedding(family_base: Path) -> None:
    vla = VLAModel.from_base(str(family_base), STATS)
    weight = vla.model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    added = vla.layout_token_ids()
    assert len(added) == 257
    old_rows = min(added)
    assert max(added) < weight.shape[0]
    expected = weight[:old_rows].mean(dim=0)
    assert torch.allclose(weight[added], expected.expand(len(added), -1))
    texts = vla.tokenizer.convert_ids_to_tokens(added)
    assert texts[0] == "<end_of_rationale>" and texts[1:] == vla.action_tokenizer.token_strings


# --------------------------------------------------------------------- loading rules


def _config_folder(root: Path, config: dict[str, object]) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return root


def test_remote_code_is_refused_unless_trusted(tmp_path: Path) -> None:
    folder = _config_folder(
        tmp_path / "remote",
        {"model_type": "my_remote_vla", "auto_map": {"AutoConfig": "configuration_my.MyConfig"}},
    )
    with pytest.raises(HarnessError) as refused:
        VLAModel.from_base(str(folder), STATS)
    assert "needs Python code shipped with the checkpoint" in refused.value.problem
    assert "--trust-remote-code" in refused.value.fix
    assert "review" in refused.value.fix
    with pytest.raises(HarnessError) as attempted:
        VLAModel.from_base(str(folder), STATS, trust_remote_code=True)
    assert "could not load the remote code" in attempted.value.problem
    assert "configuration_my.py" in attempted.value.problem


def test_unsupported_family_is_named(tmp_path: Path) -> None:
    folder = _config_folder(tmp_path / "llava", {"model_type": "llava"})
    with pytest.raises(HarnessError, match="not a supported VLM family"):
        VLAModel.from_base(str(folder), STATS)


def test_remote_code_checkpoint_is_refused_unless_trusted(
    paligemma_base: Path, tmp_path: Path
) -> None:
    vla = VLAModel.from_base(str(paligemma_base), STATS)
    vla.save(tmp_path / "checkpoint")
    info_file = tmp_path / "checkpoint" / "refinevla.json"
    info = json.loads(info_file.read_text(encoding="utf-8"))
    info_file.write_text(json.dumps({**info, "family": "spatialvla"}), encoding="utf-8")
    with pytest.raises(HarnessError, match="runs code shipped with it"):
        VLAModel.from_checkpoint(tmp_path / "checkpoint")


def test_a_base_model_is_not_a_checkpoint(paligemma_base: Path) -> None:
    with pytest.raises(HarnessError, match="not a refinevla checkpoint"):
        VLAModel.from_checkpoint(paligemma_base)


def test_action_conventions_come_from_the_dataset(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    info = {"refinevla": {"action_conventions": {"rotation": "euler_xyz", "gripper": "relative"}}}
    (tmp_path / "meta" / "info.json").write_text(json.dumps(info), encoding="utf-8")
    conventions = ActionConventions.from_dataset(tmp_path)
    assert conventions == ActionConventions(rotation="euler_xyz", gripper="relative")
    (tmp_path / "meta" / "info.json").write_text("{}", encoding="utf-8")
    with pytest.raises(HarnessError, match="does not record its action conventions"):
        ActionConventions.from_dataset(tmp_path)


# --------------------------------------------------------------------- trainability


def test_forty_steps_fit_four_examples_and_decoding_replays_them(paligemma_base: Path) -> None:
    """The objective is trainable, and the decoding layout is the training layout: after
    fitting, rows trained without a rationale act exactly without reasoning, and rows trained
    with one reproduce it and their actions with reasoning on."""
    torch.manual_seed(0)
    vla = VLAModel.from_base(str(paligemma_base), STATS)
    examples = make_examples()
    batch: EncodedBatch = vla.encode(examples)
    optimizer = torch.optim.AdamW(vla.model.parameters(), lr=1e-2)
    vla.model.train()
    initial = vla.loss_terms(batch)
    for _ in range(40):
        terms = vla.loss_terms(batch)
        optimizer.zero_grad()
        backward(terms.action + terms.rationale)
        optimizer.step()
    final = vla.loss_terms(batch)
    assert float(final.action.detach()) < 0.5 * float(initial.action.detach())
    assert float(final.rationale.detach()) < 0.5 * float(initial.rationale.detach())
    assert float(final.action_accuracy) == 1.0
    images = images_of(examples)
    expected = vla.action_tokenizer.values(
        vla.action_tokenizer.bins(np.stack([e.action for e in examples]))
    )
    quiet = vla.predict(images, INSTRUCTIONS, reasoning=False)
    thinking = vla.predict(images, INSTRUCTIONS, reasoning=True, max_rationale_tokens=40)
    assert thinking.rationales is not None
    for row, rationale in enumerate(RATIONALES):
        if rationale:
            assert thinking.rationales[row] == rationale
            assert np.array_equal(thinking.actions[row], expected[row])
        else:
            assert np.array_equal(quiet.actions[row], expected[row])
