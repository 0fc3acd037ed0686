"""The `pi0` adapter: its SimplerEnv conventions on synthetic chunks, PI0Processor's preprocessing
redone without torchvision, a tiny random checkpoint end to end, and a served pi0 evaluated on
the real simulator.

Upstream rules checked: transformers' PI0Processor (processing_pi0.py, image_processing_pi0.py)
for the state normalisation, the prompt and the image resize-and-pad; SimplerEnv's pi0
evaluation (simpler_env/policies/lerobotpi/pi0_or_fast.py) for chunk execution, the WidowX
gripper and the state encodings; the shared sticky gripper for Google Robot.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.normalization import MeanStdStatistics
from refinevla_bench.policies.adapters.pi0 import Pi0Policy
from refinevla_bench.policies.adapters.pi0_decoding import (
    Pi0ActionDecoder,
    Pi0Statistics,
    model_state,
    state_vector,
)
from refinevla_bench.policies.adapters.pi0_model import fitted_size, pixel_values, prompts
from refinevla_bench.policies.adapters.pi0_tiny import CHUNK_SIZE, build_tiny_pi0
from refinevla_bench.policies.conformance import check_policy
from refinevla_bench.policies.protocol import EpisodeKey, ObservationBatch
from refinevla_bench.policies.registry import create_policy
from tests.support import cli_executable, run_cli

IDENTITY = MeanStdStatistics(np.zeros(7), np.ones(7), np.ones(7, dtype=bool))


def chunk(rows: int, length: int, first: float) -> np.ndarray:
    """Chunks whose action k of row r holds first + 10 r + k in every dimension."""
    values = first + 10 * np.arange(rows)[:, None] + np.arange(length)[None, :]
    return np.repeat(values[:, :, None], 32, axis=2)


# --- chunk execution --------------------------------------------------------------------------


@pytest.mark.parametrize(("horizon", "steps"), [(1, 7), (3, 10), (4, 60), (8, 17)])
def test_the_model_is_asked_once_per_horizon(horizon: int, steps: int) -> None:
    """Upstream executes the first exec_horizon actions of a chunk, then samples a new one:
    ceil(steps / horizon) queries over an episode."""
    decoder = Pi0ActionDecoder(horizon, "widowx", IDENTITY)
    decoder.reset(2)
    queries = 0
    for _ in range(steps):
        rows = decoder.empty_rows()
        if rows:
            queries += 1
            decoder.add_chunks(rows, chunk(len(rows), CHUNK_SIZE, 0.0))
        decoder.next_actions()
    assert queries == math.ceil(steps / horizon)


def test_each_chunk_runs_its_first_actions_in_order() -> None:
    """Actions 0..h-1 of each chunk, in order; the rest of the chunk is dropped."""
    decoder = Pi0ActionDecoder(3, "widowx", IDENTITY)
    decoder.reset(2)
    decoder.add_chunks([0, 1], chunk(2, CHUNK_SIZE, 0.0))
    first = [decoder.next_actions()[:, 0] for _ in range(3)]
    assert np.array_equal(first, [[0, 10], [1, 11], [2, 12]])
    assert decoder.empty_rows() == [0, 1]
    decoder.add_chunks([0, 1], chunk(2, CHUNK_SIZE, 100.0))
    assert np.array_equal(decoder.next_actions()[:, 0], [100, 110])


def test_rows_keep_their_own_queues() -> None:
    """A row refilled alone continues from its own chunk; the others are untouched; a reset
    empties every row."""
    decoder = Pi0ActionDecoder(2, "widowx", IDENTITY)
    decoder.reset(2)
    decoder.add_chunks([0, 1], chunk(2, CHUNK_SIZE, 0.0))
    decoder.next_actions()
    decoder.next_actions()
    decoder.add_chunks([0], chunk(1, CHUNK_SIZE, 50.0))
    assert decoder.empty_rows() == [1]
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        decoder.next_actions()
    decoder.add_chunks([1], chunk(1, CHUNK_SIZE, 70.0))
    assert np.array_equal(decoder.next_actions()[:, 0], [50, 70])
    assert decoder.empty_rows() == []
    decoder.reset(2)
    assert decoder.empty_rows() == [0, 1]


def test_actions_are_unnormalised_with_the_processor_statistics() -> None:
    """PI0Processor normalises (x - mean) / std; the inverse is z * std + mean, on the first 7
    dimensions of the model's 32."""
    config = {
        "actions_mean": [0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 0.6],
        "actions_std": [0.5, 2.0, 1.0, 0.1, 1.0, 1.0, 0.4],
    }
    statistics = Pi0Statistics.from_processor_config(config, "ckpt")
    decoder = Pi0ActionDecoder(1, "widowx", statistics.actions)
    decoder.reset(1)
    z = np.zeros((1, 2, 32))
    z[0, 0, :7] = [2.0, 1.0, -1.0, 3.0, 0.0, 0.5, 1.0]
    decoder.add_chunks([0], z)
    action = decoder.next_actions()[0]
    # 0.1 + 2 * 0.5, -0.2 + 1 * 2, 0.3 - 1, 0 + 3 * 0.1, 0.5 + 0, -0.5 + 0.5; gripper:
    # openness 0.6 + 1 * 0.4 = 1.0 > 0.5, so open (+1)
    assert np.allclose(action, [1.1, 1.8, -0.7, 0.3, 0.5, 0.0, 1.0])


def test_widowx_gripper_binarises_the_openness() -> None:
    """Upstream on WidowX: 2 * (openness > 0.5) - 1, absolute (+1 open)."""
    decoder = Pi0ActionDecoder(4, "widowx", IDENTITY)
    decoder.reset(1)
    chunks = np.zeros((1, 4, 32))
    chunks[0, :, 6] = [0.9, 0.51, 0.5, 0.1]
    decoder.add_chunks([0], chunks)
    assert [decoder.next_actions()[0, 6] for _ in range(4)] == [1.0, 1.0, -1.0, -1.0]


def test_google_gripper_is_sticky_and_relative() -> None:
    """Google Robot takes relative commands (+1 close): the change previous - current of the
    openness, held for 15 steps once it exceeds 0.5; each row keeps its own."""
    decoder = Pi0ActionDecoder(1, "google_robot", IDENTITY)
    decoder.reset(2)
    openness = [[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]] + [[0.0, 1.0]] * 17
    commands = []
    for row_openness in openness:
        chunks = np.zeros((2, 1, 32))
        chunks[:, 0, 6] = row_openness
        decoder.add_chunks([0, 1], chunks)
        commands.append(decoder.next_actions()[:, 6])
    closing = [command[0] for command in commands]
    assert closing == [0.0, 0.0] + [1.0] * 15 + [0.0] * 3
    assert all(command[1] == 0.0 for command in commands)


# --- state ------------------------------------------------------------------------------------


def proprio(quaternions_wxyz: np.ndarray) -> dict[str, np.ndarray]:
    rows = len(quaternions_wxyz)
    positions = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3) / 10
    return {
        "tcp_pose": np.concatenate([positions, quaternions_wxyz], axis=1),
        "gripper_opening": np.linspace(0.0, 1.0, rows),
    }


def random_quaternions(rows: int) -> np.ndarray:
    xyzw = Rotation.random(rows, random_state=3).as_quat()
    return np.roll(xyzw, 1, axis=1)


def test_roll_pitch_yaw_come_from_the_quaternion() -> None:
    """pos_rpy_gripper: xyz, static-xyz angles (scipy's extrinsic "xyz"), openness."""
    quaternions = random_quaternions(5)
    values = proprio(quaternions)
    state = state_vector(values, "pos_rpy_gripper")
    expected_rpy = Rotation.from_quat(np.roll(quaternions, -1, axis=1)).as_euler("xyz")
    assert np.allclose(state[:, :3], values["tcp_pose"][:, :3])
    assert np.allclose(state[:, 3:6], expected_rpy)
    assert np.allclose(state[:, 6], values["gripper_opening"])


def test_bridge_state_uses_the_top_down_frame() -> None:
    """Upstream on WidowX: xyz, mat2euler(R @ default_rot.T) with default_rot the top-down
    pose [[0,0,1],[0,1,0],[-1,0,0]], a zero, openness."""
    quaternions = random_quaternions(4)
    values = proprio(quaternions)
    state = state_vector(values, "bridge_pos_euler")
    matrices = Rotation.from_quat(np.roll(quaternions, -1, axis=1)).as_matrix()
    top_down = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    expected = Rotation.from_matrix(matrices @ top_down.T).as_euler("xyz")
    assert np.allclose(state[:, 3:6], expected)
    assert np.array_equal(state[:, 6], np.zeros(4))
    assert np.allclose(state[:, 7], values["gripper_opening"])
    # a gripper pointing straight down (pitch +90 deg about y) is Bridge's zero rotation
    down = proprio(np.array([[math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0]]))
    assert np.allclose(state_vector(down, "bridge_pos_euler")[0, 3:6], 0.0, atol=1e-9)


def test_fractal_state_has_quaternion_xyzw_and_closedness() -> None:
    """Upstream on Google Robot: xyz, quaternion rolled to x, y, z, w, 1 - openness."""
    values = proprio(np.array([[0.5, 0.5, -0.5, 0.5], [1.0, 0.0, 0.0, 0.0]]))
    state = state_vector(values, "fractal_pos_quat")
    assert np.allclose(state[0, 3:7], [0.5, -0.5, 0.5, 0.5])
    assert np.allclose(state[1, 3:7], [0.0, 0.0, 0.0, 1.0])
    assert np.allclose(state[:, 7], [1.0, 0.0])


def test_state_is_normalised_and_padded_like_the_processor() -> None:
    """(x - mean) / (std + 1e-8), zero-padded to max_state_dim; `none` is all zeros."""
    config = {
        "actions_mean": [0.0] * 7,
        "actions_std": [1.0] * 7,
        "state_mean": [0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5],
        "state_std": [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.25],
    }
    statistics = Pi0Statistics.from_processor_config(config, "ckpt")
    values = {
        "tcp_pose": np.array([[0.6, 0.2, -0.3, 1.0, 0.0, 0.0, 0.0]]),
        "gripper_opening": np.array([1.0]),
    }
    state = model_state(values, "pos_rpy_gripper", statistics, (1, 10))
    assert np.allclose(state, [[1.0, 0.2, -0.3, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]])
    assert np.array_equal(model_state({}, "none", statistics, (2, 10)), np.zeros((2, 10)))


# --- preprocessing ----------------------------------------------------------------------------


def test_images_fit_the_square_keeping_their_aspect() -> None:
    """get_image_size_for_max_height_width: scale by min(side/h, side/w), round down."""
    assert fitted_size(480, 640, 224) == (168, 224)  # WidowX camera: 0.35
    assert fitted_size(512, 640, 224) == (179, 224)  # Google camera: 179.2
    assert fitted_size(100, 300, 224) == (74, 224)  # 74.67
    assert fitted_size(300, 100, 224) == (224, 74)
    assert fitted_size(224, 224, 224) == (224, 224)


def test_pixels_are_rescaled_to_minus_one_one_and_padded_with_zeros() -> None:
    """A flat image stays flat through the resize: (200 / 255 - 0.5) / 0.5 in the top-left
    168 x 224, and the processor's zero padding (after normalisation) below it."""
    images = np.full((2, 480, 640, 3), 200, dtype=np.uint8)
    pixels = pixel_values(images, 224).numpy()
    assert pixels.shape == (2, 3, 224, 224)
    assert np.allclose(pixels[:, :, :168, :], (200 / 255 - 0.5) / 0.5, atol=1e-6)
    assert np.array_equal(pixels[:, :, 168:, :], np.zeros((2, 3, 56, 224)))


def test_resize_is_bicubic_with_antialiasing() -> None:
    """torchvision's bicubic resize of uint8 images is antialiased like PIL's BICUBIC: within
    one grey level of PIL on a random image."""
    image = np.random.default_rng(1).integers(0, 256, size=(1, 480, 640, 3), dtype=np.uint8)
    ours = pixel_values(image, 224).numpy()[0].transpose(1, 2, 0)[:168] * 127.5 + 127.5
    pil = np.asarray(Image.fromarray(image[0]).resize((224, 168), Image.Resampling.BICUBIC))
    assert np.abs(ours - pil).max() <= 1.0 + 1e-4


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pi0(tmp_path_factory.mktemp("tiny-pi0") / "model")


def test_prompt_is_image_tokens_bos_text_newline_padded_right(tiny_dir: Path) -> None:
    """The processor's string: `<image>` x image_seq_length, bos, text, "\\n", tokenised
    without added specials and right-padded with the pad token to 48."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert isinstance(image_id, int)
    texts = ["put carrot on plate", "put the spoon on the towel"]
    built = prompts(tokenizer, texts, image_id, 16)
    for row, text in enumerate(texts):
        expected = tokenizer(f"{'<image>' * 16}<bos>{text}\n", add_special_tokens=False)
        ids = expected["input_ids"]
        assert built.input_ids[row, : len(ids)].tolist() == ids
        assert set(built.input_ids[row, len(ids) :].tolist()) == {tokenizer.pad_token_id}
        assert built.attention_mask[row].tolist() == [1] * len(ids) + [0] * (48 - len(ids))
    long = prompts(tokenizer, ["put carrot on plate " * 12, "put carrot on plate"], image_id, 16)
    assert long.input_ids.shape[1] > 48  # never truncated: padded to the longest row
    assert int(long.attention_mask[0].sum()) == long.input_ids.shape[1]


# --- the tiny checkpoint ----------------------------------------------------------------------


def observation(rows: int = 2) -> ObservationBatch:
    rng = np.random.default_rng(5)
    quaternions = random_quaternions(rows)
    return ObservationBatch(
        images=rng.integers(0, 256, size=(rows, 480, 640, 3), dtype=np.uint8),
        instructions=("put carrot on plate", "put the spoon on the towel")[:rows],
        episodes=tuple(EpisodeKey("carrot_on_plate", row, 0) for row in range(rows)),
        proprio=proprio(quaternions),
    )


def roll_out(policy: Pi0Policy, steps: int) -> np.ndarray:
    batch = observation()
    policy.reset(batch.instructions)
    return np.stack([np.asarray(policy.act(batch)) for _ in range(steps)])


@pytest.fixture
def tiny_random(tiny_cache: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in tiny_cache.items():
        monkeypatch.setenv(key, value)
    return "tiny:random"


def test_tiny_checkpoint_acts_deterministically(tiny_random: str, tiny_dir: Path) -> None:
    """Built, saved and loaded like a real checkpoint; the same seed gives the same actions,
    another seed other actions; the cached `tiny:random` and a folder load alike."""
    config = json.loads((tiny_dir / "processor_config.json").read_text())
    assert {"state_mean", "state_std", "actions_mean", "actions_std"} <= config.keys()
    first = roll_out(Pi0Policy(tiny_random, seed=3), 6)
    again = roll_out(Pi0Policy(tiny_random, seed=3), 6)
    other = roll_out(Pi0Policy(str(tiny_dir), seed=4), 6)
    assert first.shape == (6, 2, 7)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    assert set(np.unique(first[..., 6])) <= {-1.0, 1.0}


def test_a_state_without_proprio_is_refused_and_state_none_needs_none(tiny_random: str) -> None:
    """A client that sends no robot state gets a one-line error naming the fix, not a KeyError;
    with state=none the model sees zeros and acts."""
    bare = dataclasses.replace(observation(), proprio={})
    policy = Pi0Policy(tiny_random)
    policy.reset(bare.instructions)
    with pytest.raises(HarnessError, match="lacks tcp_pose, gripper_opening") as caught:
        policy.act(bare)
    assert "state=none" in caught.value.fix
    blind = Pi0Policy(tiny_random, state="none")
    blind.reset(bare.instructions)
    assert np.asarray(blind.act(bare)).shape == (bare.batch_size, 7)


def test_tiny_checkpoint_passes_the_conformance_checks(tiny_random: str) -> None:
    """Declared conventions, determinism and rows alone equal to rows in a batch."""
    report = check_policy(lambda: create_policy("pi0", {"checkpoint": tiny_random}), steps=5)
    assert report.passed, report.summary()


def test_declared_conventions_follow_robot_and_rotation(tiny_random: str) -> None:
    """roll_pitch_yaw by default (the harness converts); absolute gripper on WidowX, relative
    on Google Robot; native images, the runner fits them itself."""
    widowx = Pi0Policy(tiny_random).conventions
    google = Pi0Policy(tiny_random, robot="google_robot", rotation="axis_angle").conventions
    assert (widowx.rotation, widowx.gripper, widowx.robot) == (
        "roll_pitch_yaw",
        "absolute",
        "widowx",
    )
    assert (google.rotation, google.gripper, google.robot) == (
        "axis_angle",
        "relative",
        "google_robot",
    )
    assert widowx.image_size is None
    assert not getattr(Pi0Policy, "stateless", False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"robot": "mars"}, "robot"),
        ({"rotation": "euler_xyz"}, "rotation"),
        ({"state": "joints"}, "state"),
        ({"dtype": "int8"}, "dtype"),
        ({"action_horizon": 0}, "action_horizon"),
        ({"action_horizon": CHUNK_SIZE + 1}, "chunk size"),
        ({"num_steps": 0}, "num_steps"),
        ({"state": "bridge_pos_euler"}, "8 numbers"),
    ],
)
def test_bad_options_are_refused(
    tiny_random: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(HarnessError, match=message):
        Pi0Policy(tiny_random, **options)  # type: ignore[arg-type]


def test_checkpoints_without_statistics_are_refused(tiny_dir: Path, tmp_path: Path) -> None:
    """No processor_config.json, or one without state statistics while the state is used."""
    missing = shutil.copytree(tiny_dir, tmp_path / "no-processor")
    (missing / "processor_config.json").unlink()
    with pytest.raises(HarnessError, match=r"no processor_config\.json"):
        Pi0Policy(str(missing))
    no_state = shutil.copytree(tiny_dir, tmp_path / "no-state")
    config = json.loads((no_state / "processor_config.json").read_text())
    del config["state_mean"], config["state_std"]
    (no_state / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(HarnessError, match="no state_mean"):
        Pi0Policy(str(no_state))
    assert Pi0Policy(str(no_state), state="none").conventions.robot == "widowx"
    with pytest.raises(HarnessError, match="neither an existing path nor a hub id"):
        Pi0Policy(str(tmp_path / "absent"))


# --- acceptance: a served tiny pi0 on the real simulator --------------------------------------

RUN_SECONDS_LIMIT = 180  # serve + run of 2 carrot episodes on a 2-core CPU (about 30 s)


def wait_for_health(url: str, deadline: float) -> None:
    health = url.replace("ws://", "http://") + "/healthz"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(health, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{health} never answered")


@pytest.mark.sim
def test_served_tiny_pi0_completes_simpler_episodes(
    widowx_assets: Path, tiny_cache: dict[str, str], tmp_path: Path
) -> None:
    """`serve --policy pi0 --policy-arg checkpoint=tiny:random` in one process, `run --policy
    ws://...` in another: both carrot episodes run their 60 steps (or stop on success) with no
    error in their records."""
    started = time.monotonic()
    server = subprocess.Popen(
        [
            cli_executable(),
            "serve",
            "--policy",
            "pi0",
            "--policy-arg",
            "checkpoint=tiny:random",
            "--port",
            "0",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **tiny_cache, "COLUMNS": "200"},
    )
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline and server.poll() is None:
            found = re.search(r"ws://127\.0\.0\.1:\d+", server.stderr.readline())
            url = found.group(0) if found else None
        assert url is not None, "the server never announced its address"
        wait_for_health(url, deadline)
        out = tmp_path / "run"
        completed = run_cli(
            [
                "run",
                "--suite",
                "widowx",
                "--policy",
                url,
                "--episodes",
                "2",
                "--tasks",
                "carrot_on_plate",
                "--seeds",
                "0",
                "--device",
                "cpu",
                "--out",
                str(out),
            ],
            widowx_assets,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted(record["episode_id"] for record in records) == [0, 1]
    for record in records:
        assert record["error"] is None, record["error"]
        assert record["termination"] in ("max_steps", "success")
        if record["termination"] == "max_steps":
            assert record["steps"] == 60
    assert time.monotonic() - started < RUN_SECONDS_LIMIT
