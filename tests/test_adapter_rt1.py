"""The RT-1 / RT-1-X adapters keep SimplerEnv's policy-side rules (simpler_env/policies/rt1/
rt1_model.py), checked on synthetic model output dictionaries; act() runs end to end around a
fake runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.spatial.transform import Rotation

from refinevla_bench.harness.actions import convert_rotation
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.rt1 import RT1Policy, RT1XPolicy
from refinevla_bench.policies.adapters.rt1_decoding import decode, rescale_with_bound
from refinevla_bench.policies.adapters.rt1_model import RT1_CONVERGED, saved_model_directory
from refinevla_bench.policies.conformance import check_policy
from refinevla_bench.policies.protocol import ObservationBatch, Robot
from refinevla_bench.policies.registry import create_policy

FloatArray = npt.NDArray[np.float64]


def outputs(
    world: npt.ArrayLike,
    rotation: npt.ArrayLike,
    gripper: npt.ArrayLike,
    terminate: npt.ArrayLike | None = None,
) -> dict[str, FloatArray]:
    rows = np.asarray(world).shape[0]
    return {
        "world_vector": np.asarray(world, dtype=np.float64),
        "rotation_delta": np.asarray(rotation, dtype=np.float64),
        "gripper_closedness_action": np.asarray(gripper, dtype=np.float64)[:, None],
        "terminate_episode": np.asarray(
            terminate if terminate is not None else [[0.0, 1.0, 0.0]] * rows
        ),
    }


class FakeRunner:
    """Records resets; answers each act() with queued outputs or ones made from the images."""

    def __init__(self, answers: Sequence[dict[str, FloatArray]] = ()) -> None:
        self.answers = list(answers)
        self.instructions: list[str] = []
        self.changed: list[tuple[int, str]] = []
        self.image_shapes: list[tuple[int, ...]] = []

    def reset(self, instructions: Sequence[str]) -> None:
        self.instructions = list(instructions)

    def reset_row(self, row: int, instruction: str) -> None:
        self.instructions[row] = instruction
        self.changed.append((row, instruction))

    def act(self, images: npt.NDArray[np.uint8]) -> Mapping[str, npt.ArrayLike]:
        self.image_shapes.append(images.shape)
        if self.answers:
            return self.answers.pop(0)
        level = images.reshape(len(images), -1).mean(axis=1) / 255.0
        return outputs(
            np.outer(level, [1.0, -0.5, 0.25]),
            np.outer(level, [0.3, 0.2, -0.1]),
            level * 2.0 - 1.0,
        )


def test_widowx_rescales_and_clips_translation() -> None:
    """WidowX: world_vector [-1.75, 1.75] -> [-0.05, 0.05] linearly, clipped beyond."""
    world = [[1.75, -1.75, 0.0], [0.875, -0.875, 3.0], [-10.0, 1.0, 1.8]]
    decoded = decode(outputs(world, [[0.0] * 3] * 3, [0.0] * 3), "widowx", 1.0)
    assert decoded.actions[:, :3] == pytest.approx(
        np.array([[0.05, -0.05, 0.0], [0.025, -0.025, 0.05], [-0.05, 1.0 / 35.0, 0.05]])
    )


def test_widowx_rescales_and_clips_rotation() -> None:
    """WidowX: rotation_delta [-1.4, 1.4] -> [-0.25, 0.25] linearly, clipped beyond; the result
    is roll/pitch/yaw."""
    rotation = [[1.4, -1.4, 0.7], [2.0, -2.0, 0.0]]
    decoded = decode(outputs([[0.0] * 3] * 2, rotation, [0.0] * 2), "widowx", 1.0)
    assert decoded.actions[:, 3:6] == pytest.approx(
        np.array([[0.25, -0.25, 0.125], [0.25, -0.25, 0.0]])
    )
    assert RT1Policy.with_runner(FakeRunner(), robot="widowx").conventions.rotation == (
        "roll_pitch_yaw"
    )


def test_rescale_with_bound_is_the_upstream_formula() -> None:
    """(x - low) / (high - low) * (max - min) + min, clipped to [min, max]."""
    values = np.array([-3.0, -1.0, 0.3, 1.0, 3.0])
    low, high, out_min, out_max = -1.0, 1.0, -0.5, 0.5
    expected = np.clip((values - low) / (high - low) * (out_max - out_min) + out_min, -0.5, 0.5)
    assert rescale_with_bound(values, 1.0, 0.5) == pytest.approx(expected)


def test_widowx_gripper_flips_to_absolute() -> None:
    """RT-1's +1 is close; WidowX's +1 is open: negate, then +1 when positive, else -1 (so an
    output of exactly 0 closes)."""
    closedness = [1.0, -1.0, 0.0, 0.3, -0.3]
    decoded = decode(outputs([[0.0] * 3] * 5, [[0.0] * 3] * 5, closedness), "widowx", 1.0)
    assert decoded.actions[:, 6].tolist() == [-1.0, 1.0, -1.0, -1.0, 1.0]


def test_google_gripper_passes_as_is_outside_the_deadband() -> None:
    """Google Robot's controller is relative with +1 close, like RT-1: passed unchanged, except
    magnitudes below 0.01 which upstream zeroes."""
    closedness = [0.7, -1.0, 0.005, -0.0099, 0.01]
    decoded = decode(outputs([[0.0] * 3] * 5, [[0.0] * 3] * 5, closedness), "google_robot", 1.0)
    assert decoded.actions[:, 6].tolist() == [0.7, -1.0, 0.0, 0.0, 0.01]
    policy = RT1Policy.with_runner(FakeRunner(), robot="google_robot")
    assert (policy.conventions.gripper, policy.conventions.rotation) == ("relative", "axis_angle")


def test_google_passes_translation_and_axis_angle_scaled() -> None:
    """Google Robot: no rescaling; translation and the axis-angle rotation are multiplied by
    action_scale; below 1e-6 rad upstream rebuilds the vector on the axis (0, 1, 0)."""
    world = [[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]]
    rotation = [[0.05, -0.1, 0.2], [0.0, 0.0, 4e-7]]
    decoded = decode(outputs(world, rotation, [0.0, 0.0]), "google_robot", 2.0)
    assert decoded.actions[0, :6] == pytest.approx([0.2, -0.4, 0.6, 0.1, -0.2, 0.4])
    assert decoded.actions[1, 3:6] == pytest.approx([0.0, 8e-7, 0.0], abs=1e-12)


@pytest.mark.parametrize("robot", ["widowx", "google_robot"])
def test_terminate_follows_the_first_one_hot_entry(robot: Robot) -> None:
    """Upstream ends the episode when terminate_episode[0] > 0."""
    decoded = decode(
        outputs([[0.0] * 3] * 3, [[0.0] * 3] * 3, [0.0] * 3, [[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
        robot,
        1.0,
    )
    assert decoded.terminate.tolist() == [True, False, False]


def test_malformed_outputs_are_rejected() -> None:
    raw = outputs([[0.0] * 3], [[0.0] * 3], [0.0])
    del raw["terminate_episode"]
    with pytest.raises(ValueError, match="terminate_episode"):
        decode(raw, "widowx", 1.0)
    with pytest.raises(ValueError, match="world_vector"):
        decode(outputs([[0.0] * 2], [[0.0] * 3], [0.0]), "widowx", 1.0)


def test_widowx_roll_pitch_yaw_becomes_upstreams_axis_angle() -> None:
    """Upstream converts WidowX rotations with euler2axangle(r, p, y) (static x-y-z); the harness
    conversion of the declared roll_pitch_yaw gives the same vector (scipy extrinsic "xyz")."""
    rpy = np.array([[0.25, -0.1, 0.2], [0.0, 0.25, 0.0]])
    converted = convert_rotation(rpy, "roll_pitch_yaw", "axis_angle")
    assert converted == pytest.approx(Rotation.from_euler("xyz", rpy).as_rotvec())
    assert converted[1] == pytest.approx([0.0, 0.25, 0.0])


def test_act_wires_runner_outputs_through_the_decoder() -> None:
    """act() decodes the runner's dictionary per robot and keeps the termination requests;
    images go to the runner at their native size (it pads and resizes as upstream)."""
    answer = outputs([[1.75, 0.0, -3.0]], [[0.7, 0.0, -1.4]], [1.0], [[1, 0, 0]])
    runner = FakeRunner([answer])
    policy = RT1XPolicy.with_runner(runner, robot="widowx")
    policy.reset(["put the spoon on the towel"])
    assert policy.last_terminations() is None
    images = np.zeros((1, 480, 640, 3), dtype=np.uint8)
    actions = policy.act(ObservationBatch(images, ("put the spoon on the towel",)))
    assert actions[0] == pytest.approx([0.05, 0.0, -0.05, 0.125, 0.0, -0.25, -1.0])
    assert policy.last_terminations() == (True,)
    assert runner.image_shapes == [(1, 480, 640, 3)]
    assert policy.conventions.image_size is None


def test_new_instruction_restarts_that_rows_state() -> None:
    """Upstream resets the policy state and embedding when the instruction changes."""
    runner = FakeRunner()
    policy = RT1Policy.with_runner(runner, robot="google_robot")
    policy.reset(["open top drawer", "open top drawer"])
    images = np.zeros((2, 512, 640, 3), dtype=np.uint8)
    policy.act(ObservationBatch(images, ("open top drawer", "open top drawer")))
    policy.act(ObservationBatch(images, ("open top drawer", "place apple into top drawer")))
    assert runner.changed == [(1, "place apple into top drawer")]


def test_action_scale_is_refused_on_widowx() -> None:
    """Upstream scales the axis-angle after converting roll/pitch/yaw; only 1.0 keeps that."""
    with pytest.raises(HarnessError, match="action_scale"):
        RT1Policy.with_runner(FakeRunner(), robot="widowx", action_scale=2.0)


def test_passes_conformance_with_a_fake_runner() -> None:
    report = check_policy(lambda: RT1Policy.with_runner(FakeRunner(), robot="widowx"))
    assert report.passed, report.summary()


@pytest.mark.parametrize("name", ["rt1", "rt1x"])
def test_constructing_without_tensorflow_names_the_rt1_environment(name: str) -> None:
    """Here tensorflow is not installed: one line naming docker/families/rt1 for both."""
    with pytest.raises(HarnessError) as caught:
        create_policy(name)
    assert "docker/families/rt1" in caught.value.fix
    assert "\n" not in caught.value.one_line()
    with pytest.raises(HarnessError):
        RT1XPolicy() if name == "rt1x" else RT1Policy()


def test_default_checkpoints_differ_only_by_name() -> None:
    """RT-1 (Converged) and RT-1-X load the released SavedModel directories."""
    assert RT1Policy.release.default_path == "checkpoints/rt_1_tf_trained_for_000400120"
    assert RT1XPolicy.release.default_path == "checkpoints/rt_1_x_tf_trained_for_002272480_step"


def test_checkpoint_must_be_a_local_directory(tmp_path: Path) -> None:
    """SavedModels are not on the hub: a missing directory names the release bucket and the
    gsutil command."""
    assert saved_model_directory(str(tmp_path), RT1_CONVERGED) == tmp_path
    with pytest.raises(HarnessError) as caught:
        saved_model_directory("google/rt-1", RT1XPolicy.release)
    fix = caught.value.fix
    assert "gs://gdm-robotics-open-x-embodiment/open_x_embodiment_and_rt_x_oss/" in fix
    assert "rt_1_x_tf_trained_for_002272480_step.zip" in fix
    assert "gsutil" in fix
