"""The Google Robot scripted expert's dispatch: which phase machine plays which task, move
near's placement beside the target, and the `scripted` policy switching expert by robot.

Synthetic privileged-state rows only; the simulator runs of the expert are in
test_google_robot_cli.py (through `refinevla-bench run`) and test_google_scripted_drawer.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from refinevla_bench.policies.google_scripted import (
    DROP_CLEARANCE,
    NEAR_CLEARANCE,
    BesideTarget,
    GoogleScriptedExpert,
    machine_for,
)
from refinevla_bench.policies.google_scripted_drawer import CloseDrawer, OpenDrawer
from refinevla_bench.policies.google_scripted_grasp import (
    APPROACH_TILT,
    UPRIGHT_TILT,
    Grasp,
    across_long_axis,
    footprint_radius,
    is_upright,
    top_grasp,
)
from refinevla_bench.policies.google_scripted_motion import (
    GRIPPER_ACTION_CLOSURE,
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    HOLD_SQUEEZE,
    Pose,
    holding_grip,
)
from refinevla_bench.policies.google_scripted_pick import Phase, PickPlace
from refinevla_bench.policies.google_scripted_topple import ToppleThenPick
from refinevla_bench.policies.protocol import ObservationBatch, TerminatingPolicy
from refinevla_bench.policies.registry import create_policy
from refinevla_bench.policies.scripted import ScriptedExpert

UPRIGHT = np.array([1.0, 0.0, 0.0, 0.0])
# the reset pose's gripper: leaning forward, pointing down (a rotation about base y)
TCP = np.array([0.45, -0.2, 0.95, 0.0, 0.0, 1.0, 0.0])


def _pick_row() -> dict[str, np.ndarray]:
    return {
        "tcp_pose": TCP.copy(),
        "gripper_opening": np.array(1.0),
        "gripper_drive": np.array(0.0),
        "source_pose": np.array([0.7, 0.1, 0.86, *UPRIGHT]),
        "source_half_size": np.array([0.033, 0.033, 0.0615]),
        "source_grasped": np.array(0.0),
    }


def _move_near_row(source_xy: tuple[float, float] = (0.6, 0.0)) -> dict[str, np.ndarray]:
    return {
        **_pick_row(),
        "source_pose": np.array([*source_xy, 0.86, *UPRIGHT]),
        "target_pose": np.array([0.6, 0.3, 0.84, *UPRIGHT]),
        "target_half_size": np.array([0.04, 0.02, 0.04]),
    }


def _drawer_row() -> dict[str, np.ndarray]:
    return {
        "tcp_pose": TCP.copy(),
        "gripper_opening": np.array(1.0),
        "handle_pose": np.array([0.6, 0.1, 0.63, *UPRIGHT]),
        "drawer_axis": np.array([-1.0, 0.0, 0.0]),
        "drawer_qpos": np.array(0.0),
    }


def _batch(rows: list[dict[str, np.ndarray]], instructions: list[str]) -> ObservationBatch:
    proprio_keys = ("tcp_pose", "gripper_opening")
    return ObservationBatch(
        images=np.zeros((len(rows), 8, 8, 3), dtype=np.uint8),
        instructions=tuple(instructions),
        state={key: np.stack([row[key] for row in rows]) for key in rows[0]},
        proprio={key: np.stack([row[key] for row in rows]) for key in proprio_keys},
    )


def test_each_task_gets_its_phase_machine() -> None:
    pick = machine_for("pick coke can", _pick_row())  # standing: tipped over first
    assert isinstance(pick, ToppleThenPick) and pick.pick.placement is None
    assert not pick.pick.across  # the push lays the can along the closing direction
    lying = machine_for(
        "pick coke can", {**_pick_row(), "source_pose": np.array([0.7, 0.1, 0.824, *LYING_ALONG_Y])}
    )
    assert isinstance(lying, PickPlace) and lying.across and lying.placement is None
    near = machine_for("move blue plastic bottle near pepsi can", _move_near_row())
    assert isinstance(near, PickPlace) and isinstance(near.placement, BesideTarget)
    assert isinstance(machine_for("open top drawer", _drawer_row()), OpenDrawer)
    assert isinstance(machine_for("close middle drawer", _drawer_row()), CloseDrawer)


def _quaternion(yaw: float, tilt: float = 0.0) -> np.ndarray:
    """wxyz of a turn `yaw` about the vertical after tipping `tilt` about base x."""
    cy, sy, ct, st = np.cos(yaw / 2), np.sin(yaw / 2), np.cos(tilt / 2), np.sin(tilt / 2)
    return np.array([cy * ct, cy * st, sy * st, sy * ct])


def _turned(yaw: float, tilt: float = 0.0) -> np.ndarray:
    return Pose.of(np.array([0.0, 0.0, 0.0, *_quaternion(yaw, tilt)])).rotation


def test_a_standing_can_is_upright_however_it_is_turned_about_the_vertical() -> None:
    can = np.array([0.033, 0.033, 0.0615])
    for yaw in np.linspace(0.0, np.pi, 9):
        assert is_upright(_turned(yaw), can)  # the footprint ratio missed yaw 45 degrees
        assert not is_upright(_turned(yaw, tilt=np.pi / 2), can)  # lying
        assert not is_upright(_turned(yaw, tilt=UPRIGHT_TILT + 0.05), can)  # going down
    assert not is_upright(np.eye(3), np.array([0.04, 0.04, 0.045]))  # an apple
    assert not is_upright(np.eye(3), np.array([0.05, 0.035, 0.02]))  # a sponge


def test_move_near_slides_a_standing_source_and_carries_the_others() -> None:
    row = {**_move_near_row(), "source_pose": np.array([0.6, 0.0, 0.86, *_quaternion(np.pi / 4)])}
    standing = machine_for("move pepsi can near orange", row)
    assert isinstance(standing, PickPlace) and standing.slide
    lying = {**row, "source_half_size": np.array([0.033, 0.0615, 0.033])}  # model y is the axis
    assert isinstance(lying_pick := machine_for("move pepsi can near orange", lying), PickPlace)
    assert not lying_pick.slide


def test_a_slide_goes_on_to_the_carry_with_the_object_still_on_the_table() -> None:
    """A lift that leaves the object where it lay is a failed grasp, unless sliding, whose
    lift rises nothing and so is over at once."""
    for slide, timed_out, following in (
        (False, True, Phase.REOPEN),
        (True, True, Phase.CARRY),
        (False, False, Phase.LIFT),
        (True, False, Phase.CARRY),
    ):
        row = _move_near_row()
        machine = PickPlace(
            half_size=lambda r: np.asarray(r["source_half_size"]),
            placement=BesideTarget(),
            slide=slide,
        )
        machine.enter(Phase.LIFT, Pose.of(row["tcp_pose"]))
        machine.start_height = float(row["source_pose"][2])
        machine.steps = 99 if timed_out else 0
        machine.command(row)
        assert machine.phase == following, (slide, timed_out)


def test_the_holding_grip_sets_the_finger_target_just_beyond_the_fingers() -> None:
    """Whatever the last drive target (here the full close's ramp, well past the fingers, or
    short of them), the action moves it to HOLD_SQUEEZE beyond the measured closure."""
    for opening, drive in ((0.7, 0.9), (0.7, 0.25), (0.45, 0.55)):
        row = {
            **_pick_row(),
            "gripper_opening": np.array(opening),
            "gripper_drive": np.array(drive),
        }
        action = holding_grip(row)
        assert -1.0 <= action <= 1.0
        assert drive + action * GRIPPER_ACTION_CLOSURE == pytest.approx(
            1.0 - opening + HOLD_SQUEEZE
        )
    far = {**_pick_row(), "gripper_opening": np.array(0.0), "gripper_drive": np.array(-2.0)}
    assert holding_grip(far) == 1.0  # clipped: a relative action moves at most one unit


LYING_ALONG_X = np.array([np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0])  # axis towards x
LYING_ALONG_Y = np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0])  # axis across


def _closed_on(
    quaternion: np.ndarray, placement: BesideTarget | None, across: bool = False
) -> tuple[PickPlace, dict[str, np.ndarray]]:
    """A pick of a lying can taken through CLOSE (fingers stopped) into LIFT."""
    row = {
        **_move_near_row(),
        "source_pose": np.array([0.7, 0.1, 0.824, *quaternion]),
        "gripper_opening": np.array(0.7),
        "gripper_drive": np.array(0.9),
    }
    machine = PickPlace(
        half_size=lambda r: np.asarray(r["source_half_size"]), placement=placement, across=across
    )
    machine.enter(Phase.CLOSE, Pose.of(row["tcp_pose"]))
    assert machine.command(row).gripper == GRIPPER_CLOSE
    while machine.phase == Phase.CLOSE:
        machine.command(row)
    assert machine.phase == Phase.LIFT
    return machine, row


def test_a_can_closed_across_its_axis_is_held_with_the_steady_squeeze() -> None:
    machine, row = _closed_on(LYING_ALONG_X, placement=None)
    assert machine.light_hold
    tcp = Pose.of(row["tcp_pose"])
    for phase, grip in (
        (Phase.LIFT, holding_grip(row)),
        (Phase.HOLD, holding_grip(row)),
        (Phase.REOPEN, GRIPPER_OPEN),
        (Phase.APPROACH, GRIPPER_OPEN),
    ):
        machine.enter(phase, tcp)
        assert machine._gripper(row) == grip, phase
    assert holding_grip(row) < 0  # the full close's target was past the fingers: back it off


def test_the_lying_can_pick_turns_to_close_across_a_can_lying_either_way() -> None:
    for quaternion in (LYING_ALONG_X, LYING_ALONG_Y):
        machine, row = _closed_on(quaternion, placement=None, across=True)
        assert machine.light_hold, quaternion
        assert machine.grasp is not None
        axis = Pose.of(row["source_pose"]).rotation[:, 2]  # the can's long (model z) axis
        # across, up to the approach's lean (the closing stays perpendicular to the approach)
        assert abs(machine.grasp.pose.rotation[:, 1] @ axis) < np.sin(APPROACH_TILT)


def test_without_the_turn_a_can_along_the_closing_keeps_its_ends_grasp_and_full_squeeze() -> None:
    """Move near's carry and the pick after a topple: a can lying along y is taken by its ends."""
    for placement in (None, BesideTarget()):
        machine, row = _closed_on(LYING_ALONG_Y, placement)
        assert not machine.light_hold
        assert machine._gripper(row) == GRIPPER_CLOSE
        assert machine.grasp is not None
        assert abs(machine.grasp.pose.rotation[1, 1]) > 0.9  # closing along the can's axis (y)


def _leaning_grasp(obj: Pose, half_size: np.ndarray) -> Grasp:
    return top_grasp(obj, half_size, Pose.of(TCP).rotation)


def test_across_long_axis_turns_the_fingers_across_a_lying_can_only() -> None:
    can = np.array([0.033, 0.033, 0.0615])
    turn = 0.2  # about the vertical: otherwise both ways round are equally near
    current = (
        np.array(
            [[np.cos(turn), -np.sin(turn), 0.0], [np.sin(turn), np.cos(turn), 0.0], [0.0, 0.0, 1.0]]
        )
        @ Pose.of(TCP).rotation
    )
    lying = Pose.of(np.array([0.7, 0.1, 0.824, *LYING_ALONG_Y]))
    grasp = _leaning_grasp(lying, can)
    turned = across_long_axis(grasp, lying, can, current)
    closing, approach = turned.pose.rotation[:, 1], turned.pose.rotation[:, 2]
    np.testing.assert_allclose(approach, grasp.pose.rotation[:, 2])  # same way down
    np.testing.assert_allclose(turned.pose.position, grasp.pose.position)
    assert abs(grasp.pose.rotation[:, 1] @ lying.rotation[:, 2]) > 0.9  # was by its ends
    assert abs(closing @ lying.rotation[:, 2]) < np.sin(APPROACH_TILT)  # across, up to the lean
    assert closing @ current[:, 1] > 0  # the nearer of the two closing directions
    np.testing.assert_allclose(turned.pose.rotation.T @ turned.pose.rotation, np.eye(3), atol=1e-9)
    flipped = across_long_axis(grasp, lying, can, current @ np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(flipped.pose.rotation[:, 1], -closing, atol=1e-9)
    standing = Pose.of(np.array([0.7, 0.1, 0.86, *UPRIGHT]))
    sponge = np.array([0.035, 0.018, 0.05])  # lying flat, not elongated enough to turn for
    for obj, size in ((standing, can), (lying, sponge)):
        kept = _leaning_grasp(obj, size)
        assert across_long_axis(kept, obj, size, current) is kept


def test_an_unknown_task_names_the_ones_the_expert_knows() -> None:
    with pytest.raises(ValueError, match="no Google Robot scripted plan for 'wipe the table'"):
        machine_for("wipe the table", _pick_row())
    # a move-near instruction without the target's pose cannot be placed
    with pytest.raises(ValueError, match="known: pick coke can; move"):
        machine_for("move apple near orange", _pick_row())


def test_move_near_sets_the_source_down_beside_the_target_on_its_own_side() -> None:
    """On the line from the target towards where the source was picked up, the two
    footprints NEAR_CLEARANCE apart, its bottom DROP_CLEARANCE above the table; the side is
    fixed at the first call even though the held source then moves."""
    row = _move_near_row(source_xy=(0.6, 0.0))
    placement = BesideTarget()
    spot = placement(row)
    target = Pose.of(row["target_pose"])
    gap = (
        footprint_radius(target.rotation, row["target_half_size"])
        + footprint_radius(Pose.of(row["source_pose"]).rotation, row["source_half_size"])
        + NEAR_CLEARANCE
    )
    np.testing.assert_allclose(spot[:2], [0.6, 0.3 - gap])
    table = 0.84 - 0.04
    assert spot[2] == pytest.approx(table + 0.0615 + DROP_CLEARANCE)
    carried = {**row, "source_pose": np.array([0.9, 0.3, 1.0, *UPRIGHT])}
    np.testing.assert_allclose(placement(carried)[:2], spot[:2])


def test_footprint_radius_follows_the_object_as_it_lies() -> None:
    half = np.array([0.03, 0.1, 0.02])
    assert footprint_radius(Pose.of(np.array([0, 0, 0, *UPRIGHT])).rotation, half) == (
        pytest.approx(np.hypot(0.03, 0.1))
    )
    lying = np.array([0, 0, 0, np.cos(np.pi / 4), np.sin(np.pi / 4), 0, 0])  # model y up
    assert footprint_radius(Pose.of(lying).rotation, half) == pytest.approx(np.hypot(0.03, 0.02))


def test_the_expert_answers_seven_numbers_and_a_terminate_flag_per_row() -> None:
    expert = GoogleScriptedExpert()
    instructions = ["open top drawer", "close top drawer"]
    expert.reset(instructions)
    actions = expert.act(_batch([_drawer_row(), _drawer_row()], instructions))
    assert actions.shape == (2, 7) and np.isfinite(actions).all()
    assert (actions[:, 6] == GRIPPER_OPEN).all()  # both first open the gripper (the tool)
    assert not np.allclose(actions[0, :3], actions[1, :3])  # to the hook / above the panel
    assert list(expert.last_terminations() or []) == [False, False]
    expert.reset(["pick coke can"])
    action = expert.act(_batch([_pick_row()], ["pick coke can"]))[0]
    assert action[6] == GRIPPER_OPEN and np.linalg.norm(action[:3]) > 0.05  # far from the can


def test_the_expert_refuses_a_batch_it_was_not_reset_for_or_without_state() -> None:
    expert = GoogleScriptedExpert()
    expert.reset(["pick coke can"])
    rows = [_pick_row(), _pick_row()]
    with pytest.raises(ValueError, match="reset\\(\\) saw 1 instructions, the batch has 2"):
        expert.act(_batch(rows, ["pick coke can"] * 2))
    bare = ObservationBatch(images=np.zeros((1, 8, 8, 3), dtype=np.uint8), instructions=("x",))
    with pytest.raises(ValueError, match="lacks privileged state: tcp_pose"):
        expert.act(bare)


def test_scripted_plays_the_google_robot_expert_when_told_its_robot() -> None:
    policy = create_policy("scripted", robot="google_robot")
    assert isinstance(policy, ScriptedExpert) and isinstance(policy, TerminatingPolicy)
    assert policy.conventions.gripper == "relative"
    assert policy.conventions.robot == "google_robot"
    policy.reset(["pick coke can"])
    assert policy.act(_batch([_pick_row()], ["pick coke can"])).shape == (1, 7)
    assert list(policy.last_terminations() or []) == [False]
    widowx = create_policy("scripted", robot="widowx")
    assert widowx.conventions.gripper == "absolute"
    assert isinstance(widowx, ScriptedExpert) and widowx.last_terminations() is None
