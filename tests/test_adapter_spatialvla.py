"""The `spatialvla` adapter: the post-processing against SimplerEnv's SpatialVLA evaluation,
and the runner end to end on the stand-in checkpoint (tests/remote_code_models) with a
stand-in processor written here to the published processor's interface."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.spatialvla import SpatialVLAPolicy, _check_processor
from refinevla_bench.policies.adapters.spatialvla_decoding import (
    ChunkEnsembler,
    SpatialVLAPostprocessor,
    SpatialVLAStickyGripper,
    select_unnorm_key,
)
from refinevla_bench.policies.protocol import ObservationBatch
from tests.test_remote_code_models import (
    CAMERAS,
    IMAGE_SIDE,
    SPATIALVLA,
    build_remote_checkpoint,
)

E08 = math.exp(0.8)  # the weight ratio of consecutive predictions at temperature -0.8


def test_chunks_are_ensembled_with_newer_predictions_weighing_more() -> None:
    """SimplerEnv's ActionEnsembler (horizon = chunk size 4, temperature -0.8): the action
    for now averages the last 4 chunks' entries for now, weights exp(0.8 k), k = 0 oldest."""
    ensembler = ChunkEnsembler(4)
    chunks = [np.array([[[100.0 * step + 10 * index] for index in range(4)]]) for step in range(5)]
    outputs = [float(ensembler(chunk)[0, 0]) for chunk in chunks]
    assert outputs[0] == 0.0  # the only prediction's first entry
    assert math.isclose(outputs[1], (10 + E08 * 100) / (1 + E08))
    assert math.isclose(outputs[2], (20 + E08 * 110 + E08**2 * 200) / (1 + E08 + E08**2))
    # five chunks made: the oldest (step 0) has left the window of 4
    weights = [1, E08, E08**2, E08**3]
    entries = [130, 220, 310, 400]  # step 1's entry 3, step 2's entry 2, ...
    expected = sum(w * e for w, e in zip(weights, entries, strict=True)) / sum(weights)
    assert math.isclose(outputs[4], expected)
    ensembler.reset()
    assert float(ensembler(chunks[3])[0, 0]) == 300.0


def test_google_gripper_measures_changes_from_the_last_hold() -> None:
    """SimplerEnv's SpatialVLA evaluation on Google Robot: relative = reference - current,
    the reference being the openness of the first step or of the last hold's start; a change
    above 0.5 is held for 10 steps; smaller ones are sent as they are."""
    sticky = SpatialVLAStickyGripper()
    sticky.reset(1)
    drifting = [float(sticky([value])[0]) for value in (1.0, 0.8, 0.6, 0.4, 0.4)]
    np.testing.assert_allclose(drifting, [0.0, 0.2, 0.4, 0.6, 0.6])  # a step-to-step rule: 0.2s
    held = [float(sticky([0.4])[0]) for _ in range(9)]
    np.testing.assert_allclose(held, [0.6] * 8 + [0.0])  # 10 steps in all, then 0.4 - 0.4
    reopening = [float(sticky([value])[0]) for value in (1.0, 1.0)]
    np.testing.assert_allclose(reopening, [-0.6, -0.6])  # 0.4 - 1.0: opens (-1 opens)
    sticky.reset(1)
    assert float(sticky([0.0])[0]) == 0.0


def test_widowx_gripper_is_absolute_from_the_ensembled_openness() -> None:
    """WidowX: 2 * (openness > 0.5) - 1 on the ensembled chunk; everything else passes on."""
    post = SpatialVLAPostprocessor(2, "widowx")
    post.reset(2)
    first = np.array(
        [
            [[0.1, 0.2, 0.3, 0.01, 0.02, 0.03, 1.0], [9, 9, 9, 9, 9, 9, 0.0]],
            [[0.0] * 6 + [0.0], [9] * 6 + [1.0]],
        ]
    )
    np.testing.assert_allclose(
        post(first), [[0.1, 0.2, 0.3, 0.01, 0.02, 0.03, 1.0], [0, 0, 0, 0, 0, 0, -1.0]]
    )
    second = np.array([[[0.0] * 7, [0.0] * 7], [[0.0] * 7, [0.0] * 7]])
    # now: the first chunk's entry 1 (weight 1) and the second's entry 0 (weight E08); the
    # openness: row 0 0 -> closed, row 1 1 / (1 + E08) = 0.31 -> closed
    actions = post(second)
    np.testing.assert_allclose(actions[:, :6], [[9 / (1 + E08)] * 6] * 2)
    assert actions[:, 6].tolist() == [-1.0, -1.0]


def test_unnorm_key_defaults_are_simplerenv_s() -> None:
    stats: dict[str, object] = {"bridge_orig/1.0.0": {}, "fractal20220817_data/0.1.0": {}}
    assert select_unnorm_key(stats, None, "widowx", "ckpt") == "bridge_orig/1.0.0"
    assert select_unnorm_key(stats, None, "google_robot", "ckpt") == "fractal20220817_data/0.1.0"
    with pytest.raises(HarnessError, match="no statistics 'bridge_orig'"):
        select_unnorm_key(stats, "bridge_orig", "widowx", "ckpt")


def test_remote_code_is_refused_unless_trusted() -> None:
    with pytest.raises(HarnessError) as refused:
        SpatialVLAPolicy(robot="google_robot")
    assert "IPEC-COMMUNITY/spatialvla-4b-224-pt" in refused.value.problem
    assert "runs Python code shipped with it" in refused.value.problem
    assert "--policy-arg trust_remote_code=true" in refused.value.fix


def test_processors_without_the_published_interface_or_with_histories_are_refused() -> None:
    complete: dict[str, object] = {
        "decode_actions": None,
        "action_chunk_size": 4,
        "statistics": {},
        "num_obs_steps": 1,
    }
    _check_processor(SimpleNamespace(**complete), "ckpt")
    with pytest.raises(HarnessError, match="lacks decode_actions"):
        without = {name: value for name, value in complete.items() if name != "decode_actions"}
        _check_processor(SimpleNamespace(**without), "ckpt")
    with pytest.raises(HarnessError, match="2 images per step"):
        _check_processor(SimpleNamespace(**{**complete, "num_obs_steps": 2}), "ckpt")


# --------------------------------------------------------------------- end to end

# The published processor's interface over the stand-in checkpoint: PaliGemma's prompt
# (image placeholders, BOS, the instruction, a newline), pixels in [0, 1] with
# do_normalize=False, the statistics key's camera intrinsics scaled to the image, and
# `decode_actions` reading row 0 of what it is given: 3 tokens per action, un-normalised with
# q01/q99/mask. Its token-to-value rule is a stand-in for SpatialVLA's spatial bins.
PROCESSOR_CODE = """
import json
from pathlib import Path

import numpy as np
import torch
from transformers import BatchFeature, PreTrainedTokenizerFast


class SpatialVLAProcessor:
    def __init__(self, tokenizer, config):
        self.tokenizer = tokenizer
        self.statistics = config["statistics"]
        self.action_chunk_size = config["action_chunk_size"]
        self.num_obs_steps = config["num_obs_steps"]
        self.obs_delta = config["obs_delta"]
        self.image_side = config["image_side"]
        self.image_seq_length = config["image_seq_length"]
        self.spatial_tokens = config["spatial_tokens"]
        self.begin = tokenizer.convert_tokens_to_ids(self.spatial_tokens[0])
        self.intrinsics = {}
        for key, camera in config["intrinsic_config"].items():
            matrix = torch.tensor(camera["intrinsic"], dtype=torch.float32)
            size = torch.tensor([camera["width"], camera["height"]], dtype=torch.float32)
            matrix[:2] *= (self.image_side / size)[:, None]
            self.intrinsics[key] = matrix

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        config = json.loads((Path(path) / "processor_config.json").read_text(encoding="utf-8"))
        return cls(PreTrainedTokenizerFast.from_pretrained(path), config)

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoProcessor"):
        del auto_class  # transformers registers remote classes it loads; nothing to keep

    def __call__(self, images, text, unnorm_key=None, return_tensors=None, do_normalize=True):
        prompt = "<image>" * self.image_seq_length + self.tokenizer.bos_token + text + "\\n"
        inputs = self.tokenizer([prompt], return_tensors="pt")
        side = self.image_side
        pixels = np.stack([np.asarray(image.resize((side, side))) for image in images])
        values = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        if do_normalize:
            values = (values - 0.5) / 0.5
        intrinsic = self.intrinsics.get(unnorm_key, self.intrinsics["default"])
        return BatchFeature({**inputs, "pixel_values": values, "intrinsic": intrinsic})

    def decode_actions(self, generation_outputs, unnorm_key=None):
        count = 3 * self.action_chunk_size
        ids = generation_outputs[0, :count].long().numpy().reshape(-1, 3)
        bins = np.clip(ids - self.begin, 0, len(self.spatial_tokens) - 1)
        values = np.linspace(-1.0, 1.0, len(self.spatial_tokens))[bins]
        normalized = np.concatenate(
            [np.repeat(values[:, :1], 3, 1), np.repeat(values[:, 1:2], 3, 1), bins[:, 2:] % 2], 1
        )
        stats = self.statistics[unnorm_key]["action"]
        low, high = np.array(stats["q01"]), np.array(stats["q99"])
        scaled = 0.5 * (normalized + 1) * (high - low) + low
        return {"actions": np.where(stats["mask"], scaled, normalized), "action_ids": ids}
"""
CHUNK = 4
PATCHES = (IMAGE_SIDE // 8) ** 2  # the stand-in's SigLIP patches of 8 pixels


def statistics(scale: float) -> dict[str, Any]:
    bound = [scale] * 6 + [1.0]
    return {
        "action": {
            "q01": [-value for value in bound[:6]] + [0.0],
            "q99": bound,
            "mask": [True] * 6 + [False],
        }
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in SpatialVLA checkpoint with the stand-in processor and the published
    processor_config.json fields (statistics per dataset, chunk size, one image per step)."""
    out = build_remote_checkpoint(tmp_path_factory.mktemp("spatialvla"), SPATIALVLA)
    (out / "processing_spatialvla.py").write_text(PROCESSOR_CODE, encoding="utf-8")
    processor_config = {
        "processor_class": "SpatialVLAProcessor",
        "auto_map": {"AutoProcessor": "processing_spatialvla.SpatialVLAProcessor"},
        "statistics": {
            "bridge_orig/1.0.0": statistics(0.05),
            "fractal20220817_data/0.1.0": statistics(0.2),
        },
        "intrinsic_config": CAMERAS,
        "action_chunk_size": CHUNK,
        "num_obs_steps": 1,
        "obs_delta": 1,
        "image_side": IMAGE_SIDE,
        "image_seq_length": PATCHES,
        "spatial_tokens": list(SPATIALVLA.added_tokens),
    }
    (out / "processor_config.json").write_text(json.dumps(processor_config), encoding="utf-8")
    return out


def trusted(checkpoint: Path, **options: str) -> SpatialVLAPolicy:
    """The policy, its untrained head replaced by one that scores only the spatial tokens
    (random rows; every other row zero), so that greedy decoding picks action tokens that
    depend on the inputs, as a trained SpatialVLA does."""
    policy = SpatialVLAPolicy(checkpoint=str(checkpoint), trust_remote_code=True, **options)
    head = policy.model.get_output_embeddings()
    begin = policy.model.config.action_token_begin_idx
    weight = torch.zeros_like(head.weight)
    generator = torch.Generator().manual_seed(0)
    spatial = torch.randn(len(SPATIALVLA.added_tokens), weight.shape[1], generator=generator)
    weight[begin : begin + len(SPATIALVLA.added_tokens)] = spatial
    head.weight = torch.nn.Parameter(weight)  # untied from the input embeddings
    return policy


def observation(instructions: tuple[str, ...]) -> ObservationBatch:
    """Black, white and red images in turn: the untrained model tells them apart (noise
    images all look alike to it)."""
    colours = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0]], dtype=np.uint8)
    rows = np.arange(len(instructions)) % len(colours)
    images = np.broadcast_to(colours[rows, None, None], (len(rows), IMAGE_SIDE, IMAGE_SIDE, 3))
    return ObservationBatch(images=images.copy(), instructions=instructions)


def test_widowx_acts_on_a_batch_with_each_row_decoded_as_alone(checkpoint: Path) -> None:
    """Rows of prompts of equal and of different lengths: each row's first action is entry 0
    of the chunk the published path (processor, greedy generate of that row alone,
    decode_actions with the bridge statistics) makes for it, with the WidowX gripper."""
    policy = trusted(checkpoint)
    assert policy.unnorm_key == "bridge_orig/1.0.0"
    assert policy.conventions.robot == "widowx"
    assert policy.conventions.gripper == "absolute"
    assert policy.conventions.rotation == "roll_pitch_yaw"
    assert not policy.stateless
    batch = observation(("put carrot on plate", "put spoon on towel", "put carrot"))
    policy.reset(batch.instructions)
    actions = policy.act(batch)
    assert actions.shape == (3, 7)
    assert np.isfinite(actions).all()
    assert set(actions[:, 6].tolist()) <= {-1.0, 1.0}
    assert np.all(np.abs(actions[:, :6]) <= 0.05)  # within the bridge bounds
    assert not np.array_equal(actions[0], actions[1])  # one pass (equal lengths), two answers
    for row, instruction in enumerate(batch.instructions):
        inputs = policy.processor(
            images=[Image.fromarray(batch.images[row])],
            text=instruction,
            unnorm_key="bridge_orig/1.0.0",
            return_tensors="pt",
            do_normalize=False,
        )
        with torch.no_grad():
            generated = policy.model.generate(**inputs, max_new_tokens=3 * CHUNK, do_sample=False)
        new = generated[:, inputs["input_ids"].shape[1] :]
        chunk = policy.processor.decode_actions(new, unnorm_key="bridge_orig/1.0.0")["actions"]
        np.testing.assert_allclose(actions[row, :6], chunk[0, :6])
        assert actions[row, 6] == (1.0 if chunk[0, 6] > 0.5 else -1.0)
    following = policy.act(batch)  # ensembled with the first chunks: still in bounds
    assert np.all(np.abs(following[:, :6]) <= 0.05)


def test_google_robot_uses_the_fractal_statistics_and_a_relative_gripper(
    checkpoint: Path,
) -> None:
    policy = trusted(checkpoint, robot="google_robot")
    assert policy.unnorm_key == "fractal20220817_data/0.1.0"
    assert policy.conventions.gripper == "relative"
    batch = observation(("pick coke can", "pick coke can"))
    policy.reset(batch.instructions)
    first = policy.act(batch)
    assert first.shape == (2, 7)
    assert first[:, 6].tolist() == [0.0, 0.0]  # no change at an episode's first step
    with pytest.raises(HarnessError, match="no statistics 'kuka'"):
        SpatialVLAPolicy(checkpoint=str(checkpoint), trust_remote_code=True, unnorm_key="kuka")
