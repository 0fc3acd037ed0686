"""The Octo adapter keeps SimplerEnv's policy-side rules (simpler_env/policies/octo/octo_model.py,
simpler_env/utils/action/action_ensemble.py), checked on synthetic model outputs; the policy's
act() runs end to end around a fake runner."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.spatial.transform import Rotation

from refinevla_bench.harness.actions import convert_rotation
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.normalization import MeanStdStatistics
from refinevla_bench.policies.adapters.octo import OctoPolicy
from refinevla_bench.policies.adapters.octo_decoding import (
    ChunkEnsembler,
    HistoryWindow,
    ImageHistory,
    KeySchedule,
    OctoActions,
    ensemble_weights,
    step_seed,
)
from refinevla_bench.policies.adapters.octo_model import octo_source
from refinevla_bench.policies.conformance import check_policy
from refinevla_bench.policies.protocol import EpisodeKey, ObservationBatch
from refinevla_bench.policies.registry import create_policy

FloatArray = npt.NDArray[np.float64]

MEAN = [0.001, 0.002, -0.003, 0.01, -0.02, 0.03, 0.5]
STD = [0.01, 0.02, 0.03, 0.1, 0.2, 0.3, 0.5]
STATISTICS = {
    "bridge_dataset": {"mean": MEAN, "std": STD},
    "fractal20220817_data": {"mean": [0.0] * 7, "std": [1.0] * 7},
}
EPISODES = (EpisodeKey("carrot", 0, 11), EpisodeKey("carrot", 1, 12))


class FakeRunner:
    """Records what the policy sends; answers with queued chunks or seeded random ones."""

    def __init__(self, chunks: Sequence[FloatArray] = ()) -> None:
        self.queued = list(chunks)
        self.instructions: list[str] = []
        self.changed: list[tuple[int, str]] = []
        self.windows: list[list[HistoryWindow]] = []
        self.seeds: list[list[int]] = []

    def action_statistics(self) -> Mapping[str, Mapping[str, Sequence[float]]]:
        return STATISTICS

    def set_instructions(self, instructions: Sequence[str]) -> None:
        self.instructions = list(instructions)

    def set_instruction(self, row: int, instruction: str) -> None:
        self.instructions[row] = instruction
        self.changed.append((row, instruction))

    def sample(self, windows: Sequence[HistoryWindow], seeds: Sequence[int]) -> FloatArray:
        self.windows.append(list(windows))
        self.seeds.append(list(seeds))
        if self.queued:
            return self.queued.pop(0)
        # a row's chunk depends on its own newest frame and key only, as a real model's would
        return np.stack(
            [
                np.random.default_rng(seed).normal(scale=0.3, size=(4, 7))
                + window.frames[-1].mean() / 255.0
                for window, seed in zip(windows, seeds, strict=True)
            ]
        )


def observation(images: npt.NDArray[np.uint8], instructions: Sequence[str]) -> ObservationBatch:
    return ObservationBatch(
        images=images, instructions=tuple(instructions), episodes=EPISODES[: len(images)]
    )


def frames(value: int, rows: int = 2) -> npt.NDArray[np.uint8]:
    return np.full((rows, 256, 256, 3), value, dtype=np.uint8)


def test_ensemble_weights_oldest_first() -> None:
    """Upstream weighs the i-th oldest prediction by exp(-temp * i), normalised: with a positive
    temperature the newest prediction weighs least; temperature 0 is a plain mean."""
    assert ensemble_weights(3, 0.0) == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    total = 1 + math.exp(-0.5) + math.exp(-1.0)
    assert ensemble_weights(3, 0.5) == pytest.approx(
        [1 / total, math.exp(-0.5) / total, math.exp(-1.0) / total]
    )


def test_ensembling_averages_overlapping_chunk_predictions() -> None:
    """Step n averages what each of the last 4 chunks predicted for step n: the chunk made k
    steps ago supplies its action k. Chunk c holds 10c + i at index i, so the hand values are
    0; (1+10)/2; (2+11+20)/3; (3+12+21+30)/4; (13+22+31+40)/4 once the oldest drops out."""
    ensembler = ChunkEnsembler(horizon=4, temperature=0.0)
    ensembler.reset(1)
    outputs = []
    for chunk in range(5):
        values = 10.0 * chunk + np.arange(4)
        outputs.append(ensembler.push(np.repeat(values[None, :, None], 7, axis=2))[0, 0])
    assert outputs == pytest.approx([0.0, 5.5, 11.0, 16.5, 26.5])


def test_ensembling_temperature_favours_older_predictions() -> None:
    """At step 2 with temperature 1 the predictions 2 (oldest), 11, 20 (newest) weigh
    1, e^-1, e^-2 before normalising."""
    ensembler = ChunkEnsembler(horizon=4, temperature=1.0)
    ensembler.reset(1)
    for chunk in range(3):
        values = 10.0 * chunk + np.arange(4)
        result = ensembler.push(np.repeat(values[None, :, None], 7, axis=2))[0, 0]
    expected = (2 + 11 * math.exp(-1) + 20 * math.exp(-2)) / (1 + math.exp(-1) + math.exp(-2))
    assert result == pytest.approx(expected)


def test_ensembling_is_per_row_and_restarts_a_row() -> None:
    """Rows never mix; a restarted row forgets its earlier chunks."""
    ensembler = ChunkEnsembler(horizon=4, temperature=0.0)
    ensembler.reset(2)
    ensembler.push(np.stack([np.zeros((4, 7)), np.full((4, 7), 8.0)]))
    ensembler.reset_row(1)
    out = ensembler.push(np.stack([np.full((4, 7), 2.0), np.full((4, 7), 4.0)]))
    assert out[:, 0] == pytest.approx([1.0, 4.0])


def test_history_grows_to_two_frames_without_padding() -> None:
    """Upstream appends each frame to a 2-long history and feeds what it holds: one frame with
    pad mask [1.0] at an episode's first step, then [previous, current] with [1.0, 1.0]; the
    mask is float."""
    history = ImageHistory(window=2)
    history.reset(2)
    first = history.push(frames(1))
    assert first[0].frames.shape == (1, 256, 256, 3)
    assert first[0].pad_mask.dtype == np.float64
    assert first[0].pad_mask.tolist() == [1.0]
    second = history.push(frames(2))
    assert second[1].frames[:, 0, 0, 0].tolist() == [1, 2]
    assert second[1].pad_mask.tolist() == [1.0, 1.0]
    third = history.push(frames(3))
    assert third[0].frames[:, 0, 0, 0].tolist() == [2, 3]
    history.reset_row(0)
    fourth = history.push(frames(4))
    assert fourth[0].frames[:, 0, 0, 0].tolist() == [4]
    assert fourth[1].frames[:, 0, 0, 0].tolist() == [3, 4]


def test_key_schedule_is_fixed_per_episode_and_new_every_step() -> None:
    """Upstream draws a fresh jax key every step; here the key seed is a function of
    (policy seed, episode, step): equal across instances and resets, different every step,
    per episode rather than per row position."""
    first, second = KeySchedule(seed=2), KeySchedule(seed=2)
    first.reset(2)
    second.reset(2)
    steps = [first.next(EPISODES) for _ in range(3)]
    assert steps == [second.next(EPISODES) for _ in range(3)]
    assert steps[0] == [step_seed(2, EPISODES[0], 0), step_seed(2, EPISODES[1], 0)]
    row_zero = [seeds[0] for seeds in steps]
    assert len(set(row_zero)) == 3
    assert steps[0][0] != steps[0][1]
    assert all(0 <= seed < 2**31 for seeds in steps for seed in seeds)
    first.reset(2)
    assert first.next(EPISODES[::-1]) == steps[0][::-1]
    other = KeySchedule(seed=4)
    other.reset(2)
    assert other.next(EPISODES) != steps[0]


def test_key_schedule_without_episode_keys_tells_rows_apart() -> None:
    schedule = KeySchedule(seed=0)
    schedule.reset(2)
    seeds = schedule.next(())
    assert seeds[0] != seeds[1]


def test_unnormalisation_is_mean_std_on_every_dimension() -> None:
    """Upstream: action * std + mean on all 7 numbers. Statistics that record a mask keep the
    masked dimensions as produced, as octo's own sample_actions does."""
    z = np.array([[1.0, -1.0, 2.0, 0.5, -0.5, 0.0, 0.2]])
    plain = OctoActions(MeanStdStatistics.from_mapping({"mean": MEAN, "std": STD}, 7), None)
    plain.reset(1)
    expected = [0.011, -0.018, 0.057, 0.06, -0.12, 0.03]
    assert plain(z)[0, :6] == pytest.approx(expected)
    masked_stats: dict[str, Sequence[float]] = {
        "mean": MEAN,
        "std": STD,
        "mask": [True] * 6 + [False],
    }
    masked = OctoActions(MeanStdStatistics.from_mapping(masked_stats, 7), None)
    masked.reset(1)
    # openness 0.2 * 0.5 + 0.5 = 0.6 -> open; left as 0.2 -> closed
    assert plain(z)[0, 6] == 1.0
    assert masked(z)[0, 6] == -1.0


def test_widowx_gripper_is_absolute_open_above_one_half() -> None:
    """WidowX: 2 * (openness > 0.5) - 1, so exactly 0.5 closes."""
    actions = OctoActions(
        MeanStdStatistics.from_mapping({"mean": [0.0] * 7, "std": [1.0] * 7}, 7), None
    )
    actions.reset(4)
    normalized = np.zeros((4, 7))
    normalized[:, 6] = [0.0, 0.5, 0.5001, 1.0]
    assert actions(normalized)[:, 6].tolist() == [-1.0, -1.0, 1.0, 1.0]


def test_google_gripper_is_sticky_relative() -> None:
    """Google Robot: previous minus current openness (0 at the first step); a change above 0.5
    is repeated for 15 steps, then changes pass through again."""
    actions = OctoActions(
        MeanStdStatistics.from_mapping({"mean": [0.0] * 7, "std": [1.0] * 7}, 7), 15
    )
    actions.reset(1)
    openness = [1.0, 1.0, 0.0] + [0.0] * 14 + [0.2]
    commands = []
    for value in openness:
        normalized = np.zeros((1, 7))
        normalized[0, 6] = value
        commands.append(actions(normalized)[0, 6])
    assert commands[:3] == [0.0, 0.0, 1.0]
    assert commands[2:17] == [1.0] * 15
    assert commands[17] == pytest.approx(-0.2)


def test_roll_pitch_yaw_becomes_upstreams_axis_angle() -> None:
    """Octo emits roll/pitch/yaw; upstream sends euler2axangle(r, p, y) (static x-y-z). The
    harness conversion of the declared roll_pitch_yaw must give that axis-angle: checked with
    scipy's extrinsic "xyz" and by hand (Rz(90) Rx(90) cycles x->y->z: 120 deg about 1,1,1)."""
    policy = OctoPolicy.with_runner(FakeRunner())
    assert policy.conventions.rotation == "roll_pitch_yaw"
    rpy = np.array([[0.1, -0.2, 0.3], [math.pi / 2, 0.0, math.pi / 2], [0.0, 0.0, 0.25]])
    converted = convert_rotation(rpy, "roll_pitch_yaw", "axis_angle")
    assert converted == pytest.approx(Rotation.from_euler("xyz", rpy).as_rotvec())
    assert converted[1] == pytest.approx([2 * math.pi / 3 / math.sqrt(3)] * 3)
    assert converted[2] == pytest.approx([0.0, 0.0, 0.25])


def test_conventions_per_robot() -> None:
    """256x256 images resized with lanczos (upstream: TF lanczos3, antialiased); absolute gripper
    on WidowX, relative on Google Robot."""
    widowx = OctoPolicy.with_runner(FakeRunner(), robot="widowx").conventions
    google = OctoPolicy.with_runner(FakeRunner(), robot="google_robot").conventions
    assert (widowx.image_size, widowx.resize, widowx.gripper, widowx.robot) == (
        (256, 256),
        "lanczos",
        "absolute",
        "widowx",
    )
    assert (google.gripper, google.robot) == ("relative", "google_robot")
    assert OctoPolicy.conventions.robot is None


def test_statistics_key_per_robot() -> None:
    """bridge_dataset on WidowX, fractal20220817_data on Google Robot, or the one asked for."""
    assert OctoPolicy.with_runner(FakeRunner()).unnorm_key == "bridge_dataset"
    google = OctoPolicy.with_runner(FakeRunner(), robot="google_robot")
    assert google.unnorm_key == "fractal20220817_data"
    with pytest.raises(HarnessError, match="no statistics 'nope'"):
        OctoPolicy.with_runner(FakeRunner(), unnorm_key="nope")


def test_act_wires_history_keys_ensembling_and_unnormalisation() -> None:
    """Through act(): the runner gets each row's window and key seed; its chunks are ensembled
    then un-normalised with bridge_dataset's mean/std, and the gripper binarised."""
    chunk_a = np.tile(np.arange(4.0)[:, None] * 0.1, (1, 7))  # step 0 chunk: 0, .1, .2, .3
    chunk_b = np.full((4, 7), 1.0)
    runner = FakeRunner([np.stack([chunk_a, chunk_a]), np.stack([chunk_b, chunk_b])])
    policy = OctoPolicy.with_runner(runner, seed=4)
    policy.reset(["put carrot on plate", "put carrot on plate"])
    first = policy.act(observation(frames(1), ["put carrot on plate"] * 2))
    second = policy.act(observation(frames(2), ["put carrot on plate"] * 2))
    assert runner.instructions == ["put carrot on plate"] * 2
    assert [len(window.frames) for window in runner.windows[0]] == [1, 1]
    assert [len(window.frames) for window in runner.windows[1]] == [2, 2]
    assert runner.seeds[1] == [step_seed(4, EPISODES[0], 1), step_seed(4, EPISODES[1], 1)]
    # step 0: z = 0 -> the mean; step 1: z = (0.1 + 1.0) / 2 = 0.55
    assert first[0, :6] == pytest.approx(MEAN[:6])
    assert second[1, :6] == pytest.approx(
        [0.55 * s + m for s, m in zip(STD[:6], MEAN[:6], strict=True)]
    )
    assert first[0, 6] == -1.0  # 0 * 0.5 + 0.5 = 0.5 is not above 0.5
    assert second[0, 6] == 1.0  # 0.775 opens


def test_act_on_google_sends_sticky_relative_gripper_after_ensembling() -> None:
    """Google Robot: the ensembled openness 1, 1, 1/3 changes by 2/3 > 0.5 at step 2, which is
    held for 15 steps."""
    steps = [np.full((1, 4, 7), value) for value in (1.0, 1.0, -1.0, -1.0)]
    policy = OctoPolicy.with_runner(FakeRunner(steps), robot="google_robot")
    policy.reset(["open top drawer"])
    grippers = [
        policy.act(observation(frames(0, rows=1), ["open top drawer"]))[0, 6] for _ in steps
    ]
    assert grippers == pytest.approx([0.0, 0.0, 2 / 3, 2 / 3])


def test_new_instruction_restarts_that_rows_history() -> None:
    """Upstream resets its policy when the instruction changes: the row's window starts over
    and the runner gets the new task; the other row goes on."""
    runner = FakeRunner()
    policy = OctoPolicy.with_runner(runner)
    policy.reset(["open top drawer", "open top drawer"])
    policy.act(observation(frames(1), ["open top drawer"] * 2))
    policy.act(observation(frames(2), ["place apple into top drawer", "open top drawer"]))
    assert runner.changed == [(0, "place apple into top drawer")]
    assert [len(window.frames) for window in runner.windows[1]] == [1, 2]


def test_passes_conformance_with_a_fake_runner() -> None:
    """Deterministic per seed, rows independent of their batch, valid WidowX actions."""
    report = check_policy(lambda: OctoPolicy.with_runner(FakeRunner(), seed=2))
    assert report.passed, report.summary()


def test_constructing_without_jax_names_the_octo_environment() -> None:
    """Here jax is not installed: one line naming docker/families/octo."""
    with pytest.raises(HarnessError) as caught:
        OctoPolicy()
    line = caught.value.one_line()
    assert "docker/families/octo" in line
    assert "\n" not in line
    with pytest.raises(HarnessError) as through_registry:
        create_policy("octo", {"seed": "2"})
    assert "docker/families/octo" in through_registry.value.fix


def test_checkpoint_sources(tmp_path: Path) -> None:
    """A local directory is loaded as is; a hub id goes to load_pretrained as hf://org/name."""
    assert octo_source(str(tmp_path)) == str(tmp_path)
    assert octo_source("rail-berkeley/octo-small") == "hf://rail-berkeley/octo-small"
    assert octo_source("hf://rail-berkeley/octo-base") == "hf://rail-berkeley/octo-base"
    with pytest.raises(HarnessError):
        octo_source("./missing/octo")
