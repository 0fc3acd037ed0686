"""The Google Robot expert's pick of a standing can: tip it over sideways, then pick it lying.

The fingers hold a lying can by enclosure but a standing one only by friction, and friction
does not last: the relative gripper re-plans its finger targets from the measured position at
every control step, so the squeeze drops to almost nothing at the start of each step and a
standing can slides out during the lift (at best 5 of 9 standing cans came up, with the pads
9 cm below the top). Pushed over sideways, across the line from the shoulder, the can lies
along the gripper's closing direction, where the pick (not turned across: `PickPlace.across`
off) takes it by its ends (lying cans: 8 of 8; the VM grid 100 of 100). The push uses the
gripper as a blunt tool (`grip_command`): fingertips 3 cm below the can's top, from beside
it, through to beyond its axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from refinevla_bench.policies.google_scripted_grasp import (
    REACH_ORIGIN,
    footprint_radius,
    is_upright,
    leaning_rotation,
    vertical_half_extent,
)
from refinevla_bench.policies.google_scripted_motion import (
    GRIPPER_OPEN,
    UP,
    Command,
    FloatArray,
    Pose,
    Row,
    grip_command,
    pose_of,
    position_error,
    unit,
)
from refinevla_bench.policies.google_scripted_pick import APPROACH_CEILING, Phase, PickPlace

BELOW_TOP = 0.03  # the tool's tip this far below the object's top while pushing
SIDE_GAP = 0.05  # the push starts this far beside the object's footprint
THROUGH = 0.08  # and ends this far past its axis
ABOVE = 0.06  # the tool comes down to the push's start from this high (at most to the pick's
# APPROACH_CEILING: above it the arm's inverse kinematics fails and the arm stays stuck)
CLEAR = 0.08  # after the push the open gripper rises this much before the pick
NEAR = 0.02
AT_START = 0.015
SETTLE_STEPS = 2  # PUSH lasts at least this long once the object is down (it is still moving)
TIMEOUTS = {"above": 25, "down": 8, "push": 12, "clear": 3}


class TopplePhase(IntEnum):
    """The steps of tipping the object over, then the pick."""

    ABOVE = 0  # above the push's start, the tool shaped
    DOWN = 1  # down beside the object, at the push height
    PUSH = 2  # sideways through the object's top
    CLEAR = 3  # open the gripper and rise
    PICK = 4  # the ordinary pick of the now lying object


@dataclass(frozen=True)
class Push:
    """Where the push runs (base frame, at the push height) and the tool's rotation."""

    start: FloatArray
    end: FloatArray
    rotation: FloatArray

    @classmethod
    def of(cls, source: Pose, half_size: FloatArray, tcp: Pose) -> Push:
        """Across the line from the shoulder to the object (centre pose `source`, model-frame
        `half_size`), towards that line's side of the robot's centre (the arm reaches better
        there), in the pick's leaning tool pose."""
        centre = source.position
        radial = np.array([*(centre[:2] - REACH_ORIGIN), 0.0])
        lateral = unit(np.cross(UP, radial))
        direction = lateral if centre[1] < REACH_ORIGIN[1] else -lateral
        height = centre[2] + vertical_half_extent(source.rotation, half_size) - BELOW_TOP
        reach = footprint_radius(source.rotation, half_size) + SIDE_GAP
        start = centre - reach * direction
        end = centre + THROUGH * direction
        start[2] = end[2] = height
        return cls(start, end, leaning_rotation(centre, tcp.rotation))


@dataclass
class ToppleThenPick:
    """One row's tipping over of its upright source, then `pick` of it lying."""

    pick: PickPlace
    phase: TopplePhase = TopplePhase.ABOVE
    steps: int = 0  # control steps in the current phase
    age: int = 0  # control steps since the start
    push: Push | None = None
    anchor: Pose | None = None  # the end effector's pose when the current phase began

    def command(self, row: Row) -> Command:
        tcp = pose_of(row, "tcp_pose")
        if self.push is None:
            self.push = Push.of(pose_of(row, "source_pose"), self.pick.half_size(row), tcp)
        self._advance(row, tcp, self.push)
        if self.phase == TopplePhase.PICK:
            return self.pick.command(row)
        if self.phase == TopplePhase.CLEAR:
            assert self.anchor is not None
            command = Command(self.anchor.moved(CLEAR * UP), GRIPPER_OPEN)
        else:
            goal = Pose(self._target(self.push), self.push.rotation)
            command = Command(goal, grip_command(self.age))
        self.steps += 1
        self.age += 1
        return command

    def done(self) -> bool:
        return self.phase == TopplePhase.PICK and self.pick.done()

    def _target(self, push: Push) -> FloatArray:
        if self.phase == TopplePhase.ABOVE:
            above = push.start + ABOVE * UP
            above[2] = min(above[2], max(push.start[2], APPROACH_CEILING))
            return above
        return push.start if self.phase == TopplePhase.DOWN else push.end

    def _enter(self, phase: TopplePhase, tcp: Pose) -> None:
        self.phase, self.steps, self.anchor = phase, 0, tcp
        if phase == TopplePhase.PICK:
            self.pick.enter(Phase.APPROACH, tcp)

    def _advance(self, row: Row, tcp: Pose, push: Push) -> None:
        phase = self.phase
        timed_out = self.steps >= TIMEOUTS.get(phase.name.lower(), 0)
        if phase == TopplePhase.ABOVE:
            if position_error(tcp, Pose(self._target(push), push.rotation)) < NEAR or timed_out:
                self._enter(TopplePhase.DOWN, tcp)
        elif phase == TopplePhase.DOWN:
            if position_error(tcp, Pose(push.start, push.rotation)) < AT_START or timed_out:
                self._enter(TopplePhase.PUSH, tcp)
        elif phase == TopplePhase.PUSH:
            source = pose_of(row, "source_pose")
            down = not is_upright(source.rotation, self.pick.half_size(row))
            if (down and self.steps >= SETTLE_STEPS) or timed_out:
                self._enter(TopplePhase.CLEAR, tcp)
        elif phase == TopplePhase.CLEAR and timed_out:
            self._enter(TopplePhase.PICK, tcp)
