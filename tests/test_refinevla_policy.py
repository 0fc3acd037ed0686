"""The `refinevla` policy on a tiny fine-tuned checkpoint: conventions from refinevla.json,
batched actions on camera-sized frames, rationales kept per episode."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.observations import for_policy
from refinevla_bench.policies import registry
from refinevla_bench.policies.protocol import (
    EpisodeKey,
    ObservationBatch,
    PolicyConventions,
    ReasoningPolicy,
)
from refinevla_bench.policies.refinevla import RefinevlaPolicy
from refinevla_bench.train.action_tokens import ActionStats
from refinevla_bench.train.tiny import build_tiny_base
from refinevla_bench.train.vla import VLAModel
from refinevla_bench.train.vla_checkpoint import ActionConventions
from tests.test_train_model import break_ties

STATS = ActionStats(
    q01=(-0.05, -0.05, -0.05, -0.3, -0.3, -0.3, -1.0),
    q99=(0.05, 0.05, 0.05, 0.3, 0.3, 0.3, 1.0),
    mean=(0.0,) * 7,
    std=(0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0),
)
EPISODES = (EpisodeKey("carrot_on_plate", 0, 0), EpisodeKey("spoon_on_towel", 3, 1))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refinevla")
    vla = VLAModel.from_base(str(build_tiny_base(root / "base")), STATS)
    break_ties(vla)
    vla.action_conventions = ActionConventions(rotation="roll_pitch_yaw", gripper="relative")
    vla.save(root / "checkpoint")
    return root / "checkpoint"


def camera_batch(seed: int) -> ObservationBatch:
    """What the runner hands a policy: two 480x640 frames with their episodes."""
    images = np.random.default_rng(seed).integers(0, 256, (2, 480, 640, 3), dtype=np.uint8)
    return ObservationBatch(
        images=images,
        instructions=("put carrot on plate", "put the spoon on the towel"),
        episodes=EPISODES,
    )


def test_conventions_come_from_the_checkpoint(checkpoint: Path) -> None:
    policy = RefinevlaPolicy(str(checkpoint), device="cpu")
    assert policy.conventions == PolicyConventions(
        rotation="roll_pitch_yaw", gripper="relative", image_size=(64, 64), resize="bilinear"
    )


def test_act_returns_finite_actions_for_camera_frames(checkpoint: Path) -> None:
    policy = RefinevlaPolicy(str(checkpoint), device="cpu")
    policy.reset(["put carrot on plate", "put the spoon on the towel"])
    observation = camera_batch(0)
    actions = policy.act(for_policy(observation, policy.conventions))
    assert actions.shape == (2, 7)
    assert np.all(np.isfinite(actions))
    assert np.all(actions >= np.array(STATS.q01)) and np.all(actions <= np.array(STATS.q99))
    assert np.array_equal(policy.act(observation), actions)  # resizing here or there: same
    assert policy.last_rationales() is None


def test_smaller_batches_give_the_same_actions(checkpoint: Path) -> None:
    whole = RefinevlaPolicy(str(checkpoint), device="cpu")
    rowwise = RefinevlaPolicy(str(checkpoint), device="cpu", batch_size=1)
    observation = for_policy(camera_batch(1), whole.conventions)
    assert np.array_equal(whole.act(observation), rowwise.act(observation))


def test_reasoning_gives_one_rationale_per_row_of_each_step(checkpoint: Path) -> None:
    policy = RefinevlaPolicy(str(checkpoint), reasoning="on", device="cpu", max_rationale_tokens=4)
    assert isinstance(policy, ReasoningPolicy)  # the runner stores what it reasons
    for seed in (2, 3):
        assert policy.act(camera_batch(seed)).shape == (2, 7)
        texts = policy.last_rationales()
        assert texts is not None and len(texts) == 2
        assert all(isinstance(text, str) for text in texts)


def test_bad_options_are_user_errors(checkpoint: Path) -> None:
    with pytest.raises(HarnessError, match="reasoning must be one of"):
        RefinevlaPolicy(str(checkpoint), reasoning="maybe")
    with pytest.raises(HarnessError, match="batch_size"):
        RefinevlaPolicy(str(checkpoint), batch_size=0)
    with pytest.raises(HarnessError, match="unknown device"):
        RefinevlaPolicy(str(checkpoint), device="abacus")


def test_checkpoint_without_conventions_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    info = json.loads((checkpoint / "refinevla.json").read_text(encoding="utf-8"))
    copy = tmp_path / "checkpoint"
    copy.mkdir()
    (copy / "refinevla.json").write_text(
        json.dumps({**info, "action_conventions": None}), encoding="utf-8"
    )
    with pytest.raises(HarnessError, match="does not record the action conventions"):
        RefinevlaPolicy(str(copy), device="cpu")


def test_the_registry_builds_it_from_command_line_text(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `--policy-arg` passes them: every option arrives as text (until pyproject registers
    the entry point, the test registers it)."""
    target = "refinevla_bench.policies.refinevla:RefinevlaPolicy"
    entry = registry.PolicyEntry(
        "refinevla", target, EntryPoint("refinevla", target, registry.ENTRY_POINT_GROUP)
    )
    monkeypatch.setattr(registry, "registered_policies", lambda: {"refinevla": entry})
    options = {"checkpoint": str(checkpoint), "device": "cpu", "batch_size": "1"}
    policy = registry.create_policy("refinevla", {**options, "reasoning": "on"})
    assert isinstance(policy, RefinevlaPolicy)
    assert policy.batch_size == 1 and policy.reasoning
    assert policy.act(for_policy(camera_batch(4), policy.conventions)).shape == (2, 7)
