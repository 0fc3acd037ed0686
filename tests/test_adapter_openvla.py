"""The `openvla` adapter: the decoder against OpenVLA's published rules, and the runner end to
end on a tiny checkpoint built from the stand-in remote code (tests/remote_code_models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.normalization import BoundsStatistics
from refinevla_bench.policies.adapters.openvla import (
    OpenVLAPolicy,
    prompt_text,
    with_empty_token,
)
from refinevla_bench.policies.adapters.openvla_decoding import (
    OpenVLADecoder,
    action_statistics,
    bin_centres,
    normalized_actions,
    select_unnorm_key,
)
from refinevla_bench.policies.adapters.remote_checkpoints import rows_by_length
from refinevla_bench.policies.protocol import ObservationBatch
from tests.test_remote_code_models import IMAGE_SIDE, OPENVLA, build_remote_checkpoint

VOCAB = 32000  # the published text vocabulary 32064 minus pad_to_multiple_of 64
LOW = np.array([-0.02, -0.04, -0.03, -0.08, -0.1, -0.2, 0.0])
HIGH = np.array([0.02, 0.04, 0.05, 0.08, 0.06, 0.2, 1.0])
MASK = np.array([True] * 6 + [False])
STATS = BoundsStatistics(LOW, HIGH, MASK)
OPEN_TOKEN = VOCAB - 256  # bin 255, clipped to the last centre 254/255
CLOSED_TOKEN = VOCAB - 128  # bin 127, centre 0


def centre(k: int) -> float:
    """Bin k's centre between edges -1 + 2i/255, computed by hand: -1 + (2k + 1)/255."""
    return -1.0 + (2 * k + 1) / 255


def action_entry() -> dict[str, Any]:
    return {"action": {"q01": LOW.tolist(), "q99": HIGH.tolist(), "mask": MASK.tolist()}}


# --------------------------------------------------------------------- decoding


def test_token_ids_map_to_bin_centres_by_the_published_rule() -> None:
    """predict_action: bin = vocab - id - 1, clipped to [0, 254], value = bin_centers[bin]
    with bin_centers the midpoints of linspace(-1, 1, 256)."""
    assert bin_centres(256).shape == (255,)
    ids = [[VOCAB - 1, VOCAB - 128, VOCAB - 255, VOCAB - 256, VOCAB, 5, VOCAB - 2]]
    expected = [[centre(0), 0.0, centre(254), centre(254), centre(0), centre(254), centre(1)]]
    np.testing.assert_allclose(normalized_actions(ids, VOCAB, 256), expected, atol=1e-12)
    assert np.isclose(centre(254), 254 / 255)


def test_widowx_unnormalises_masked_dimensions_and_thresholds_the_gripper() -> None:
    """q01/q99 bounds where the mask is set, 0.5 * (x + 1) * (q99 - q01) + q01; the gripper
    (mask off) stays openness and SimplerEnv sends 2 * (openness > 0.5) - 1 on WidowX."""
    decoder = OpenVLADecoder(VOCAB, 256, STATS, "widowx")
    decoder.reset(2)
    ids = np.array(
        [
            [CLOSED_TOKEN] * 6 + [OPEN_TOKEN],  # middle of every range; open
            [VOCAB - 1] * 3 + [OPEN_TOKEN] * 3 + [CLOSED_TOKEN],  # low, high; closed
        ]
    )
    actions = decoder(ids)
    low, high = centre(0), centre(254)  # -254/255 and 254/255
    expected = [
        [0.0, 0.0, 0.01, 0.0, -0.02, 0.0, 1.0],
        [
            -0.02 + 0.5 * (low + 1) * 0.04,
            -0.04 + 0.5 * (low + 1) * 0.08,
            -0.03 + 0.5 * (low + 1) * 0.08,
            -0.08 + 0.5 * (high + 1) * 0.16,
            -0.1 + 0.5 * (high + 1) * 0.16,
            -0.2 + 0.5 * (high + 1) * 0.4,
            -1.0,
        ],
    ]
    np.testing.assert_allclose(actions, expected, atol=1e-12)
    assert np.isclose(expected[1][0], -0.02 + 0.02 / 255)


def test_google_robot_gripper_is_sticky_relative_for_15_steps() -> None:
    """SimplerEnv on Google Robot: relative = previous - current openness (0 at the first
    step); once |relative| > 0.5 it is repeated for 15 steps, then changes count again."""
    decoder = OpenVLADecoder(VOCAB, 256, STATS, "google_robot")
    decoder.reset(1)
    opened = np.array([[CLOSED_TOKEN] * 6 + [OPEN_TOKEN]])
    closed = np.array([[CLOSED_TOKEN] * 6 + [CLOSED_TOKEN]])
    commands = [decoder(opened)[0, 6] for _ in range(2)]
    commands += [decoder(closed)[0, 6] for _ in range(17)]
    close = 254 / 255 - 0.0  # open openness minus closed openness: +1 closes
    assert commands[:2] == [0.0, 0.0]
    np.testing.assert_allclose(commands[2:17], [close] * 15)
    assert commands[17:] == [0.0, 0.0]
    decoder.reset(1)
    assert decoder(closed)[0, 6] == 0.0  # a new episode starts without a change


def test_unnorm_key_defaults_per_robot_and_refuses_unknown_keys() -> None:
    stats: dict[str, object] = {
        "bridge_orig": action_entry(),
        "fractal20220817_data": action_entry(),
        "kuka": action_entry(),
    }
    assert select_unnorm_key(stats, None, "widowx", "ckpt") == "bridge_orig"
    assert select_unnorm_key(stats, None, "google_robot", "ckpt") == "fractal20220817_data"
    assert select_unnorm_key(stats, "kuka", "widowx", "ckpt") == "kuka"
    with pytest.raises(HarnessError, match="no statistics 'taco'") as unknown:
        select_unnorm_key(stats, "taco", "widowx", "ckpt")
    assert "unnorm_key" in unknown.value.fix
    only = {"my_robot": action_entry()}
    assert select_unnorm_key(only, None, "widowx", "ckpt") == "my_robot"
    several = {"a": action_entry(), "b": action_entry()}
    with pytest.raises(HarnessError, match="holds statistics for a, b"):
        select_unnorm_key(several, None, "google_robot", "ckpt")


def test_action_statistics_read_the_published_layout() -> None:
    read = action_statistics({"bridge_orig": action_entry()}, "bridge_orig")
    np.testing.assert_array_equal(read.low, LOW)
    np.testing.assert_array_equal(read.mask, MASK)
    with pytest.raises(HarnessError, match="no action q01/q99"):
        action_statistics({"bridge_orig": {"proprio": {}}}, "bridge_orig")


def test_prompts_and_the_empty_token() -> None:
    """SimplerEnv passes the instruction as is; OpenVLA's template lowercases it. The
    published predict_action appends the empty piece unless the prompt ends with it."""
    assert prompt_text("Put Carrot on plate", "simpler") == "Put Carrot on plate"
    assert prompt_text("Put Carrot on plate", "openvla") == (
        "In: What action should the robot take to put carrot on plate?\nOut:"
    )
    assert with_empty_token([1, 5, 9], 29871) == [1, 5, 9, 29871]
    assert with_empty_token([1, 5, 29871], 29871) == [1, 5, 29871]
    assert with_empty_token([1, 5], None) == [1, 5]
    assert rows_by_length([[1, 2], [3], [4, 5], [6]]) == [[0, 2], [1, 3]]


# --------------------------------------------------------------------- options


def test_remote_code_is_refused_unless_trusted() -> None:
    with pytest.raises(HarnessError) as refused:
        OpenVLAPolicy()
    assert "openvla/openvla-7b" in refused.value.problem
    assert "runs Python code shipped with it" in refused.value.problem
    assert "--policy-arg trust_remote_code=true" in refused.value.fix


@pytest.mark.parametrize(
    ("options", "named"),
    [({"robot": "franka"}, "robot"), ({"prompt": "chat"}, "prompt")],
)
def test_bad_options_are_refused(options: dict[str, str], named: str) -> None:
    with pytest.raises(HarnessError, match=f"unknown --policy-arg {named}"):
        OpenVLAPolicy(trust_remote_code=True, **options)


# --------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in OpenVLA checkpoint with what the published config adds: statistics per
    dataset, the bin count and the vocabulary padding."""
    out = build_remote_checkpoint(tmp_path_factory.mktemp("openvla"), OPENVLA)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config.update(
        n_action_bins=256,
        pad_to_multiple_of=64,
        norm_stats={"bridge_orig": action_entry(), "fractal20220817_data": action_entry()},
    )
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


def trusted(checkpoint: Path, **options: str) -> OpenVLAPolicy:
    return OpenVLAPolicy(checkpoint=str(checkpoint), trust_remote_code=True, **options)


def observation(rows: int, instructions: tuple[str, ...]) -> ObservationBatch:
    images = np.random.default_rng(0).integers(0, 256, (rows, IMAGE_SIDE, IMAGE_SIDE, 3))
    return ObservationBatch(images=images.astype(np.uint8), instructions=instructions)


def test_widowx_acts_on_a_batch_with_the_tokens_generate_picks_row_by_row(
    checkpoint: Path,
) -> None:
    """Rows of prompts of equal and of different lengths decode the tokens the published
    path (generate, one row at a time, greedy) picks for them alone."""
    policy = trusted(checkpoint)
    assert policy.conventions.robot == "widowx"
    assert policy.conventions.gripper == "absolute"
    assert policy.conventions.rotation == "roll_pitch_yaw"
    assert policy.conventions.image_size == (224, 224)
    assert policy.stateless
    batch = observation(3, ("put carrot on plate", "put carrot", "put carrot on plate"))
    policy.reset(batch.instructions)
    actions = policy.act(batch)
    assert actions.shape == (3, 7)
    assert np.isfinite(actions).all()
    assert set(actions[:, 6].tolist()) <= {-1.0, 1.0}
    assert not np.array_equal(actions[0], actions[2])  # one pass (equal lengths), two answers
    images = [Image.fromarray(image) for image in batch.images]
    pixels = policy.image_processor(images, return_tensors="pt")["pixel_values"]
    expected = []
    for row, instruction in enumerate(batch.instructions):
        ids = torch.tensor([policy.tokenizer(instruction)["input_ids"]])
        with torch.no_grad():
            generated = policy.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pixel_values=pixels[row : row + 1],
                max_new_tokens=7,
                do_sample=False,
            )
        expected.append(generated[0, -7:].tolist())
    vocabulary = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    decoder = OpenVLADecoder(vocabulary["text_config"]["vocab_size"] - 64, 256, STATS, "widowx")
    np.testing.assert_allclose(actions, decoder(np.array(expected)))


def test_google_robot_starts_with_no_gripper_change(checkpoint: Path) -> None:
    policy = trusted(checkpoint, robot="google_robot")
    assert policy.conventions.gripper == "relative"
    assert not policy.stateless
    batch = observation(2, ("pick coke can", "pick coke can"))
    policy.reset(batch.instructions)
    first = policy.act(batch)
    assert first.shape == (2, 7)
    assert np.array_equal(first[:, 6], [0.0, 0.0])


def test_a_checkpoint_without_openvla_statistics_is_refused(
    checkpoint: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in checkpoint.iterdir():
        (bare / path.name).write_bytes(path.read_bytes())
    config = json.loads((bare / "config.json").read_text(encoding="utf-8"))
    del config["norm_stats"]
    (bare / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(HarnessError, match="not an OpenVLA checkpoint"):
        OpenVLAPolicy(checkpoint=str(bare), trust_remote_code=True)
    with pytest.raises(HarnessError, match="no statistics 'kuka'"):
        OpenVLAPolicy(checkpoint=str(checkpoint), trust_remote_code=True, unnorm_key="kuka")
