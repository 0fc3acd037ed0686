"""The Google Robot expert's drawer machines (open, close, put apple into the top drawer).

The phase logic runs on synthetic privileged-state rows; one fresh interpreter (ManiSkill fixes
its asset folder at its first import) runs `_probe`: the open and close machines drive the
real open / close top drawer twins through whole episodes, acting only through 7-number
actions, and the tests check its JSON report.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refinevla_bench.policies.google_scripted_apple import (
    APPLE_OPEN,
    DROPPED,
    ApplePhase,
    PlaceAppleInDrawer,
)
from refinevla_bench.policies.google_scripted_drawer import (
    CLOSED,
    HOOK,
    INSERT_FROM,
    OPEN_ENOUGH,
    OPEN_TARGET,
    OPEN_TIMEOUTS,
    PUSH_TILT,
    REOPEN,
    SIDE_REACH,
    TILT,
    CloseDrawer,
    ClosePhase,
    DrawerFrame,
    OpenDrawer,
    OpenPhase,
    slide,
)
from refinevla_bench.policies.google_scripted_drawer_tasks import drawer_expert
from refinevla_bench.policies.google_scripted_grasp import REACH_ORIGIN
from refinevla_bench.policies.google_scripted_motion import GRIPPER_OPEN, HOOK_GRIP, Pose, Row
from tests.support import run_module_probe

AXIS = np.array([-1.0, 0.0, 0.0])  # the drawer opens towards the robot (base -x)
HANDLE = np.array([0.6, 0.1, 0.63])  # the closed drawer's handle, base frame
EPISODE = 4  # robot pose b1 of the visual-matching grid
NEAREST_POSE = 0  # a0: the robot pose nearest the cabinet
STEPS = 113


def _row(tcp: np.ndarray, qpos: float = 0.0, tilt: float = TILT, **extra: Any) -> Row:
    """A privileged-state row of the drawer tasks; the tool in the drawer machines' pose."""
    rotation = DrawerFrame.of(_drawer_row(qpos)).tool(tilt)
    quaternion = _quaternion(rotation)
    return {
        **_drawer_row(qpos),
        "tcp_pose": np.concatenate([tcp, quaternion]),
        "gripper_opening": np.array(1.0),
        **{key: np.asarray(value, dtype=np.float64) for key, value in extra.items()},
    }


def _drawer_row(qpos: float) -> dict[str, np.ndarray]:
    return {
        "handle_pose": np.array([*(HANDLE + qpos * AXIS), 1.0, 0.0, 0.0, 0.0]),
        "drawer_axis": AXIS,
        "drawer_qpos": np.array(qpos),
    }


def _quaternion(rotation: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    return np.array([w, x, y, z])


def _phase(machine: OpenDrawer | CloseDrawer | PlaceAppleInDrawer) -> int:
    """The machine's phase, read through a call (mypy narrows attributes across commands)."""
    return int(machine.phase)


def _at(frame: DrawerFrame, along: float, up: float) -> np.ndarray:
    return frame.point(along, up)


# ---- geometry ------------------------------------------------------------------------------


def test_the_frame_starts_at_the_closed_handle_moved_towards_the_shoulder() -> None:
    """The origin is the handle of the CLOSED drawer (the open one's minus qpos along the
    axis), moved along the panel towards the shoulder by at most SIDE_REACH."""
    frame = DrawerFrame.of(_drawer_row(0.2))
    shoulder_side = REACH_ORIGIN[1] - HANDLE[1]
    assert shoulder_side < -SIDE_REACH  # far to the side: the move is clipped
    np.testing.assert_allclose(frame.origin, HANDLE + np.array([0.0, -SIDE_REACH, 0.0]))
    assert frame.qpos == pytest.approx(0.2)
    assert frame.coordinates(frame.point(0.1, -0.02)) == pytest.approx((0.1, -0.02))
    near = DrawerFrame.of(
        {**_drawer_row(0.0), "handle_pose": np.array([0.6, -0.1, 0.6, 1, 0, 0, 0])}
    )
    np.testing.assert_allclose(near.origin[:2], [0.6, REACH_ORIGIN[1]])


def test_the_tool_points_into_the_cabinet_below_the_horizontal_closing_across() -> None:
    rotation = DrawerFrame.of(_drawer_row(0.0)).tool()
    approach, closing = rotation[:, 2], rotation[:, 1]
    assert math.asin(-approach[2]) == pytest.approx(TILT)
    assert approach[:2] @ AXIS[:2] < 0  # into the cabinet, against the opening direction
    assert closing @ AXIS == pytest.approx(0.0, abs=1e-9)
    assert closing[2] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)


def test_slide_leads_along_the_segment_and_less_when_off_it() -> None:
    start, end = np.zeros(3), np.array([0.2, 0.0, 0.0])
    np.testing.assert_allclose(slide(np.array([0.05, 0.0, 0.0]), start, end, 0.03), [0.08, 0, 0])
    np.testing.assert_allclose(slide(np.array([0.05, 0.01, 0.0]), start, end, 0.03), [0.06, 0, 0])
    np.testing.assert_allclose(slide(np.array([0.19, 0.0, 0.0]), start, end, 0.03), end)
    np.testing.assert_allclose(slide(np.array([-0.1, 0.0, 0.0]), start, end, 0.03), start)


# ---- open ------------------------------------------------------------------------------------


def test_open_shapes_the_tool_then_slides_in_hooks_and_pulls() -> None:
    """Gripper: fully open, then the hook grip, then keep. REACH ends at the slide's start,
    INSERT at the hook point, PULL once the drawer is open to the target."""
    machine = OpenDrawer()
    frame = DrawerFrame.of(_drawer_row(0.0))
    far = _at(frame, 0.4, 0.4)
    grippers = [machine.command(_row(far)).gripper for _ in range(3)]
    assert grippers == [GRIPPER_OPEN, HOOK_GRIP, 0.0]
    assert _phase(machine) == OpenPhase.REACH
    back = np.array([math.cos(TILT), math.sin(TILT)]) * INSERT_FROM
    entry = _at(frame, HOOK[0] + back[0], HOOK[1] + back[1])
    machine.command(_row(entry))
    assert _phase(machine) == OpenPhase.INSERT
    command = machine.command(_row(entry))
    assert command.goal is not None
    assert frame.coordinates(command.goal.position)[0] < HOOK[0] + back[0]  # sliding in
    machine.command(_row(_at(frame, *HOOK)))
    assert _phase(machine) == OpenPhase.PULL
    pulling = machine.command(_row(_at(frame, *HOOK), qpos=0.1))
    assert pulling.goal is not None
    along, up = frame.coordinates(pulling.goal.position)
    assert along > HOOK[0] and up < HOOK[1]  # back towards the robot, pressing down
    machine.command(_row(_at(frame, HOOK[0] + OPEN_TARGET, HOOK[1]), qpos=OPEN_TARGET))
    assert machine.done() and not pulling.terminate


def test_open_starts_over_when_the_hook_comes_off_the_panel() -> None:
    machine = OpenDrawer(phase=OpenPhase.PULL)
    frame = DrawerFrame.of(_drawer_row(0.0))
    machine.command(_row(_at(frame, HOOK[0] + 0.05, HOOK[1]), qpos=0.04))  # still hooked
    assert _phase(machine) == OpenPhase.PULL
    machine.command(_row(_at(frame, HOOK[0] + 0.2, HOOK[1] + 0.05), qpos=0.04))
    assert _phase(machine) == OpenPhase.REACH


def test_a_pull_out_of_time_holds_if_open_enough_else_hooks_again() -> None:
    frame = DrawerFrame.of(_drawer_row(0.0))
    for qpos, following in ((OPEN_ENOUGH + 0.01, OpenPhase.HOLD), (0.1, OpenPhase.REACH)):
        machine = OpenDrawer(phase=OpenPhase.PULL, steps=OPEN_TIMEOUTS[OpenPhase.PULL])
        machine.command(_row(_at(frame, HOOK[0] + qpos, HOOK[1]), qpos=qpos))
        assert _phase(machine) == following


def test_an_insert_that_stops_short_pulls_from_where_it_stands() -> None:
    machine = OpenDrawer(phase=OpenPhase.INSERT)
    frame = DrawerFrame.of(_drawer_row(0.0))
    stuck = _at(frame, HOOK[0] + 0.04, HOOK[1] + 0.03)
    for _ in range(4):
        machine.command(_row(stuck))
        assert _phase(machine) == OpenPhase.INSERT
    machine.command(_row(stuck))
    assert _phase(machine) == OpenPhase.PULL


# ---- close -----------------------------------------------------------------------------------


def test_close_comes_down_in_front_of_the_panel_and_pushes_it_shut() -> None:
    """The push leans more steeply than the hook (PUSH_TILT): the arm reaches an open bottom
    drawer's face near the robot that way."""
    machine = CloseDrawer()
    frame = DrawerFrame.of(_drawer_row(0.2))
    first = machine.command(_row(_at(frame, 0.5, 0.4), qpos=0.2, tilt=PUSH_TILT))
    assert first.goal is not None and _phase(machine) == ClosePhase.ABOVE
    machine.command(_row(first.goal.position, qpos=0.2, tilt=PUSH_TILT))
    assert _phase(machine) == ClosePhase.FRONT
    front = machine.command(_row(first.goal.position, qpos=0.2, tilt=PUSH_TILT)).goal
    assert front is not None
    along, up = frame.coordinates(front.position)
    assert along > 0.2 - 0.03 and up < frame.coordinates(first.goal.position)[1]
    machine.command(_row(front.position, qpos=0.2, tilt=PUSH_TILT))
    assert _phase(machine) == ClosePhase.PUSH
    push = machine.command(_row(front.position, qpos=0.2, tilt=PUSH_TILT)).goal
    assert push is not None and frame.coordinates(push.position)[0] < along  # into the cabinet
    machine.command(_row(_at(frame, 0.0, 0.02), qpos=CLOSED, tilt=PUSH_TILT))
    assert machine.done()
    machine.command(_row(_at(frame, 0.0, 0.02), qpos=REOPEN + 0.01, tilt=PUSH_TILT))
    assert _phase(machine) == ClosePhase.PUSH


# ---- apple -----------------------------------------------------------------------------------

APPLE = np.array([0.72, -0.13, 0.84, 1.0, 0.0, 0.0, 0.0])


def _apple_row(tcp: np.ndarray, subtask: int, apple: np.ndarray = APPLE) -> Row:
    return _row(tcp, qpos=APPLE_OPEN, source_pose=apple, subtask=subtask)


def test_apple_asks_for_the_next_subtask_only_after_opening_and_only_once_advanced() -> None:
    """terminate while leaving the opened drawer in subtask 0 (the runner advances then);
    never in subtask 1, where a terminate would end the episode."""
    machine = PlaceAppleInDrawer()
    tcp = np.array([0.4, -0.15, 0.66])
    assert not machine.command(_apple_row(tcp, subtask=0)).terminate
    machine.opener.phase = OpenPhase.HOLD
    asking = machine.command(_apple_row(tcp, subtask=0))
    assert _phase(machine) == ApplePhase.LEAVE and asking.terminate
    assert asking.goal is not None and asking.goal.position[2] > APPLE[2]  # up out of the drawer
    assert not machine.command(_apple_row(tcp, subtask=1)).terminate


def test_apple_sweeps_towards_the_robot_and_sweeps_again_when_it_missed() -> None:
    machine = PlaceAppleInDrawer(phase=ApplePhase.SWEEP, apple=APPLE[:3].copy())
    machine.anchor = Pose.of(_apple_row(np.array([0.83, -0.13, 0.85]), 1)["tcp_pose"])
    sweep = machine.command(_apple_row(np.array([0.83, -0.13, 0.85]), subtask=1))
    assert sweep.goal is not None and sweep.goal.position[0] < 0.83  # towards the robot (-x)
    machine.command(_apple_row(np.array([0.8, -0.13, 0.85]), subtask=1))
    assert _phase(machine) == ApplePhase.SWEEP
    fallen = APPLE.copy()
    fallen[2] -= DROPPED + 0.01
    machine.command(_apple_row(np.array([0.78, -0.13, 0.85]), subtask=1, apple=fallen))
    assert _phase(machine) == ApplePhase.RETREAT
    retreat = machine.command(_apple_row(np.array([0.78, -0.13, 0.85]), 1, apple=fallen)).goal
    assert retreat is not None
    machine.command(_apple_row(retreat.position, subtask=1, apple=fallen))
    assert machine.done()
    missed = PlaceAppleInDrawer(phase=ApplePhase.RETREAT, apple=APPLE[:3].copy())
    missed.anchor = Pose.of(_apple_row(np.array([0.7, -0.13, 0.96]), 1)["tcp_pose"])
    aside = APPLE.copy()
    aside[1] += 0.1  # pushed sideways, still on the cabinet's top
    missed.command(_apple_row(np.array([0.7, -0.13, 0.96]), subtask=1, apple=aside))
    assert _phase(missed) == ApplePhase.ABOVE
    np.testing.assert_allclose(missed.apple, aside[:3])


def test_the_expert_follows_the_instruction_and_the_apple_task_by_its_subtask_key() -> None:
    row = _row(np.array([0.4, -0.2, 0.9]))
    assert isinstance(drawer_expert("open middle drawer", row), OpenDrawer)
    assert isinstance(drawer_expert("close bottom drawer", row), CloseDrawer)
    apple = _apple_row(np.array([0.4, -0.2, 0.9]), subtask=0)
    assert isinstance(drawer_expert("open top drawer", apple), PlaceAppleInDrawer)
    assert drawer_expert("pick coke can", {"tcp_pose": row["tcp_pose"]}) is None
    assert drawer_expert("move the drawer", row) is None


# ---- the real simulator ----------------------------------------------------------------------


def _probe(assets: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: whole episodes driven by the machines, as the dispatcher
    would (rows from proprio + privileged state): open and close the top drawer from robot pose
    b1, and close the bottom drawer from a0, the pose nearest the cabinet (the arm must reach
    low and close to the robot there)."""
    from refinevla_bench.harness.backends.maniskill import import_maniskill
    from refinevla_bench.harness.paths import maniskill_asset_dir

    import_maniskill(maniskill_asset_dir(Path(assets)))
    import gymnasium as gym
    import torch

    from refinevla_bench.harness.backends.google_robot import drawer

    report: dict[str, Any] = {
        "open_success": drawer.OPEN_SUCCESS,
        "close_success": drawer.CLOSE_SUCCESS,
        "close_start": drawer.CLOSE_INITIAL_QPOS,
    }
    machines = {
        "open": (drawer.OPEN_ENV_ID, OpenDrawer, "top", EPISODE),
        "close": (drawer.CLOSE_ENV_ID, CloseDrawer, "top", EPISODE),
        "close_bottom": (drawer.CLOSE_ENV_ID, CloseDrawer, "bottom", NEAREST_POSE),
    }
    for task, (env_id, machine_type, which, episode) in machines.items():
        started = time.perf_counter()
        env = gym.make(
            env_id,
            obs_mode="rgb+segmentation",
            sim_backend="physx_cpu",
            render_backend="cpu",
            assets_root=Path(assets),
            drawer=which,
            robot_grid="overlay_poses",
        )
        u: Any = env.unwrapped
        env.reset(options={"episode_id": torch.tensor([episode])})
        machine = machine_type()
        qpos, finite, terminated = [], True, False
        for _ in range(STEPS):
            state = {**u.proprio(), **u.privileged_state()}
            row = {key: value[0].cpu().numpy().astype(np.float64) for key, value in state.items()}
            command = machine.command(row)
            action = command.action(Pose.of(row["tcp_pose"]))
            finite = finite and action.shape == (7,) and bool(np.isfinite(action).all())
            terminated = terminated or command.terminate
            stepped: Any = env.step(torch.tensor(action[None], dtype=torch.float32))
            _, _, _, truncated, info = stepped
            qpos.append(float(info["qpos"][0]))
        report[task] = {
            "success": bool(info["success"][0]),
            "truncated": bool(truncated[0]),
            "qpos": qpos,
            "done": machine.done(),
            "finite": finite,
            "terminated": terminated,
            "seconds": time.perf_counter() - started,
        }
        env.close()
    return report


@pytest.fixture(scope="module")
def probe(google_robot_assets: Path) -> dict[str, Any]:
    return run_module_probe("test_google_scripted_drawer", google_robot_assets, "scripted drawer")


@pytest.mark.sim
def test_the_open_machine_opens_the_top_drawer_in_the_simulator(probe: dict[str, Any]) -> None:
    """Success at the 113th (last) step: qpos >= 0.15, reached by pulling (it starts closed)
    and kept to the end."""
    entry, threshold = probe["open"], probe["open_success"]
    assert entry["finite"] and not entry["terminated"] and entry["done"]
    assert entry["qpos"][0] < 0.01 and entry["truncated"]
    assert entry["success"] and entry["qpos"][-1] >= threshold
    assert min(entry["qpos"][-20:]) >= threshold


@pytest.mark.sim
def test_the_close_machine_shuts_the_open_top_drawer_in_the_simulator(
    probe: dict[str, Any],
) -> None:
    """The drawer starts 0.2 m open; success at the last step: qpos <= 0.05, kept."""
    _assert_closed(probe, "close")


@pytest.mark.sim
def test_the_close_machine_reaches_the_bottom_drawer_from_the_nearest_robot_pose(
    probe: dict[str, Any],
) -> None:
    """Pushing at the hook's 35 degree lean, the arm folded short of this face and flailed."""
    _assert_closed(probe, "close_bottom")


def _assert_closed(probe: dict[str, Any], task: str) -> None:
    entry, threshold = probe[task], probe["close_success"]
    assert entry["finite"] and not entry["terminated"] and entry["done"]
    assert entry["qpos"][0] > probe["close_start"] - 0.01 and entry["truncated"]
    assert entry["success"] and entry["qpos"][-1] <= threshold
    assert max(entry["qpos"][-20:]) <= threshold
