"""RT-1's output dictionary turned into 7-number actions, per robot, as SimplerEnv does it.

Facts from simpler_env/policies/rt1/rt1_model.py (simpler-env/SimplerEnv). The model emits
`world_vector` (3), `rotation_delta` (3), `gripper_closedness_action` (1; +1 close, -1 open)
and `terminate_episode` (a one-hot of 3; upstream ends the episode when its first entry is
positive).

Google Robot: no rescaling; the rotation is an axis-angle vector used as is; a gripper command
with magnitude below 0.01 is zeroed, the rest passed as is (the controller is relative with +1
close, like the model); translation and rotation are multiplied by `action_scale`.
WidowX: translation rescaled from [-1.75, 1.75] to [-0.05, 0.05] and rotation from [-1.4, 1.4]
to [-0.25, 0.25], both clipped; the rotation is roll/pitch/yaw; the gripper is negated (WidowX
+1 is open) and binarised to +1 when positive, else -1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.protocol import PolicyConventions, Robot

FloatArray = npt.NDArray[np.float64]

RT1_OUTPUT_KEYS = ("world_vector", "rotation_delta", "gripper_closedness_action")
TERMINATE_KEY = "terminate_episode"
WIDOWX_WORLD_BOUND = 1.75  # model units, mapped onto +-WIDOWX_WORLD_RANGE metres
WIDOWX_WORLD_RANGE = 0.05
WIDOWX_ROTATION_BOUND = 1.4  # model units, mapped onto +-WIDOWX_ROTATION_RANGE radians
WIDOWX_ROTATION_RANGE = 0.25
GOOGLE_GRIPPER_DEADBAND = 1e-2
_AXIS_EPS = 1e-6  # below this angle upstream substitutes the axis (0, 1, 0)


def rt1_conventions(robot: Robot | None) -> PolicyConventions:
    """Axis-angle and relative gripper on Google Robot, roll/pitch/yaw and absolute on WidowX.
    No image size: the runner resizes with padding itself, as upstream does."""
    if robot == "google_robot":
        return PolicyConventions(rotation="axis_angle", gripper="relative", robot=robot)
    return PolicyConventions(rotation="roll_pitch_yaw", gripper="absolute", robot=robot)


@dataclass(frozen=True)
class RT1Outputs:
    """One step's model outputs for a batch of rows."""

    world_vector: FloatArray  # (rows, 3)
    rotation_delta: FloatArray  # (rows, 3)
    gripper_closedness: FloatArray  # (rows,)
    terminate_episode: FloatArray  # (rows, k)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, npt.ArrayLike]) -> RT1Outputs:
        """From the runner's dictionary of per-row stacked arrays, checking the shapes."""
        missing = [key for key in (*RT1_OUTPUT_KEYS, TERMINATE_KEY) if key not in raw]
        if missing:
            raise ValueError(f"RT-1 outputs lack {', '.join(missing)}")
        world = _rows(raw, "world_vector", 3)
        rotation = _rows(raw, "rotation_delta", 3)
        gripper = _rows(raw, "gripper_closedness_action", 1)
        terminate = _rows(raw, TERMINATE_KEY, None)
        if len({len(world), len(rotation), len(gripper), len(terminate)}) != 1:
            raise ValueError("RT-1 outputs disagree on the number of rows")
        return cls(world, rotation, gripper[:, 0], terminate)


def _rows(raw: Mapping[str, npt.ArrayLike], key: str, width: int | None) -> FloatArray:
    """raw[key] as (rows, width); a 1-d array counts as one column."""
    array = np.asarray(raw[key], dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        raise ValueError(f"RT-1 {key} has shape {array.shape}, expected (rows, {width or 'k'})")
    return array


@dataclass(frozen=True)
class RT1Decoded:
    actions: FloatArray  # (rows, 7) in rt1_conventions(robot)
    terminate: npt.NDArray[np.bool_]  # (rows,): the model asked to end the episode


def rescale_with_bound(values: npt.ArrayLike, bound: float, target: float) -> FloatArray:
    """[-bound, bound] mapped linearly onto [-target, target], clipped to it."""
    array = np.asarray(values, dtype=np.float64)
    scaled = (array + bound) / (2.0 * bound) * (2.0 * target) - target
    clipped: FloatArray = np.clip(scaled, -target, target)
    return clipped


def _upstream_axis_angle(rotation: FloatArray) -> FloatArray:
    """Upstream's unit axis times angle; for angles up to 1e-6 the axis becomes (0, 1, 0)."""
    angles = np.linalg.norm(rotation, axis=1)
    fallback = np.column_stack([np.zeros_like(angles), angles, np.zeros_like(angles)])
    result: FloatArray = np.where((angles > _AXIS_EPS)[:, None], rotation, fallback)
    return result


def decode_google(outputs: RT1Outputs, action_scale: float = 1.0) -> FloatArray:
    gripper = np.where(
        np.abs(outputs.gripper_closedness) < GOOGLE_GRIPPER_DEADBAND,
        0.0,
        outputs.gripper_closedness,
    )
    actions: FloatArray = np.column_stack(
        [
            outputs.world_vector * action_scale,
            _upstream_axis_angle(outputs.rotation_delta) * action_scale,
            gripper,
        ]
    )
    return actions


def decode_widowx(outputs: RT1Outputs) -> FloatArray:
    opened = -outputs.gripper_closedness  # RT-1: +1 close; WidowX: +1 open
    actions: FloatArray = np.column_stack(
        [
            rescale_with_bound(outputs.world_vector, WIDOWX_WORLD_BOUND, WIDOWX_WORLD_RANGE),
            rescale_with_bound(
                outputs.rotation_delta, WIDOWX_ROTATION_BOUND, WIDOWX_ROTATION_RANGE
            ),
            np.where(opened > 0.0, 1.0, -1.0),
        ]
    )
    return actions


def decode(raw: Mapping[str, npt.ArrayLike], robot: Robot, action_scale: float) -> RT1Decoded:
    """Raw runner outputs -> actions in rt1_conventions(robot) and termination requests;
    `action_scale` applies on Google Robot (the policy refuses another value on WidowX)."""
    outputs = RT1Outputs.from_mapping(raw)
    if robot == "google_robot":
        actions = decode_google(outputs, action_scale)
    else:
        actions = decode_widowx(outputs)
    return RT1Decoded(actions, outputs.terminate_episode[:, 0] > 0)
