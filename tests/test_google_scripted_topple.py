"""The standing coke can's pick: tip it over sideways with the gripper as a tool, then the
ordinary pick of the lying can. Synthetic privileged-state rows; the simulator run of the
whole expert on a standing can is in test_google_robot_cli.py."""

from __future__ import annotations

import numpy as np

from refinevla_bench.policies.google_scripted import machine_for
from refinevla_bench.policies.google_scripted_grasp import (
    REACH_ORIGIN,
    approach_direction,
    footprint_radius,
)
from refinevla_bench.policies.google_scripted_motion import (
    GRIPPER_OPEN,
    HOOK_GRIP,
    UP,
    Pose,
    Row,
)
from refinevla_bench.policies.google_scripted_pick import Phase, PickPlace
from refinevla_bench.policies.google_scripted_topple import (
    ABOVE,
    BELOW_TOP,
    CLEAR,
    SETTLE_STEPS,
    SIDE_GAP,
    THROUGH,
    TIMEOUTS,
    Push,
    TopplePhase,
    ToppleThenPick,
)

STANDING = np.array([1.0, 0.0, 0.0, 0.0])
LYING = np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0])  # 90 degrees about base x
HALF_SIZE = np.array([0.033, 0.033, 0.0615])
TCP = np.array([0.45, -0.2, 0.95, 0.0, 0.0, 1.0, 0.0])  # the reset pose: leaning, pointing down


def _row(tcp: np.ndarray, can_y: float = 0.1, quaternion: np.ndarray = STANDING) -> Row:
    height = 0.86 if quaternion is STANDING else 0.824
    return {
        "tcp_pose": np.concatenate([tcp[:3], TCP[3:]]),
        "gripper_opening": np.array(1.0),
        "gripper_drive": np.array(0.0),
        "source_pose": np.array([0.7, can_y, height, *quaternion]),
        "source_half_size": HALF_SIZE,
    }


def _phase(machine: ToppleThenPick) -> int:
    """The machine's phase, read through a call (mypy narrows attributes across commands)."""
    return int(machine.phase)


def _push(can_y: float = 0.1) -> Push:
    row = _row(TCP, can_y)
    return Push.of(Pose.of(row["source_pose"]), HALF_SIZE, Pose.of(TCP))


def test_the_push_runs_across_the_shoulder_line_through_the_cans_top() -> None:
    can = np.array([0.7, 0.1, 0.86])
    push = _push()
    direction = (push.end - push.start) / np.linalg.norm(push.end - push.start)
    radial = np.array([*(can[:2] - REACH_ORIGIN), 0.0])
    assert abs(direction @ radial) < 1e-9 and direction[1] < 0  # sideways, towards the robot's
    # centre line (the can is on the +y side of the shoulder)
    assert np.allclose(push.start[2], 0.86 + 0.0615 - BELOW_TOP)
    assert np.allclose(push.end[2], push.start[2])
    beside = footprint_radius(np.eye(3), HALF_SIZE) + SIDE_GAP
    assert np.allclose(push.start[:2], can[:2] - beside * direction[:2])
    assert np.allclose(push.end[:2], can[:2] + THROUGH * direction[:2])
    assert np.allclose(push.rotation[:, 2], approach_direction(can))  # the pick's lean


def test_a_can_on_the_other_side_is_pushed_the_other_way() -> None:
    assert (_push(-0.4).end - _push(-0.4).start)[1] > 0


def test_the_tool_comes_down_beside_the_can_pushes_then_clears_and_picks() -> None:
    machine = ToppleThenPick(PickPlace(half_size=lambda row: HALF_SIZE))
    grips, push = [], _push()
    grips.append(machine.command(_row(TCP)).gripper)
    assert _phase(machine) == TopplePhase.ABOVE
    above = push.start + np.array([0.0, 0.0, ABOVE])
    grips.append(machine.command(_row(above)).gripper)
    assert _phase(machine) == TopplePhase.DOWN
    command = machine.command(_row(push.start))
    grips.append(command.gripper)
    assert _phase(machine) == TopplePhase.PUSH
    assert command.goal is not None and np.allclose(command.goal.position, push.end)
    assert grips == [GRIPPER_OPEN, HOOK_GRIP, 0.0]  # the tool is shaped, then kept
    for _ in range(3):  # still standing: keep pushing
        machine.command(_row(push.end))
    assert _phase(machine) == TopplePhase.PUSH
    for _ in range(SETTLE_STEPS + 1):
        command = machine.command(_row(push.end, quaternion=LYING))
    assert _phase(machine) == TopplePhase.CLEAR and command.gripper == GRIPPER_OPEN
    assert command.goal is not None and np.allclose(command.goal.position, push.end + CLEAR * UP)
    for _ in range(TIMEOUTS["clear"]):
        command = machine.command(_row(push.end, quaternion=LYING))
    assert _phase(machine) == TopplePhase.PICK and machine.pick.phase == Phase.APPROACH
    assert command.gripper == GRIPPER_OPEN and not machine.done()


def test_a_push_that_does_not_tip_the_can_gives_up_and_picks_it_standing() -> None:
    machine = ToppleThenPick(PickPlace(half_size=lambda row: HALF_SIZE))
    machine.command(_row(TCP))
    machine.phase = TopplePhase.PUSH
    for _ in range(TIMEOUTS["push"] + 1):
        machine.command(_row(_push().end))
    assert _phase(machine) == TopplePhase.CLEAR


def test_only_a_standing_coke_can_is_tipped_over() -> None:
    assert isinstance(machine_for("pick coke can", _row(TCP)), ToppleThenPick)
    assert isinstance(machine_for("pick coke can", _row(TCP, quaternion=LYING)), PickPlace)
