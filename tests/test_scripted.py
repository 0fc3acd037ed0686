"""The scripted expert: its phase logic on synthetic states, and one real simulator episode."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.spatial.transform import Rotation

from refinevla_bench.harness.suites import get_suite
from refinevla_bench.policies.pose_math import quaternion_to_matrix
from refinevla_bench.policies.protocol import ObservationBatch, wants_privileged_state
from refinevla_bench.policies.registry import create_policy
from refinevla_bench.policies.scripted import (
    MAX_ROTATION,
    MAX_TRANSLATION,
    TASK_PLANS,
    Phase,
    ScriptedExpert,
    gripper_yaw,
)
from tests.support import run_sim_script

FloatArray = npt.NDArray[np.float64]

CARROT = "put carrot on plate"
STACK = "stack the green block on the yellow block"
TABLE_Z = 0.0
# the gripper pointing down (end-effector x axis along -z, z axis forward along +x)
DOWN = Rotation.from_matrix([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def wxyz(rotation: Rotation) -> FloatArray:
    x, y, z, w = rotation.as_quat()
    return np.array([w, x, y, z])


@dataclass
class KinematicWorld:
    """A perfect arm (the end effector is exactly where the commands put it) and one object
    that the closed gripper carries when it closes around it, and that drops when released."""

    source: FloatArray
    source_yaw: float = 0.0
    target: FloatArray = field(default_factory=lambda: np.array([0.38, -0.05, 0.0]))
    tcp: FloatArray = field(default_factory=lambda: np.array([0.29, -0.006, 0.135]))
    tcp_rotation: Rotation = DOWN
    source_size: FloatArray = field(default_factory=lambda: np.array([0.03, 0.03, 0.03]))
    target_size: FloatArray = field(default_factory=lambda: np.array([0.11, 0.11, 0.006]))
    held_offset: FloatArray | None = None
    frozen_xy: bool = False  # an arm that cannot reach: horizontal commands do nothing

    def state(self) -> dict[str, FloatArray]:
        source_rotation = Rotation.from_euler("z", self.source_yaw)
        return {
            "tcp_pose": np.concatenate([self.tcp, wxyz(self.tcp_rotation)])[None],
            "source_pose": np.concatenate([self.source, wxyz(source_rotation)])[None],
            "target_pose": np.concatenate([self.target, [1.0, 0.0, 0.0, 0.0]])[None],
            "source_size": self.source_size[None],
            "target_size": self.target_size[None],
            "source_grasped": np.array([1.0 if self.held_offset is not None else 0.0]),
        }

    def apply(self, action: FloatArray) -> None:
        move = action[:3].copy()
        if self.frozen_xy:
            move[:2] = 0.0
        self.tcp = self.tcp + move
        self.tcp_rotation = Rotation.from_rotvec(action[3:6]) * self.tcp_rotation
        closed = action[6] < 0
        around = np.linalg.norm(self.tcp[:2] - self.source[:2]) < 0.03
        if closed and self.held_offset is None and around:
            self.held_offset = self.tcp - self.source
        elif not closed and self.held_offset is not None:
            self.held_offset = None
            over_target = np.linalg.norm(self.source[:2] - self.target[:2]) < 0.05
            floor = self.target[2] + self.target_size[2] / 2 if over_target else TABLE_Z
            self.source = np.array([*self.source[:2], floor + self.source_size[2] / 2])
        if self.held_offset is not None:
            self.source = self.tcp - self.held_offset


def observe(*worlds: KinematicWorld, instructions: tuple[str, ...]) -> ObservationBatch:
    states = [world.state() for world in worlds]
    return ObservationBatch(
        images=np.zeros((len(worlds), 4, 4, 3), dtype=np.uint8),
        instructions=instructions,
        state={key: np.concatenate([s[key] for s in states]) for key in states[0]},
    )


def play(
    world: KinematicWorld, instruction: str, steps: int, expert: ScriptedExpert | None = None
) -> tuple[list[FloatArray], list[Phase]]:
    """Run one episode in the kinematic world; return the actions and the phase at each step."""
    expert = expert or ScriptedExpert()
    expert.reset([instruction])
    actions, phases = [], []
    for _ in range(steps):
        action = expert.act(observe(world, instructions=(instruction,)))[0]
        phases.append(expert._episodes[0].phase)
        actions.append(action)
        world.apply(action)
    return actions, phases


def carrot_world(source_yaw: float = 0.0, frozen_xy: bool = False) -> KinematicWorld:
    """Episode 0 of the carrot task, as the simulator starts it."""
    return KinematicWorld(
        source=np.array([0.383, 0.104, 0.018]), source_yaw=source_yaw, frozen_xy=frozen_xy
    )


def stack_world() -> KinematicWorld:
    return KinematicWorld(
        source=np.array([0.257, 0.078, 0.015]), target=np.array([0.357, -0.022, 0.015])
    )


def test_expert_declares_the_learned_policy_interface() -> None:
    assert ScriptedExpert.conventions.rotation == "axis_angle"
    assert ScriptedExpert.conventions.gripper == "absolute"
    assert wants_privileged_state(ScriptedExpert())
    assert isinstance(create_policy("scripted"), ScriptedExpert)
    assert set(TASK_PLANS) == {task.instruction for task in get_suite("widowx").tasks}


def test_quaternion_helper_matches_scipy() -> None:
    rotations = Rotation.random(50, random_state=5)
    for rotation in rotations:
        matrix = rotation.as_matrix()
        np.testing.assert_allclose(quaternion_to_matrix(wxyz(rotation)), matrix, atol=1e-12)


def test_first_action_moves_toward_the_source_with_the_gripper_open() -> None:
    world = carrot_world()
    expert = ScriptedExpert()
    expert.reset([CARROT])
    action = expert.act(observe(world, instructions=(CARROT,)))[0]
    towards = world.source[:2] - world.tcp[:2]
    assert action[:2] @ towards > 0.9 * np.linalg.norm(action[:2]) * np.linalg.norm(towards)
    assert np.linalg.norm(action[:3]) == pytest.approx(MAX_TRANSLATION)
    assert action[6] == 1.0


def test_a_whole_pick_and_place_runs_the_phases_in_order_and_ends_still() -> None:
    world = carrot_world()
    actions, phases = play(world, CARROT, steps=60)
    assert [phase for phase, _ in itertools.groupby(phases)] == list(Phase)
    assert np.linalg.norm(world.source[:2] - world.target[:2]) < 0.005
    assert world.held_offset is None
    for action in actions:
        assert np.linalg.norm(action[:3]) <= MAX_TRANSLATION + 1e-12
        assert np.linalg.norm(action[3:6]) <= MAX_ROTATION + 1e-12
    # success is scored at the last step: by then the arm holds still with the gripper open
    assert np.allclose(np.array(actions[-10:])[:, :6], 0.0)
    assert all(action[6] == 1.0 for action in actions[-10:])


def test_gripper_closes_only_when_aligned_and_low() -> None:
    world = carrot_world(source_yaw=0.6)
    expert = ScriptedExpert()
    expert.reset([CARROT])
    for _ in range(20):
        action = expert.act(observe(world, instructions=(CARROT,)))[0]
        if action[6] < 0:
            break
        world.apply(action)
    assert action[6] < 0
    grasp_z = world.source[2] + TASK_PLANS[CARROT].grasp_height
    assert world.tcp[2] == pytest.approx(grasp_z, abs=0.003)
    assert np.linalg.norm(world.tcp[:2] - world.source[:2]) < 0.003
    assert gripper_yaw(world.tcp_rotation.as_matrix()) == pytest.approx(0.6, abs=0.01)


def test_an_arm_that_never_gets_over_the_object_never_closes() -> None:
    stuck = carrot_world(frozen_xy=True)
    actions, phases = play(stuck, CARROT, steps=40)
    assert all(action[6] == 1.0 for action in actions)
    assert Phase.DESCEND in phases  # it tried, then went back up to approach again
    assert phases[-1] in (Phase.APPROACH, Phase.DESCEND)


@pytest.mark.parametrize(("source_yaw", "grasp_yaw"), [(0.6, 0.6), (2.5, 2.5 - np.pi)])
def test_gripper_turns_to_the_long_axis_by_the_shortest_way(
    source_yaw: float, grasp_yaw: float
) -> None:
    world = carrot_world(source_yaw=source_yaw)
    actions, _ = play(world, CARROT, steps=8)
    assert gripper_yaw(world.tcp_rotation.as_matrix()) == pytest.approx(grasp_yaw, abs=1e-6)
    # the gripper still points straight down: every turn was about the base's vertical axis
    assert world.tcp_rotation.as_matrix()[2, 0] == pytest.approx(-1.0)
    for action in actions:
        assert np.allclose(action[3:5], 0.0, atol=1e-9)
    assert max(abs(action[5]) for action in actions) == pytest.approx(MAX_ROTATION)


def test_unknown_instruction_raises_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="open the drawer") as caught:
        ScriptedExpert().reset(["open the drawer"])
    assert all(instruction in str(caught.value) for instruction in TASK_PLANS)


def test_act_needs_privileged_state_and_a_matching_reset() -> None:
    expert = ScriptedExpert()
    expert.reset([CARROT])
    blind = ObservationBatch(np.zeros((1, 4, 4, 3), dtype=np.uint8), (CARROT,))
    with pytest.raises(ValueError, match="privileged state"):
        expert.act(blind)
    world = carrot_world()
    with pytest.raises(ValueError, match="2 rows"):
        expert.act(observe(world, world, instructions=(CARROT, CARROT)))


def test_batch_of_two_keeps_separate_phases() -> None:
    """Two episodes in one batch play exactly as each does alone."""
    instructions = (CARROT, STACK)
    alone = [play(carrot_world(), CARROT, 40)[0], play(stack_world(), STACK, 40)[0]]
    worlds = [carrot_world(), stack_world()]
    expert = ScriptedExpert()
    expert.reset(instructions)
    differ = False
    for step in range(40):
        actions = expert.act(observe(*worlds, instructions=instructions))
        first, second = (episode.phase for episode in expert._episodes)
        differ = differ or first != second
        for row, world in enumerate(worlds):
            np.testing.assert_array_equal(actions[row], alone[row][step])
            world.apply(actions[row])
    assert differ


EPISODE_SCRIPT = r"""
import json, sys
from pathlib import Path
from refinevla_bench.harness.backends.maniskill import ManiSkillBackend
from refinevla_bench.harness.runner import run_task
from refinevla_bench.harness.suites import get_suite
from refinevla_bench.policies.scripted import ScriptedExpert

suite = get_suite("widowx")
task = suite.select_tasks(["carrot_on_plate"])[0]
backend = ManiSkillBackend(suite, Path(sys.argv[1]), "cpu")
with backend.open_task(task, privileged=True) as env:
    record = next(run_task(env, suite, ScriptedExpert(), [0], seed=0))
print(json.dumps(record.to_json()))
"""


def test_expert_puts_the_carrot_on_the_plate_in_the_simulator(widowx_assets: Path) -> None:
    """Through the real backend, conversion and success rule: conventions fit end to end."""
    record = run_sim_script(EPISODE_SCRIPT, str(widowx_assets))
    assert record["error"] is None
    assert record["grasped"] is True
    assert record["success"] is True
    assert record["steps"] == 60
