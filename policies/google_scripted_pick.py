"""The Google Robot expert's pick (and optional place) of one object, as a phase machine.

Approach above the object with the gripper open and turned for the grasp, come down along the
approach axis, close, lift (or, sliding, keep the object on the table). Without a placement
the arm then holds the object up (pick coke can is scored on the lift). With one it carries
the object above the placement point, lowers it, opens, backs off upwards and keeps still
(SimplerEnv scores the last step). A close that grasps nothing, or an object that falls out,
opens the gripper and starts over from wherever the object now lies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from refinevla_bench.policies.google_scripted_grasp import (
    Grasp,
    across_long_axis,
    closes_across,
    top_grasp,
)
from refinevla_bench.policies.google_scripted_motion import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    UP,
    Command,
    FloatArray,
    Pose,
    Row,
    holding_grip,
    pose_of,
    position_error,
    rotation_error,
)


class Phase(IntEnum):
    """The steps of one pick (and place), in order."""

    APPROACH = 0  # above the object along the approach axis, gripper open, turned to grasp
    DESCEND = 1  # down the approach axis to the grasp pose
    CLOSE = 2  # close the gripper and wait for the fingers
    LIFT = 3  # straight up
    CARRY = 4  # above the placement point
    LOWER = 5  # down until the object is just above its resting height there
    RELEASE = 6  # open the gripper
    RETREAT = 7  # straight up, clear of the object
    HOLD = 8  # keep still: pick holds the object up, place has let it go
    REOPEN = 9  # a failed grasp: open and rise, then approach again


HOVER = 0.1  # approach point: this far back along the approach axis from the grasp
# and at most this high: above it, over the far table, the leaning gripper's inverse kinematics
# fails and the arm stops (seen reaching for a standing bottle)
APPROACH_CEILING = 0.97
LIFT_HEIGHT = 0.12  # end-effector rise after the close
RETREAT_HEIGHT = 0.1  # end-effector rise after the release
REOPEN_HEIGHT = 0.05
NEAR = 0.015  # metres: close enough to a waypoint to go on
AT_GRASP = 0.008  # metres: close enough to the grasp pose to close
ALIGNED = 0.1  # radians
CLOSE_STEPS = 6  # the fingers close fully in about 1.3 s (4 control steps)
STILL = 0.02  # closure change per step of fingers that have stopped
OPEN_STEPS = 3
RISEN = 0.02  # an object this much above where it lay at the close is in the hand
SLIPPED = 0.04  # a carried object this far from where the hand held it has fallen out
# give up waiting for a waypoint after this many steps (contacts can stop the arm short)
TIMEOUTS = {
    Phase.APPROACH: 30,
    Phase.DESCEND: 8,
    Phase.LIFT: 8,
    Phase.CARRY: 30,
    Phase.LOWER: 10,
    Phase.RETREAT: 6,
}


def fingers_stopped(closures: list[float]) -> bool:
    """The fingers (closure 0 open .. 1 closed, one value per CLOSE step) have closed on the
    object or all the way: they moved less than STILL in the last step, or time is up."""
    if len(closures) >= CLOSE_STEPS:
        return True
    return len(closures) >= 3 and abs(closures[-1] - closures[-2]) < STILL


HalfSize = Callable[[Row], FloatArray]
# where the object's centre should be when it is let go, or None to keep holding it up
Placement = Callable[[Row], FloatArray]


@dataclass
class PickPlace:
    """One row's pick of `source_pose` (model half extents from `half_size`), placed at
    `placement` when given."""

    half_size: HalfSize
    placement: Placement | None = None
    # slide the object along the table in the closed hand instead of carrying it: a standing
    # can held only by friction slips down out of a lift (the squeeze drops at every control
    # step) but stays upright and in the hand on the table
    slide: bool = False
    # turn the wrist to close across a lying can's axis (`across_long_axis`) instead of across
    # the lean: the coke-can pick of a can found lying. Not after a topple (the push lays the
    # can along the closing direction on purpose: turning there, the wrist roll met its limit
    # and the arm stalled) nor in move near (its grid was run with the grasp across the lean).
    across: bool = False
    phase: Phase = Phase.APPROACH
    steps: int = 0  # control steps spent in the current phase
    grasp: Grasp | None = None
    held: FloatArray = field(default_factory=lambda: np.zeros(3))  # tcp - source when grasped
    start_height: float = 0.0  # the object's height when the lift began
    anchor: Pose | None = None  # the end effector's pose when the current phase began
    closures: list[float] = field(default_factory=list)  # finger closure at each CLOSE step
    # hold with the steady squeeze: a pick (no placement) closed across the object's long axis.
    # Measured on the default texture's 25 can positions: lying cans closed across (vertical)
    # 6/25 with the full squeeze, 20/25 with the steady one; taken by their ends (horizontal)
    # 18/25 full, 6/25 steady, which is why the lying-can pick turns across them (`across`).
    # Move near keeps the full squeeze its grid was run with.
    light_hold: bool = False

    def enter(self, phase: Phase, tcp: Pose) -> None:
        self.phase, self.steps, self.anchor = phase, 0, tcp
        self.closures.clear()

    def command(self, row: Row) -> Command:
        tcp, source = pose_of(row, "tcp_pose"), pose_of(row, "source_pose")
        self._advance(row, tcp, source)
        self.steps += 1
        return Command(self._goal(tcp, source, row), self._gripper(row))

    def done(self) -> bool:
        return self.phase == Phase.HOLD

    def _gripper(self, row: Row) -> float:
        """Close fully and keep closing while holding, or hold with the steady squeeze
        (`holding_grip`) where that holds better (`light_hold`)."""
        holding = self.phase == Phase.HOLD and self.placement is None
        if self.light_hold and (Phase.LIFT <= self.phase <= Phase.LOWER or holding):
            return holding_grip(row)
        closed = Phase.CLOSE <= self.phase <= Phase.LOWER or holding
        return GRIPPER_CLOSE if closed else GRIPPER_OPEN

    def _grasp(self, row: Row, tcp: Pose, source: Pose) -> Grasp:
        if self.grasp is None or self.phase in (Phase.APPROACH, Phase.DESCEND):
            # the object can roll while the fingers come down around it: follow it
            half_size = self.half_size(row)
            grasp = top_grasp(source, half_size, tcp.rotation)
            if self.across:
                grasp = across_long_axis(grasp, source, half_size, tcp.rotation)
            self.grasp = grasp
        return self.grasp

    def _release_pose(self, row: Row, tcp: Pose, lowered: bool) -> Pose:
        """The end effector above the placement point (carry height, or lowered)."""
        assert self.placement is not None and self.anchor is not None
        spot = self.placement(row)
        hand = spot + self.held
        if not lowered:
            hand[2] = max(hand[2], self.anchor.position[2])
        return Pose(hand, tcp.rotation if self.grasp is None else self.grasp.pose.rotation)

    def _goal(self, tcp: Pose, source: Pose, row: Row) -> Pose:
        phase, anchor = self.phase, self.anchor
        assert anchor is not None
        grasp = self._grasp(row, tcp, source)
        if phase == Phase.APPROACH:
            rise = -grasp.pose.rotation[2, 2]  # height gained per metre backed off
            room = (APPROACH_CEILING - grasp.pose.position[2]) / rise
            return grasp.backed_off(float(np.clip(room, 0.02, HOVER)))
        if phase in (Phase.DESCEND, Phase.CLOSE):
            return grasp.pose
        if phase == Phase.LIFT:
            return anchor.moved((0.0 if self.slide else LIFT_HEIGHT) * UP)
        if phase == Phase.CARRY:
            return self._release_pose(row, tcp, lowered=False)
        if phase in (Phase.LOWER, Phase.RELEASE):
            return self._release_pose(row, tcp, lowered=True)
        if phase == Phase.RETREAT:
            return anchor.moved(RETREAT_HEIGHT * UP)
        if phase == Phase.REOPEN:
            return anchor.moved(REOPEN_HEIGHT * UP)
        return anchor  # HOLD: stay where the phase began (a zero delta lets the arm sag)

    def _advance(self, row: Row, tcp: Pose, source: Pose) -> None:
        if self.anchor is None:
            self.anchor = tcp
        goal = self._goal(tcp, source, row)
        arrived = position_error(tcp, goal) < NEAR
        aligned = rotation_error(tcp.rotation, goal.rotation) < ALIGNED
        timed_out = self.steps >= TIMEOUTS.get(self.phase, 0)
        phase = self.phase
        if phase == Phase.APPROACH:
            if (arrived and aligned) or timed_out:
                self.enter(Phase.DESCEND, tcp)
        elif phase == Phase.DESCEND:
            if position_error(tcp, goal) < AT_GRASP or timed_out:
                self.enter(Phase.CLOSE, tcp)
        elif phase == Phase.CLOSE:
            self.closures.append(1.0 - float(row["gripper_opening"]))
            if fingers_stopped(self.closures):
                self.start_height = float(source.position[2])
                self.held = tcp.position - source.position
                grasp = self._grasp(row, tcp, source)
                across = closes_across(grasp, source, self.half_size(row))
                self.light_hold = self.placement is None and across
                self.enter(Phase.LIFT, tcp)
        elif phase == Phase.LIFT:
            if arrived or timed_out:
                lifted = self.slide or not self._on_table(source)
                self.held = tcp.position - source.position  # settled in the hand by now
                following = Phase.CARRY if self.placement else Phase.HOLD
                self.enter(following if lifted else Phase.REOPEN, tcp)
        elif phase in (Phase.CARRY, Phase.LOWER):
            if self._slipped(tcp, source):
                self.enter(Phase.REOPEN, tcp)
            elif arrived or timed_out:
                self.enter(Phase(phase + 1), tcp)
        elif phase == Phase.RELEASE:
            if self.steps >= OPEN_STEPS:
                self.enter(Phase.RETREAT, tcp)
        elif phase == Phase.RETREAT:
            if arrived or timed_out:
                self.enter(Phase.HOLD, tcp)
        elif phase == Phase.HOLD:
            if self.placement is None and self._on_table(source):
                self.enter(Phase.REOPEN, tcp)
        elif phase == Phase.REOPEN and self.steps >= OPEN_STEPS:
            self.grasp = None
            self.enter(Phase.APPROACH, tcp)

    def _slipped(self, tcp: Pose, source: Pose) -> bool:
        """The carried object is no longer where the hand held it (lowering brings it back
        to the table's height, so height alone cannot tell)."""
        return float(np.linalg.norm(tcp.position - source.position - self.held)) > SLIPPED

    def _on_table(self, source: Pose) -> bool:
        """The object is (back) where it lay when the lift began: not in the hand."""
        return float(source.position[2]) - self.start_height < RISEN
