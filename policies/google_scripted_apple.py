"""The Google Robot expert's "put apple into closed top drawer", as one phase machine.

It opens the top drawer with `OpenDrawer`, pulling it well past the table top's front edge,
lifts the tool out of the drawer and asks for the next subtask (a `terminate` while the row's
`subtask` is 0: the runner then advances instead of ending the episode; upstream's env also
advances by itself after 100 steps). The apple lies on the cabinet's top a few centimetres
behind that edge, right above the open drawer, so the expert sweeps it off the edge towards
the robot and it drops onto the drawer's bottom: the tool comes down behind the apple and
pushes its middle along the drawer's axis. The expert does not carry the apple: grasped by
`PickPlace` (its gentle grip) or by a full-force close alike, the 0.2 kg sphere slipped out of
the fingers within the first 2 cm of the lift. An apple the sweep misses (still on the top
after the push) is swept again from where it now lies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from refinevla_bench.policies.google_scripted_drawer import DrawerFrame, OpenDrawer
from refinevla_bench.policies.google_scripted_motion import (
    UP,
    Command,
    FloatArray,
    Pose,
    Row,
    frame,
    pose_of,
    position_error,
)

APPLE_OPEN = 0.3  # pull the drawer this far open (success needs 0.05; the apple needs room)
TABLE_EDGE = -0.0275  # the table top's front edge, along the axis from the closed handle
SWEEP_TILT = math.radians(45.0)  # the tool below the horizontal (steeper: the wrist's limit)
BEHIND = 0.11  # the sweep starts with the TCP this far behind the apple's centre
HOVER = 0.12  # the tool travels this high above the apple's centre, and comes down there
PUSH_HEIGHT = 0.01  # the TCP this far above the apple's centre while sweeping: the tool's
# lowest corner then meets the apple's back just below its middle
PUSH_PAST = 0.05  # the sweep ends with the TCP this far past the table's edge
SWEEP_LEAD = 0.03  # metres ahead of the TCP along the sweep
DROPPED = 0.03  # an apple this far below where the sweep found it has left the top
NEAR = 0.015
VIA = 0.03


def sweep_tool(drawer: DrawerFrame) -> FloatArray:
    """Pointing down into the cabinet `SWEEP_TILT` below the horizontal, fingers closing
    across the drawer: the fingertips' underside faces the robot."""
    approach = -math.cos(SWEEP_TILT) * drawer.along - math.sin(SWEEP_TILT) * UP
    return frame(approach, np.cross(UP, drawer.along))


class ApplePhase(IntEnum):
    """The steps of the whole task, in order."""

    OPEN = 0  # open the top drawer (OpenDrawer)
    LEAVE = 1  # lift the tool out of the drawer; ask for the next subtask
    ABOVE = 2  # above the point behind the apple
    DOWN = 3  # down behind the apple
    SWEEP = 4  # push the apple off the table top's edge
    RETREAT = 5  # straight up
    HOLD = 6  # keep still: SimplerEnv scores the last step


TIMEOUTS = {
    ApplePhase.LEAVE: 10,
    ApplePhase.ABOVE: 30,
    ApplePhase.DOWN: 12,
    ApplePhase.SWEEP: 20,
    ApplePhase.RETREAT: 8,
}


@dataclass
class PlaceAppleInDrawer:
    """One row of "put apple into closed top drawer"."""

    opener: OpenDrawer = field(default_factory=lambda: OpenDrawer(target=APPLE_OPEN))
    phase: ApplePhase = ApplePhase.OPEN
    steps: int = 0
    anchor: Pose | None = None  # the end effector's pose when the current phase began
    apple: FloatArray = field(default_factory=lambda: np.zeros(3))  # where the sweep found it

    def command(self, row: Row) -> Command:
        tcp = pose_of(row, "tcp_pose")
        self._advance(row, tcp)
        self.steps += 1
        if self.phase == ApplePhase.OPEN:
            return self.opener.command(row)
        asking = self.phase == ApplePhase.LEAVE and float(row["subtask"]) < 1
        return Command(self._goal(row, tcp), 0.0, terminate=asking)

    def done(self) -> bool:
        return self.phase == ApplePhase.HOLD

    def enter(self, phase: ApplePhase, tcp: Pose) -> None:
        self.phase, self.steps, self.anchor = phase, 0, tcp

    def _behind(self, drawer: DrawerFrame, up: float) -> Pose:
        position = self.apple - BEHIND * drawer.along + up * UP
        return Pose(position, sweep_tool(drawer))

    def _risen(self) -> Pose:
        """Straight above where the phase began, at the travel height over the apple."""
        assert self.anchor is not None
        position = self.anchor.position.copy()
        position[2] = max(position[2], self.apple[2] + HOVER)
        return Pose(position, self.anchor.rotation)

    def _goal(self, row: Row, tcp: Pose) -> Pose:
        assert self.anchor is not None
        drawer = DrawerFrame.of(row)
        if self.phase in (ApplePhase.LEAVE, ApplePhase.RETREAT):
            return self._risen()
        if self.phase == ApplePhase.ABOVE:
            return self._behind(drawer, HOVER)
        if self.phase == ApplePhase.DOWN:
            return self._behind(drawer, PUSH_HEIGHT)
        if self.phase == ApplePhase.SWEEP:
            along, _ = drawer.coordinates(tcp.position)
            step = min(SWEEP_LEAD, TABLE_EDGE + PUSH_PAST - along)
            height = self.apple[2] + PUSH_HEIGHT
            position = tcp.position + step * drawer.along
            return Pose(np.array([position[0], position[1], height]), sweep_tool(drawer))
        return self.anchor

    def _advance(self, row: Row, tcp: Pose) -> None:
        phase = self.phase
        timed_out = self.steps >= TIMEOUTS.get(phase, 0)
        apple = pose_of(row, "source_pose").position
        if phase == ApplePhase.OPEN:
            if self.opener.done():
                self.apple = apple
                self.enter(ApplePhase.LEAVE, tcp)
            return
        arrived = position_error(tcp, self._goal(row, tcp)) < NEAR
        if phase == ApplePhase.LEAVE:
            if arrived or timed_out:
                self.enter(ApplePhase.ABOVE, tcp)
        elif phase == ApplePhase.ABOVE:
            if position_error(tcp, self._goal(row, tcp)) < VIA or timed_out:
                self.enter(ApplePhase.DOWN, tcp)
        elif phase == ApplePhase.DOWN:
            if arrived or timed_out:
                self.enter(ApplePhase.SWEEP, tcp)
        elif phase == ApplePhase.SWEEP:
            along, _ = DrawerFrame.of(row).coordinates(tcp.position)
            finished = along >= TABLE_EDGE + PUSH_PAST - NEAR
            if apple[2] < self.apple[2] - DROPPED or finished or timed_out:
                self.enter(ApplePhase.RETREAT, tcp)
        elif phase == ApplePhase.RETREAT and (arrived or timed_out):
            on_top = apple[2] > self.apple[2] - DROPPED
            if on_top:
                self.apple = apple
            self.enter(ApplePhase.ABOVE if on_top else ApplePhase.HOLD, tcp)
