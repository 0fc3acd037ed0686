"""The `scripted` expert on the Google Robot: one phase machine per episode, chosen by task.

Pick coke can and move near run `PickPlace` (move near with a placement beside the target,
sliding a standing source there along the table; a standing coke can is first tipped over,
`ToppleThenPick`);
the drawer tasks and put-apple-into-drawer run the drawer machines. Every machine reads the
privileged state and answers a `Command`, turned here into the 7 numbers a learned Google Robot
policy sends: a base-frame translation delta, an axis-angle rotation delta and a relative
gripper command, plus RT-1's terminate flag (the apple task asks for its second subtask).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.google_scripted_drawer_tasks import drawer_expert
from refinevla_bench.policies.google_scripted_grasp import (
    footprint_radius,
    is_upright,
    vertical_half_extent,
)
from refinevla_bench.policies.google_scripted_motion import Command, FloatArray, Pose, Row
from refinevla_bench.policies.google_scripted_pick import PickPlace
from refinevla_bench.policies.google_scripted_topple import ToppleThenPick
from refinevla_bench.policies.protocol import ACTION_DIM, ObservationBatch, PolicyConventions

KNOWN_TASKS = (
    "pick coke can",
    "move <object> near <object>",
    "open/close top/middle/bottom drawer",
    "open top drawer, then place apple into top drawer",
)
NEAR_CLEARANCE = 0.03  # metres between the two objects' footprints when set down
DROP_CLEARANCE = 0.015  # the source's bottom this far above the table when let go


class Machine(Protocol):
    """A task's phase machine for one episode."""

    def command(self, row: Row) -> Command: ...


@dataclass
class BesideTarget:
    """Move near's placement: the source's centre on the line from the target towards where the
    source was picked up, its footprint `NEAR_CLEARANCE` from the target's (the success rule
    allows 10 cm; the source must also end nearer the target than anything else, and the side
    it came from is free of the third object in every layout)."""

    start: FloatArray | None = field(default=None)

    def __call__(self, row: Row) -> FloatArray:
        source, target = Pose.of(row["source_pose"]), Pose.of(row["target_pose"])
        if self.start is None:
            self.start = source.position.copy()
        direction = self.start[:2] - target.position[:2]
        direction = direction / max(float(np.linalg.norm(direction)), 1e-9)
        source_size = np.asarray(row["source_half_size"], dtype=np.float64)
        target_size = np.asarray(row["target_half_size"], dtype=np.float64)
        gap = (
            footprint_radius(target.rotation, target_size)
            + footprint_radius(source.rotation, source_size)
            + NEAR_CLEARANCE
        )
        table = target.position[2] - vertical_half_extent(target.rotation, target_size)
        height = table + vertical_half_extent(source.rotation, source_size) + DROP_CLEARANCE
        xy = target.position[:2] + gap * direction
        return np.array([xy[0], xy[1], height])


def source_half_size(row: Row) -> FloatArray:
    return np.asarray(row["source_half_size"], dtype=np.float64)


def source_standing(row: Row) -> bool:
    """The source stands upright now (a standing can or bottle)."""
    return is_upright(Pose.of(row["source_pose"]).rotation, source_half_size(row))


def machine_for(instruction: str, row: Row) -> Machine:
    """The phase machine of an episode, from its first instruction and privileged state."""
    drawer = drawer_expert(instruction, row)
    if drawer is not None:
        return drawer
    words = instruction.lower().split()
    if words[:3] == ["pick", "coke", "can"]:
        if source_standing(row):
            return ToppleThenPick(PickPlace(half_size=source_half_size))
        return PickPlace(half_size=source_half_size, across=True)
    if words[:1] == ["move"] and "near" in words and "target_pose" in row:
        return PickPlace(
            half_size=source_half_size, placement=BesideTarget(), slide=source_standing(row)
        )
    known = "; ".join(KNOWN_TASKS)
    raise ValueError(f"no Google Robot scripted plan for '{instruction}' (known: {known})")


def row_of(observation: ObservationBatch, index: int) -> dict[str, FloatArray]:
    """One env row of the privileged state and the proprio (the gripper's opening)."""
    merged = {**observation.proprio, **observation.state}
    return {key: np.asarray(values[index], dtype=np.float64) for key, values in merged.items()}


class GoogleScriptedExpert:
    """Privileged phase machines for the Google Robot tasks, one per parallel episode."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions(
        rotation="axis_angle", gripper="relative", robot="google_robot"
    )
    privileged_state: ClassVar[bool] = True

    def __init__(self) -> None:
        self._instructions: tuple[str, ...] = ()
        self._machines: list[Machine | None] = []
        self._terminations: list[bool] | None = None

    def reset(self, instructions: Sequence[str]) -> None:
        self._instructions = tuple(instructions)
        self._machines = [None] * len(self._instructions)
        self._terminations = None

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        if len(self._machines) != observation.batch_size:
            raise ValueError(
                f"reset() saw {len(self._machines)} instructions, the batch has "
                f"{observation.batch_size} rows"
            )
        if "tcp_pose" not in observation.state:
            raise ValueError("observation lacks privileged state: tcp_pose")
        actions = np.zeros((observation.batch_size, ACTION_DIM))
        terminations = []
        for index, instruction in enumerate(self._instructions):
            row = row_of(observation, index)
            machine = self._machines[index]
            if machine is None:
                machine = self._machines[index] = machine_for(instruction, row)
            command = machine.command(row)
            actions[index] = command.action(Pose.of(row["tcp_pose"]))
            terminations.append(command.terminate)
        self._terminations = terminations
        return actions

    def last_terminations(self) -> Sequence[bool] | None:
        return self._terminations
