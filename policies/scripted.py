"""The `scripted` policy: a privileged pick-and-place expert for the WidowX tasks (on the
Google Robot suites it hands over to `google_scripted`).

It reads ground-truth object poses (`ObservationBatch.state`) but acts only through the action
interface a learned policy uses: base-frame translation deltas, an axis-angle rotation delta and
an absolute gripper command, converted by the harness like any other policy's output. If it
solves the tasks, the conventions, the controller and the success rules fit together.

Each episode runs a small phase machine (approach, descend, close, lift, carry, lower,
release, retreat, hold) with per-task grasp geometry; the task comes from the instruction. The
gripper points straight down and turns about the vertical so the fingers close across the
object's long axis. A grasp that lifts nothing, or an object that slips out on the way, sends
the episode back to the approach. After the release the arm holds still: SimplerEnv scores
success at the last step, so the object must be resting on the target then.

The controller moves a *target* pose by each delta and the arm follows that target with some
lag, so the expert integrates its own commands to know where the target is and steers the
target, never the lagging end effector, towards each goal (otherwise it would overshoot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.actions import axis_angle_to_matrix, matrix_to_axis_angle
from refinevla_bench.policies.adapters.robots import parse_robot
from refinevla_bench.policies.google_scripted import GoogleScriptedExpert
from refinevla_bench.policies.pose_math import clip_norm, quaternion_to_matrix
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    PRIVILEGED_STATE_KEYS,
    ObservationBatch,
    PolicyConventions,
)

FloatArray = npt.NDArray[np.float64]

MAX_TRANSLATION = 0.03  # metres per control step (0.2 s): 15 cm/s, a brisk but real arm speed
MAX_ROTATION = 0.25  # radians per control step
GRIPPER_OPEN = 1.0
GRIPPER_CLOSED = -1.0

# the gripper pointing straight down with its fingers opening along the base y axis: the
# end-effector link's x axis points down and its z axis forward (base +x), as at reset
_DOWN = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


class Phase(IntEnum):
    """The steps of one pick-and-place, in order."""

    APPROACH = 0  # above the source, gripper open and turned to the grasp yaw
    DESCEND = 1  # down to the grasp height
    CLOSE = 2  # close the gripper and wait for it
    LIFT = 3  # straight up, so the object does not drag
    CARRY = 4  # above the target
    LOWER = 5  # down until the object is just above the target
    RELEASE = 6  # open the gripper and wait for the object to drop
    RETREAT = 7  # straight up, clear of the object
    HOLD = 8  # keep still until the episode ends: success is scored at the last step


@dataclass(frozen=True)
class TaskPlan:
    """Per-task geometry of the grasp and the placement (heights in metres)."""

    grasp_height: float  # end-effector height above the source centre when closing
    # the model x axis is the long axis of the spoon, carrot and eggplant models
    grasp_along: float  # grasp point along the source's model x axis from its origin
    yaw_period: float  # the grasp's symmetry about the vertical: pi for long objects
    hover: float = 0.06  # approach height above the grasp pose
    carry_height: float = 0.06  # source bottom above the target top while carrying
    release_height: float = 0.01  # source bottom above the target top when opening
    retreat: float = 0.06  # how far up to move after the release


TASK_PLANS: Mapping[str, TaskPlan] = {
    # the spoon's origin is its thin neck, where it pivots out of the fingers: hold the handle
    "put the spoon on the towel": TaskPlan(grasp_height=0.01, grasp_along=0.025, yaw_period=np.pi),
    "put carrot on plate": TaskPlan(grasp_height=0.005, grasp_along=0.0, yaw_period=np.pi),
    # a cube's faces repeat every quarter turn
    "stack the green block on the yellow block": TaskPlan(
        grasp_height=0.005, grasp_along=0.0, yaw_period=np.pi / 2
    ),
    # out of the sink and over the basket's rim: carry higher
    "put eggplant into yellow basket": TaskPlan(
        grasp_height=0.005, grasp_along=0.0, yaw_period=np.pi, carry_height=0.1
    ),
}

# a phase gives up waiting for the arm after this many steps (contacts can stop it short)
_PHASE_TIMEOUT = 8
_GRIPPER_STEPS = 3  # steps for the fingers to close or open fully at 5 Hz
_POSITION_TOLERANCE = 0.008
# objects rock by a millimetre or so at rest: goals that follow them never hold exactly still
_TARGET_TOLERANCE = 0.003
_YAW_TOLERANCE = 0.1
# the grasp has failed when the object has not risen by this much at the end of the lift
_LIFTED = 0.02
# a held object that ends up this far from where the hand held it has fallen out
_SLIPPED = 0.03


def yaw_about_z(angle: float) -> FloatArray:
    """Rotation matrix of a turn by angle about the vertical."""
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def gripper_yaw(rotation: FloatArray) -> float:
    """Heading of the gripper's forward (end-effector z) axis in the base xy plane."""
    return float(np.arctan2(rotation[1, 2], rotation[0, 2]))


def object_yaw(rotation: FloatArray) -> float:
    """Heading of an object's long (model x) axis in the base xy plane."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def closest_equivalent(angle: float, reference: float, period: float) -> float:
    """The angle among angle + k * period that is nearest to reference."""
    return reference + float((angle - reference + period / 2) % period - period / 2)


@dataclass
class _Episode:
    """What the expert remembers about one parallel episode."""

    plan: TaskPlan
    phase: Phase = Phase.APPROACH
    phase_steps: int = 0
    target_position: FloatArray | None = None  # the controller's target, integrated
    target_rotation: FloatArray = field(default_factory=lambda: np.eye(3))
    grasp_yaw: float = 0.0
    lift_start: float = 0.0  # source height when the lift began
    hand_offset: FloatArray = field(default_factory=lambda: np.zeros(3))  # tcp - held source
    anchor: FloatArray = field(default_factory=lambda: np.zeros(3))  # target at phase entry

    def enter(self, phase: Phase) -> None:
        assert self.target_position is not None
        self.phase = phase
        self.phase_steps = 0
        self.anchor = self.target_position.copy()


@dataclass(frozen=True)
class _Scene:
    """One row of the privileged state, in the robot-base frame."""

    tcp: FloatArray
    tcp_rotation: FloatArray
    source: FloatArray
    source_rotation: FloatArray
    target: FloatArray
    source_half_height: float
    target_half_height: float
    grasped: bool


def _scene(state: Mapping[str, FloatArray], row: int) -> _Scene:
    return _Scene(
        tcp=state["tcp_pose"][row, :3],
        tcp_rotation=quaternion_to_matrix(state["tcp_pose"][row, 3:]),
        source=state["source_pose"][row, :3],
        source_rotation=quaternion_to_matrix(state["source_pose"][row, 3:]),
        target=state["target_pose"][row, :3],
        source_half_height=float(state["source_size"][row, 2]) / 2,
        target_half_height=float(state["target_size"][row, 2]) / 2,
        grasped=bool(state["source_grasped"][row] > 0.5),
    )


class ScriptedExpert:
    """Pick and place by a phase machine over privileged object poses, one per episode; on the
    Google Robot (`robot` option, set from the suite) the Google Robot expert plays instead."""

    conventions = PolicyConventions(rotation="axis_angle", gripper="absolute")
    privileged_state: ClassVar[bool] = True

    def __init__(self, robot: str | None = None) -> None:
        self._episodes: list[_Episode] = []
        self._google: GoogleScriptedExpert | None = None
        if robot is not None and parse_robot(robot) == "google_robot":
            self._google = GoogleScriptedExpert()
            self.conventions = GoogleScriptedExpert.conventions

    def reset(self, instructions: Sequence[str]) -> None:
        if self._google is not None:
            self._google.reset(instructions)
            return
        self._episodes = [_Episode(plan_for(instruction)) for instruction in instructions]

    def last_terminations(self) -> Sequence[bool] | None:
        """The Google Robot expert's terminate flags (the apple task's subtask switch)."""
        return None if self._google is None else self._google.last_terminations()

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        if self._google is not None:
            return self._google.act(observation)
        if len(self._episodes) != observation.batch_size:
            raise ValueError(
                f"reset() saw {len(self._episodes)} instructions, the batch has "
                f"{observation.batch_size} rows"
            )
        missing = [key for key in PRIVILEGED_STATE_KEYS if key not in observation.state]
        if missing:
            raise ValueError(f"observation lacks privileged state: {', '.join(missing)}")
        actions = np.zeros((observation.batch_size, ACTION_DIM))
        for row, episode in enumerate(self._episodes):
            actions[row] = _step(episode, _scene(observation.state, row))
        return actions


def plan_for(instruction: str) -> TaskPlan:
    """The task plan of an instruction, or an error naming the instructions this expert knows."""
    key = " ".join(instruction.lower().split())
    if key not in TASK_PLANS:
        known = "; ".join(f"'{name}'" for name in TASK_PLANS)
        raise ValueError(f"no scripted plan for '{instruction}' (known: {known})")
    return TASK_PLANS[key]


def _goal(episode: _Episode, scene: _Scene) -> FloatArray:
    """Where the end effector should go in the current phase."""
    plan = episode.plan
    along = scene.source_rotation[:, 0] * plan.grasp_along
    grasp = scene.source + np.array([along[0], along[1], plan.grasp_height])
    # the held object hangs where it was grasped: place the object, not the hand
    hand = episode.hand_offset
    place_bottom = scene.target[2] + scene.target_half_height
    hand_above_bottom = hand[2] + scene.source_half_height
    above_target = np.array(
        [
            scene.target[0] + hand[0],
            scene.target[1] + hand[1],
            place_bottom + plan.carry_height + hand_above_bottom,
        ]
    )
    up = np.array([0.0, 0.0, 1.0])
    phase = episode.phase
    goal: FloatArray
    if phase == Phase.APPROACH:
        goal = grasp + plan.hover * up
    elif phase in (Phase.DESCEND, Phase.CLOSE):
        goal = grasp
    elif phase == Phase.LIFT:
        goal = np.array([episode.anchor[0], episode.anchor[1], above_target[2]])
    elif phase == Phase.CARRY:
        goal = above_target
    elif phase in (Phase.LOWER, Phase.RELEASE):
        goal = above_target - (plan.carry_height - plan.release_height) * up
    elif phase == Phase.RETREAT:
        goal = episode.anchor + plan.retreat * up
    else:
        goal = episode.anchor
    return goal


def _step(episode: _Episode, scene: _Scene) -> FloatArray:
    """Advance the phase machine of one episode and return its action."""
    if episode.target_position is None:
        episode.target_position = scene.tcp.copy()
        episode.target_rotation = scene.tcp_rotation.copy()
    _advance(episode, scene)
    goal = _goal(episode, scene)
    translation = clip_norm(goal - episode.target_position, MAX_TRANSLATION)
    # one orientation for the whole episode: pointing down, fingers across the object
    wanted = yaw_about_z(episode.grasp_yaw) @ _DOWN
    turn = clip_norm(
        matrix_to_axis_angle((wanted @ episode.target_rotation.T)[None])[0], MAX_ROTATION
    )
    episode.target_position = episode.target_position + translation
    episode.target_rotation = axis_angle_to_matrix(turn[None])[0] @ episode.target_rotation
    episode.phase_steps += 1
    closed = Phase.CLOSE <= episode.phase <= Phase.LOWER
    gripper = GRIPPER_CLOSED if closed else GRIPPER_OPEN
    return np.concatenate([translation, turn, [gripper]])


def _advance(episode: _Episode, scene: _Scene) -> None:
    """Move to the next phase once the current one is done (or has waited long enough)."""
    assert episode.target_position is not None
    plan = episode.plan
    if episode.phase == Phase.APPROACH and episode.phase_steps == 0:
        # of the equivalent grasps, the one nearest the gripper's neutral heading
        episode.grasp_yaw = closest_equivalent(
            object_yaw(scene.source_rotation), 0.0, plan.yaw_period
        )
    holding = Phase.LIFT <= episode.phase <= Phase.LOWER
    if holding and scene.grasped:
        episode.hand_offset = scene.tcp - scene.source
    lifted = scene.source[2] - episode.lift_start >= _LIFTED
    slipped = float(np.linalg.norm(scene.tcp - scene.source - episode.hand_offset)) > _SLIPPED
    if episode.phase in (Phase.CARRY, Phase.LOWER) and slipped:
        # the object slipped out on the way: start over from where it fell
        episode.enter(Phase.APPROACH)
        return
    goal = _goal(episode, scene)
    target_there = float(np.linalg.norm(goal - episode.target_position)) < _TARGET_TOLERANCE
    hand_there = float(np.linalg.norm(goal - scene.tcp)) < _POSITION_TOLERANCE
    timed_out = episode.phase_steps >= _PHASE_TIMEOUT
    arrived = target_there and (hand_there or timed_out)
    yaw_error = abs(
        closest_equivalent(gripper_yaw(scene.tcp_rotation) - episode.grasp_yaw, 0.0, 2 * np.pi)
    )
    aligned = (
        float(np.linalg.norm(goal[:2] - scene.tcp[:2])) < _POSITION_TOLERANCE
        and yaw_error < _YAW_TOLERANCE
    )
    phase = episode.phase
    if phase == Phase.APPROACH:
        if target_there and ((hand_there and aligned) or timed_out):
            episode.enter(Phase.DESCEND)
    elif phase == Phase.DESCEND and target_there:
        # close only around the object: low enough (or stopped by it) and centred on it
        low = scene.tcp[2] - goal[2] < _POSITION_TOLERANCE
        if aligned and (low or timed_out):
            episode.enter(Phase.CLOSE)
        elif timed_out:
            episode.enter(Phase.APPROACH)
    elif phase == Phase.CLOSE:
        if episode.phase_steps >= _GRIPPER_STEPS:
            episode.lift_start = float(scene.source[2])
            episode.hand_offset = scene.tcp - scene.source
            episode.enter(Phase.LIFT)
    elif phase == Phase.LIFT:
        if arrived:
            episode.enter(Phase.CARRY if lifted else Phase.APPROACH)
    elif phase in (Phase.CARRY, Phase.LOWER):
        if arrived:
            episode.enter(Phase(phase + 1))
    elif phase == Phase.RELEASE:
        if episode.phase_steps >= _GRIPPER_STEPS:
            episode.enter(Phase.RETREAT)
    elif phase == Phase.RETREAT and target_there:
        episode.enter(Phase.HOLD)
