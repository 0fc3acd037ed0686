"""The Google Robot expert's drawer opening and closing, as phase machines.

Upstream's cabinet gives the handles no collision, so nothing can grasp them. The expert opens a
drawer by hooking its front panel instead: between the panel's top edge and the panel (or
table top) above it is a slot about 10 cm high, and behind the panel the drawer is open from
above. The almost closed fingers form a blunt tool that slides down into that slot along its
own axis, tilted `TILT` below the horizontal (steeper and the gripper's body hits the panel
above, flatter and the arm cannot reach the bottom drawer), until the fingertips hang about
4 cm below the panel's top edge behind it. Pulling back along the drawer's axis while pressing
down drags the drawer open: pressing keeps the slanted fingers from riding up over the edge.
Closing pushes the panel's face with the same tool. Both work a little to the side of the
handle, towards the shoulder, where the arm reaches lower and farther. The fingertips stay
2 cm apart: fully closed fingers press on each other and the arm then tracks its targets
erratically (seen in the simulator).

Coordinates: a drawer point is (along, up) metres from the handle's grip point of the CLOSED
drawer, `along` in the opening direction, `up` vertical (the cabinet's `mk_station*` URDF: the
panel's front face 3 cm and its back face 4.5 cm behind the handle bar, its top edge 5 cm above
it, the panel or table top above it 15.5 cm above it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from refinevla_bench.policies.google_scripted_grasp import REACH_ORIGIN
from refinevla_bench.policies.google_scripted_motion import (
    UP,
    Command,
    FloatArray,
    Pose,
    Row,
    frame,
    grip_command,
    position_error,
    rotation_error,
    unit,
)

TILT = math.radians(35.0)  # the tool's axis below the horizontal, pointing into the cabinet
PUSH_TILT = math.radians(55.0)  # the same while closing: at 35 degrees the arm cannot reach the
# face of an open bottom drawer near the robot (it folds and flails); steeper reaches it
PANEL_FRONT = -0.03  # the panel's front face, along the opening axis from the handle bar
HOOK = (-0.13, 0.0345)  # the TCP when hooked: 8.5 cm behind the panel, tips 4 cm below its top
INSERT_FROM = 0.2  # the slide into the slot starts this far back along the tool's axis
INSERT_LEAD = 0.04  # metres ahead of the TCP along the slide (its speed)
PULL_LEAD = 0.04  # metres ahead of the TCP along the opening axis while pulling
PUSH_LEAD = 0.04  # metres ahead of the TCP into the cabinet while pushing
PRESS = 0.02  # the pull aims this far below the hook height
SIDE_REACH = 0.2  # work at most this far along the panel from the handle, towards the shoulder
OPEN_TARGET = 0.28  # pull the drawer this far open (success: 0.15)
OPEN_ENOUGH = 0.18  # a pull that ran out of time short of this hooks the panel again
SLIPPED = 0.06  # the TCP this far ahead of where it hooked the panel: the hook came off
PUSH_HEIGHT = 0.02  # the TCP's height while pushing a drawer closed
PUSH_OVER = 0.015  # push the TCP this far past the closed panel's front face
TOOL_REACH = 0.013  # the tool's farthest point lies this far beyond the TCP, along the axis
STANDOFF = 0.08  # the closing push starts this far in front of the panel's face
ABOVE = 0.1  # and comes down to it from this high
CLOSED = 0.005  # a drawer at most this open is closed
REOPEN = 0.03  # a closed drawer that drifts this far open is pushed again
NEAR = 0.015
VIA = 0.04  # looser tolerance for the via point above the closing stand-off
ALIGNED = 0.1  # radians
STALL_STEPS = 4  # an INSERT that got no closer over this many steps has gone as far as it can
STALL = 0.003


@dataclass(frozen=True)
class DrawerFrame:
    """The task drawer in the robot-base frame: the closed drawer's handle grip point moved
    along the panel towards the shoulder (`origin`), the horizontal opening direction and the
    drawer's opening (m)."""

    origin: FloatArray
    along: FloatArray
    qpos: float

    @classmethod
    def of(cls, row: Row) -> DrawerFrame:
        axis = np.asarray(row["drawer_axis"], dtype=np.float64)
        along = unit(axis - (axis @ UP) * UP)
        qpos = float(row["drawer_qpos"])
        handle = np.asarray(row["handle_pose"][:3], dtype=np.float64) - qpos * along
        lateral = np.cross(UP, along)
        side = float(np.clip((REACH_ORIGIN - handle[:2]) @ lateral[:2], -SIDE_REACH, SIDE_REACH))
        return cls(handle + side * lateral, along, qpos)

    def point(self, along: float, up: float) -> FloatArray:
        position: FloatArray = self.origin + along * self.along + up * UP
        return position

    def coordinates(self, position: FloatArray) -> tuple[float, float]:
        offset = position - self.origin
        return float(offset @ self.along), float(offset @ UP)

    def tool(self, tilt: float = TILT) -> FloatArray:
        """The end effector's rotation: pointing into the cabinet `tilt` below the
        horizontal, the fingers closing across the drawer (the in-plane side is the thin one)."""
        approach = -math.cos(tilt) * self.along - math.sin(tilt) * UP
        return frame(approach, np.cross(UP, self.along))

    def pose(self, along: float, up: float, tilt: float = TILT) -> Pose:
        return Pose(self.point(along, up), self.tool(tilt))


def slide(tcp: FloatArray, start: FloatArray, end: FloatArray, lead: float) -> FloatArray:
    """A goal on the segment start-end `lead` ahead of the TCP's projection, nearer when the
    TCP is off the segment, so the tool moves along the segment instead of cutting corners."""
    length = float(np.linalg.norm(end - start))
    direction = (end - start) / length
    projected = float(np.clip((tcp - start) @ direction, 0.0, length))
    off = float(np.linalg.norm(tcp - (start + projected * direction)))
    ahead = max(0.0, lead - 2.0 * off)
    goal: FloatArray = start + min(length, projected + ahead) * direction
    return goal


@dataclass
class ToolMachine:
    """What the open and close machines share: each step shapes the tool (`grip_command`),
    advances the phase and steers the tool to the phase's goal."""

    steps: int = 0  # control steps in the current phase
    age: int = 0  # control steps since the start

    def command(self, row: Row) -> Command:
        tcp, drawer = Pose.of(row["tcp_pose"]), DrawerFrame.of(row)
        self._advance(tcp, drawer)
        goal = self._goal(tcp, drawer)
        gripper = grip_command(self.age)
        self.steps += 1
        self.age += 1
        return Command(goal, gripper)

    def _advance(self, tcp: Pose, drawer: DrawerFrame) -> None:
        raise NotImplementedError

    def _goal(self, tcp: Pose, drawer: DrawerFrame) -> Pose:
        raise NotImplementedError


class OpenPhase(IntEnum):
    """The steps of opening a drawer, in order."""

    REACH = 0  # the start of the slide, in front of and above the panel, the tool shaped
    INSERT = 1  # slide along the tool's axis into the slot behind the panel
    PULL = 2  # back along the opening axis, pressing down
    HOLD = 3  # keep still: SimplerEnv scores the last step


OPEN_TIMEOUTS = {OpenPhase.REACH: 40, OpenPhase.INSERT: 20, OpenPhase.PULL: 45}


@dataclass
class OpenDrawer(ToolMachine):
    """One row's opening of the task drawer to `target` (m); a hook that comes off the panel
    starts over from the drawer's new position."""

    target: float = OPEN_TARGET
    phase: OpenPhase = OpenPhase.REACH
    errors: tuple[float, ...] = ()  # INSERT's recent distances to the hook point
    anchor: Pose | None = None  # the end effector's pose when HOLD began

    def done(self) -> bool:
        return self.phase == OpenPhase.HOLD

    def enter(self, phase: OpenPhase, tcp: Pose) -> None:
        self.phase, self.steps, self.errors = phase, 0, ()
        self.anchor = tcp if phase == OpenPhase.HOLD else None

    def _hook(self, drawer: DrawerFrame) -> FloatArray:
        return drawer.point(HOOK[0] + drawer.qpos, HOOK[1])

    def _entry(self, drawer: DrawerFrame) -> FloatArray:
        back = math.cos(TILT) * drawer.along + math.sin(TILT) * UP
        entry: FloatArray = self._hook(drawer) + INSERT_FROM * back
        return entry

    def _goal(self, tcp: Pose, drawer: DrawerFrame) -> Pose:
        if self.phase == OpenPhase.REACH:
            return Pose(self._entry(drawer), drawer.tool())
        if self.phase == OpenPhase.INSERT:
            start, end = self._entry(drawer), self._hook(drawer)
            return Pose(slide(tcp.position, start, end, INSERT_LEAD), drawer.tool())
        if self.phase == OpenPhase.PULL:
            along, _ = drawer.coordinates(tcp.position)
            stop = HOOK[0] + self.target + PULL_LEAD  # the drawer lags the TCP a little
            return drawer.pose(min(along + PULL_LEAD, stop), HOOK[1] - PRESS)
        assert self.anchor is not None
        return self.anchor

    def _advance(self, tcp: Pose, drawer: DrawerFrame) -> None:
        timed_out = self.steps >= OPEN_TIMEOUTS.get(self.phase, 0)
        if self.phase == OpenPhase.REACH:
            entry = Pose(self._entry(drawer), drawer.tool())
            arrived = position_error(tcp, entry) < NEAR
            if (arrived and rotation_error(tcp.rotation, entry.rotation) < ALIGNED) or timed_out:
                self.enter(OpenPhase.INSERT, tcp)
        elif self.phase == OpenPhase.INSERT:
            error = float(np.linalg.norm(self._hook(drawer) - tcp.position))
            self.errors = (*self.errors, error)[-(STALL_STEPS + 1) :]
            stalled = len(self.errors) > STALL_STEPS and self.errors[0] - error < STALL
            if error < NEAR or stalled or timed_out:
                self.enter(OpenPhase.PULL, tcp)
        elif self.phase == OpenPhase.PULL:
            along, _ = drawer.coordinates(tcp.position)
            slipped = along - drawer.qpos > HOOK[0] + SLIPPED
            if drawer.qpos >= self.target or (timed_out and drawer.qpos >= OPEN_ENOUGH):
                self.enter(OpenPhase.HOLD, tcp)
            elif slipped or timed_out:
                self.enter(OpenPhase.REACH, tcp)


class ClosePhase(IntEnum):
    """The steps of closing a drawer, in order."""

    ABOVE = 0  # above the push's start, the tool shaped
    FRONT = 1  # in front of the panel's face, at the push height
    PUSH = 2  # into the cabinet along the opening axis
    HOLD = 3  # keep pushing the closed drawer's face


CLOSE_TIMEOUTS = {ClosePhase.ABOVE: 40, ClosePhase.FRONT: 20, ClosePhase.PUSH: 30}


@dataclass
class CloseDrawer(ToolMachine):
    """One row's closing of the task drawer: push its front panel until it is shut."""

    phase: ClosePhase = ClosePhase.ABOVE

    def done(self) -> bool:
        return self.phase == ClosePhase.HOLD

    def enter(self, phase: ClosePhase) -> None:
        self.phase, self.steps = phase, 0

    def _start(self, drawer: DrawerFrame, up: float) -> Pose:
        face = PANEL_FRONT + drawer.qpos
        return drawer.pose(face + STANDOFF + TOOL_REACH, up, PUSH_TILT)

    def _goal(self, tcp: Pose, drawer: DrawerFrame) -> Pose:
        if self.phase == ClosePhase.ABOVE:
            return self._start(drawer, ABOVE)
        if self.phase == ClosePhase.FRONT:
            return self._start(drawer, PUSH_HEIGHT)
        shut = PANEL_FRONT + TOOL_REACH - PUSH_OVER
        if self.phase == ClosePhase.PUSH:
            along, _ = drawer.coordinates(tcp.position)
            return drawer.pose(max(along - PUSH_LEAD, shut), PUSH_HEIGHT, PUSH_TILT)
        return drawer.pose(shut, PUSH_HEIGHT, PUSH_TILT)

    def _advance(self, tcp: Pose, drawer: DrawerFrame) -> None:
        timed_out = self.steps >= CLOSE_TIMEOUTS.get(self.phase, 0)
        goal = self._goal(tcp, drawer)
        error = position_error(tcp, goal)
        aligned = rotation_error(tcp.rotation, goal.rotation) < ALIGNED
        if self.phase == ClosePhase.ABOVE:
            if error < VIA or timed_out:
                self.enter(ClosePhase.FRONT)
        elif self.phase == ClosePhase.FRONT:
            if (error < NEAR and aligned) or timed_out:
                self.enter(ClosePhase.PUSH)
        elif self.phase == ClosePhase.PUSH:
            if drawer.qpos <= CLOSED or timed_out:
                self.enter(ClosePhase.HOLD)
        elif drawer.qpos > REOPEN:
            self.enter(ClosePhase.PUSH)
