"""The one conversion module, checked against scipy's independent rotation math."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from refinevla_bench.harness.actions import (
    PolicyOutputError,
    axis_angle_to_matrix,
    convert_rotation,
    matrix_to_axis_angle,
    matrix_to_euler_xyz,
    roll_pitch_yaw_to_matrix,
    to_controller_actions,
)
from refinevla_bench.policies.protocol import PolicyConventions

RNG = np.random.default_rng(7)
ROTATIONS = Rotation.random(500, random_state=3)


def test_axis_angle_matrix_matches_scipy() -> None:
    vectors = ROTATIONS.as_rotvec()
    np.testing.assert_allclose(axis_angle_to_matrix(vectors), ROTATIONS.as_matrix(), atol=1e-12)


def test_roll_pitch_yaw_is_static_xyz() -> None:
    angles = RNG.uniform(-np.pi, np.pi, size=(500, 3))
    expected = Rotation.from_euler("xyz", angles).as_matrix()
    np.testing.assert_allclose(roll_pitch_yaw_to_matrix(angles), expected, atol=1e-12)


def test_axis_angle_to_controller_euler_is_intrinsic_xyz() -> None:
    """ManiSkill3's controller rebuilds R = Rx Ry Rz from what we send: it must equal the input."""
    euler = convert_rotation(ROTATIONS.as_rotvec(), "axis_angle", "euler_xyz")
    rebuilt = Rotation.from_euler("XYZ", euler).as_matrix()
    np.testing.assert_allclose(rebuilt, ROTATIONS.as_matrix(), atol=1e-10)


def test_matrix_to_axis_angle_round_trips_including_pi_and_zero() -> None:
    special = np.array(
        [[np.pi, 0, 0], [0, np.pi / np.sqrt(2), -np.pi / np.sqrt(2)], [0, 0, 0], [1e-9, 0, 0]]
    )
    vectors = np.concatenate([ROTATIONS.as_rotvec(), special])
    mats = axis_angle_to_matrix(vectors)
    np.testing.assert_allclose(axis_angle_to_matrix(matrix_to_axis_angle(mats)), mats, atol=1e-8)


def test_gimbal_lock_euler_still_reproduces_rotation() -> None:
    locked = Rotation.from_euler("XYZ", [[0.4, np.pi / 2, -0.3], [-1.0, -np.pi / 2, 0.7]])
    euler = matrix_to_euler_xyz(locked.as_matrix())
    np.testing.assert_allclose(
        Rotation.from_euler("XYZ", euler).as_matrix(), locked.as_matrix(), atol=1e-9
    )


def test_controller_actions_keep_translation_and_gripper() -> None:
    actions = np.concatenate(
        [RNG.normal(size=(4, 3)), ROTATIONS.as_rotvec()[:4], [[1], [-1], [1], [-1]]], axis=1
    )
    out = to_controller_actions(
        actions, 4, PolicyConventions("axis_angle"), PolicyConventions("euler_xyz")
    )
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, :3], actions[:, :3], rtol=1e-6)
    np.testing.assert_array_equal(out[:, 6], actions[:, 6])


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.zeros((1, 6)), "shape"),
        (np.full((1, 7), np.nan), "NaN"),
        (np.full((1, 7), np.inf), "NaN or inf"),
        ([["a"] * 7], "not numeric"),
    ],
)
def test_invalid_actions_are_rejected(actions: object, message: str) -> None:
    with pytest.raises(PolicyOutputError, match=message):
        to_controller_actions(actions, 1, PolicyConventions(), PolicyConventions("euler_xyz"))


def test_gripper_mismatch_is_refused_not_guessed() -> None:
    with pytest.raises(PolicyOutputError, match="gripper"):
        to_controller_actions(
            np.zeros((1, 7)), 1, PolicyConventions(gripper="relative"), PolicyConventions()
        )
