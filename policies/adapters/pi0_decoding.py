"""pi0's side of the evaluation in numpy: the state vector it conditions on, and its normalised
action chunks turned into one harness action per step.

transformers' PI0Processor normalises state and actions as (x - mean) / (std + 1e-8) with the
statistics saved in the checkpoint's processor_config.json and zero-pads them to
`max_state_dim`; the model samples a chunk of normalised actions. SimplerEnv's pi0 evaluation
(simpler_env/policies/lerobotpi/pi0_or_fast.py) executes the first `exec_horizon` (4) actions of
each chunk before asking again, reads [dx, dy, dz, droll, dpitch, dyaw, openness (1 open)],
binarises the openness at 0.5 on WidowX and sends sticky relative commands on Google Robot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.choices import one_of
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.gripper import (
    StickyRelativeGripper,
    absolute_from_openness,
)
from refinevla_bench.policies.adapters.normalization import (
    MeanStdStatistics,
    unnormalize_mean_std,
)
from refinevla_bench.policies.protocol import ACTION_DIM, Robot

FloatArray = npt.NDArray[np.float64]

NORMALIZATION_EPSILON = 1e-8  # PI0Processor.normalize divides by std + 1e-8

StateEncoding = Literal["none", "pos_rpy_gripper", "bridge_pos_euler", "fractal_pos_quat"]
STATE_ENCODINGS: tuple[StateEncoding, ...] = (
    "none",  # the model sees a zero state
    "pos_rpy_gripper",  # tcp xyz, static-xyz roll/pitch/yaw of its quaternion, openness
    "bridge_pos_euler",  # SimplerEnv's pi0 on WidowX: rpy in Bridge's top-down frame, 0, openness
    "fractal_pos_quat",  # SimplerEnv's pi0 on Google Robot: xyz, quaternion xyzw, closedness
)
STATE_DIMS: dict[StateEncoding, int] = {
    "none": 0,
    "pos_rpy_gripper": 7,
    "bridge_pos_euler": 8,
    "fractal_pos_quat": 8,
}
# Bridge's end-effector rotations are relative to a top-down pose (bridge_data_robot's
# widowx_controller.py); SimplerEnv's pi0 and open-pi-zero apply it before taking the angles.
BRIDGE_DEFAULT_ROTATION = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def parse_state_encoding(text: str) -> StateEncoding:
    return one_of(text, STATE_ENCODINGS, "--policy-arg state")


@dataclass(frozen=True)
class Pi0Statistics:
    """The processor's dataset statistics: actions always, state unless the model sees none."""

    actions: MeanStdStatistics  # the first ACTION_DIM dimensions
    state_mean: FloatArray | None
    state_std: FloatArray | None

    @classmethod
    def from_processor_config(cls, config: Mapping[str, object], checkpoint: str) -> Pi0Statistics:
        mean = _vector(config, "actions_mean", checkpoint)
        std = _vector(config, "actions_std", checkpoint)
        if mean is None or std is None:
            raise HarnessError(
                f"checkpoint {checkpoint} has no actions_mean/actions_std in its "
                "processor_config.json, so its actions cannot be un-normalised",
                "save the PI0Processor built with the training data's statistics beside the "
                "model (processor.save_pretrained(CHECKPOINT))",
            )
        if mean.shape != std.shape or mean.shape[0] < ACTION_DIM:
            raise HarnessError(
                f"checkpoint {checkpoint} has action statistics of {mean.shape[0]} and "
                f"{std.shape[0]} dimensions; pi0 on SimplerEnv needs {ACTION_DIM}",
                "use a checkpoint fine-tuned on 7-dimensional actions (xyz, rpy, gripper)",
            )
        actions = MeanStdStatistics(
            mean[:ACTION_DIM], std[:ACTION_DIM], np.ones(ACTION_DIM, dtype=bool)
        )
        state_mean = _vector(config, "state_mean", checkpoint)
        state_std = _vector(config, "state_std", checkpoint)
        return cls(actions, state_mean, state_std)

    def check_state(self, encoding: StateEncoding, checkpoint: str, max_state_dim: int) -> None:
        """Refuse a state encoding the checkpoint's statistics or model do not take."""
        wanted = STATE_DIMS[encoding]
        if wanted == 0:
            return
        if wanted > max_state_dim:
            raise HarnessError(
                f"state={encoding} has {wanted} numbers, checkpoint {checkpoint} takes at most "
                f"{max_state_dim}",
                "pass --policy-arg state=none",
            )
        if self.state_mean is None or self.state_std is None:
            raise HarnessError(
                f"checkpoint {checkpoint} has no state_mean/state_std in its processor_config.json",
                "pass --policy-arg state=none, or save the processor with its state statistics",
            )
        sizes = {self.state_mean.shape[0], self.state_std.shape[0]}
        if sizes != {wanted}:
            raise HarnessError(
                f"state={encoding} has {wanted} numbers but checkpoint {checkpoint}'s state "
                f"statistics have {' and '.join(map(str, sorted(sizes)))}",
                "pass the --policy-arg state=... the checkpoint was trained with: "
                + ", ".join(f"{name} ({dims})" for name, dims in STATE_DIMS.items()),
            )


def _vector(config: Mapping[str, object], key: str, checkpoint: str) -> FloatArray | None:
    value = config.get(key)
    if value is None:
        return None
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise HarnessError(
            f"checkpoint {checkpoint}: processor_config.json '{key}' is not a list of numbers",
            "use the processor_config.json saved with the checkpoint",
        ) from error
    if vector.ndim != 1:
        raise HarnessError(
            f"checkpoint {checkpoint}: processor_config.json '{key}' has shape {vector.shape}",
            "use the processor_config.json saved with the checkpoint",
        )
    return vector


def rpy_from_rotation(matrices: npt.ArrayLike) -> FloatArray:
    """(batch, 3, 3) -> static-xyz roll, pitch, yaw with R = Rz(yaw) Ry(pitch) Rx(roll)."""
    r = np.asarray(matrices, dtype=np.float64)
    cos_pitch = np.hypot(r[:, 0, 0], r[:, 1, 0])
    regular = cos_pitch > 1e-9
    roll = np.where(
        regular, np.arctan2(r[:, 2, 1], r[:, 2, 2]), np.arctan2(-r[:, 1, 2], r[:, 1, 1])
    )
    pitch = np.arctan2(-r[:, 2, 0], cos_pitch)
    yaw = np.where(regular, np.arctan2(r[:, 1, 0], r[:, 0, 0]), 0.0)
    result: FloatArray = np.stack([roll, pitch, yaw], axis=1)
    return result


def rotation_from_quaternion(wxyz: npt.ArrayLike) -> FloatArray:
    """(batch, 4) quaternions (w, x, y, z), normalised here, -> (batch, 3, 3) matrices."""
    q = np.asarray(wxyz, dtype=np.float64)
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    result: FloatArray = np.stack([np.stack(row, axis=1) for row in rows], axis=1)
    return result


def state_vector(
    proprio: Mapping[str, npt.NDArray[np.float64]], encoding: StateEncoding
) -> FloatArray:
    """The raw (un-normalised) state the checkpoint was trained on, one row per episode."""
    pose = np.asarray(proprio["tcp_pose"], dtype=np.float64)
    opening = np.asarray(proprio["gripper_opening"], dtype=np.float64).reshape(-1, 1)
    position, quaternion = pose[:, :3], pose[:, 3:7]
    if encoding == "pos_rpy_gripper":
        rpy = rpy_from_rotation(rotation_from_quaternion(quaternion))
        return np.concatenate([position, rpy, opening], axis=1)
    if encoding == "bridge_pos_euler":
        top_down = rotation_from_quaternion(quaternion) @ BRIDGE_DEFAULT_ROTATION.T
        pad = np.zeros_like(opening)
        return np.concatenate([position, rpy_from_rotation(top_down), pad, opening], axis=1)
    if encoding == "fractal_pos_quat":
        xyzw = np.roll(quaternion, -1, axis=1)
        return np.concatenate([position, xyzw, 1.0 - opening], axis=1)
    raise ValueError(f"state={encoding} has no state vector")


def model_state(
    proprio: Mapping[str, npt.NDArray[np.float64]],
    encoding: StateEncoding,
    statistics: Pi0Statistics,
    shape: tuple[int, int],
) -> FloatArray:
    """(batch, max_state_dim) = `shape`: the state normalised as PI0Processor does and
    zero-padded; all zeros for `none`."""
    padded = np.zeros(shape)
    if encoding == "none":
        return padded
    if statistics.state_mean is None or statistics.state_std is None:
        raise ValueError(f"state={encoding} needs state statistics: call check_state first")
    raw = state_vector(proprio, encoding)
    normalized = (raw - statistics.state_mean) / (statistics.state_std + NORMALIZATION_EPSILON)
    padded[:, : raw.shape[1]] = normalized
    return padded


def check_action_horizon(horizon: int, chunk_size: int) -> None:
    if not 1 <= horizon <= chunk_size:
        raise HarnessError(
            f"action_horizon={horizon} is outside 1..{chunk_size} (the model's chunk size)",
            f"pass --policy-arg action_horizon=N with 1 <= N <= {chunk_size}",
        )


class Pi0ActionDecoder:
    """Per-row queues of un-normalised actions, and the robot's gripper handling.

    Each row asks the model again once it has executed `horizon` actions of its last chunk;
    rows are independent, so a row refilled at another step than its neighbours keeps its own
    schedule. Row i of every batch is the same episode between two `reset` calls.
    """

    def __init__(self, horizon: int, robot: Robot, statistics: MeanStdStatistics) -> None:
        if horizon < 1:
            raise ValueError(f"the action horizon must be at least 1, got {horizon}")
        self.horizon = horizon
        self.robot = robot
        self.statistics = statistics
        self._queues: list[list[FloatArray]] = []
        self._sticky = StickyRelativeGripper()

    @property
    def rows(self) -> int:
        return len(self._queues)

    def reset(self, rows: int) -> None:
        self._queues = [[] for _ in range(rows)]
        self._sticky.reset(rows)

    def empty_rows(self) -> list[int]:
        """The rows that need a new chunk before the next step."""
        return [row for row, queue in enumerate(self._queues) if not queue]

    def add_chunks(self, rows: Sequence[int], normalized: npt.ArrayLike) -> None:
        """(len(rows), chunk, dims >= 7) normalised model outputs for `rows`; keeps each
        row's first `horizon` actions, un-normalised."""
        chunks = np.asarray(normalized, dtype=np.float64)
        if chunks.ndim != 3 or chunks.shape[0] != len(rows) or chunks.shape[2] < ACTION_DIM:
            raise ValueError(f"chunks of shape {chunks.shape} for {len(rows)} rows")
        if chunks.shape[1] < self.horizon:
            raise ValueError(f"a chunk of {chunks.shape[1]} is shorter than {self.horizon}")
        actions = unnormalize_mean_std(chunks[:, : self.horizon, :ACTION_DIM], self.statistics)
        for row, row_actions in zip(rows, actions, strict=True):
            self._queues[row] = list(row_actions)

    def next_actions(self) -> FloatArray:
        """(rows, 7) in the declared conventions: the gripper as the robot's controller takes
        it (absolute on WidowX, sticky relative on Google Robot)."""
        empty = self.empty_rows()
        if empty:
            raise ValueError(f"rows {empty} have no queued action: add their chunks first")
        actions = np.stack([queue.pop(0) for queue in self._queues])
        openness = actions[:, 6].copy()  # the sticky gripper keeps it as the previous value
        if self.robot == "widowx":
            actions[:, 6] = absolute_from_openness(openness)
        else:
            actions[:, 6] = self._sticky(openness)
        return actions
