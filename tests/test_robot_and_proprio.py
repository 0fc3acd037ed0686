"""The robot a policy declares, and the robot's own state (proprio) every policy may read.

A policy made for one robot is refused on another robot's suite, wherever it comes from (a
registered class, a served policy, a policy handed to the runner); proprio travels through the
runner, the wire protocol, the batching server and openpi servers; the simulator fills it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest

from refinevla_bench.harness.actions import check_policy_robot
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.runner import run_batch
from refinevla_bench.harness.serving.codec import WireError, pack, unpack
from refinevla_bench.harness.serving.protocol import (
    ActRequest,
    Handshake,
    conventions_from_wire,
    conventions_to_wire,
    request_from_wire,
)
from refinevla_bench.harness.serving.server import PolicyServer
from refinevla_bench.policies import registry
from refinevla_bench.policies.adapters.robots import parse_robot
from refinevla_bench.policies.protocol import ObservationBatch, PolicyConventions, Robot
from tests.test_runner_batch import SUITE, ScriptedEnv
from tests.test_serving import (
    OPENPI_CONVENTIONS,
    connected,
    openpi_packb,
    openpi_server,
    running,
)


class RobotAware:
    """Declares the robot it was constructed for, as adapters do."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions()

    def __init__(self, robot: str = "google_robot") -> None:
        self.conventions = PolicyConventions(robot=parse_robot(robot))  # type: ignore[misc]

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        return np.zeros((observation.batch_size, 7))


class ProprioEcho:
    """Stateless: action x = the row's gripper opening, y = its tcp x (what proprio carried);
    counts the rows of each act() call."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions()
    stateless: ClassVar[bool] = True

    def __init__(self) -> None:
        self.rows: list[int] = []

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        self.rows.append(observation.batch_size)
        actions = np.zeros((observation.batch_size, 7))
        actions[:, 0] = observation.proprio["gripper_opening"]
        actions[:, 1] = observation.proprio["tcp_pose"][:, 0]
        return actions


def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint("aware", f"{__name__}:RobotAware", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        registry,
        "registered_policies",
        lambda: {"aware": registry.PolicyEntry("aware", entry.value, entry)},
    )


def _observation(rows: int, opening: Sequence[float]) -> ObservationBatch:
    tcp = np.zeros((rows, 7))
    tcp[:, 0] = np.arange(rows) / 10
    return ObservationBatch(
        images=np.zeros((rows, 4, 4, 3), np.uint8),
        instructions=("x",) * rows,
        proprio={"tcp_pose": tcp, "gripper_opening": np.asarray(opening, dtype=np.float64)},
    )


def test_a_policy_for_another_robot_is_refused_and_the_fix_names_the_option() -> None:
    check_policy_robot(PolicyConventions(robot=None), "widowx", "any")
    check_policy_robot(PolicyConventions(robot="widowx"), "widowx", "same")
    with pytest.raises(HarnessError, match="acts for the google_robot robot") as caught:
        check_policy_robot(PolicyConventions(robot="google_robot"), "widowx", "octo")
    assert "--policy-arg robot=widowx" in caught.value.fix


def test_the_suite_tells_a_policy_its_robot_unless_the_user_chose_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _registered(monkeypatch)
    robot: Robot = "widowx"
    told = registry.create_policy("aware", {}, robot=robot)
    assert told.conventions.robot == "widowx"  # the class default (google_robot) was replaced
    assert registry.create_policy("aware", {}).conventions.robot == "google_robot"
    with pytest.raises(HarnessError, match="acts for the google_robot robot"):
        registry.create_policy("aware", {"robot": "google_robot"}, robot=robot)
    with pytest.raises(HarnessError, match="unknown --policy-arg robot 'franka'"):
        registry.create_policy("aware", {"robot": "franka"})


def test_the_runner_refuses_a_policy_declared_for_another_robot() -> None:
    with pytest.raises(HarnessError, match="acts for the google_robot robot"):
        run_batch(ScriptedEnv(), SUITE, RobotAware(), [0, 1, 2], seed=0)  # type: ignore[arg-type]
    records = run_batch(ScriptedEnv(), SUITE, RobotAware("widowx"), [0, 1, 2], seed=0)  # type: ignore[arg-type]
    assert [record.error for record in records] == [None, None, None]


def test_the_handshake_carries_the_robot_and_older_servers_declare_none() -> None:
    declared = PolicyConventions(
        "roll_pitch_yaw", "relative", (224, 224), "lanczos", "google_robot"
    )
    wire = unpack(pack(Handshake("octo", declared, 7, 1).to_wire()))
    assert Handshake.from_wire(wire).conventions == declared
    older = {key: value for key, value in conventions_to_wire(declared).items() if key != "robot"}
    assert conventions_from_wire(older).robot is None
    with pytest.raises(WireError, match="robot 'franka'"):
        conventions_from_wire({**conventions_to_wire(declared), "robot": "franka"})


def test_proprio_round_trips_on_the_wire_and_a_wrong_row_count_is_refused() -> None:
    sent = _observation(3, [0.0, 0.5, 1.0])
    received = request_from_wire(unpack(pack(ActRequest(sent).to_wire())))
    assert isinstance(received, ActRequest)
    for key, values in sent.proprio.items():
        assert np.array_equal(received.observation.proprio[key], values)
    message: dict[str, Any] = unpack(pack(ActRequest(sent).to_wire()))
    message["proprio"]["gripper_opening"] = np.zeros(2)
    with pytest.raises(WireError, match="proprio must map names to arrays with one row"):
        request_from_wire(message)


def test_a_batching_server_keeps_each_clients_proprio_with_its_rows() -> None:
    shared = ProprioEcho()
    server = PolicyServer(lambda: shared, "echo", max_batch=4, max_wait_ms=2000)
    openings = {2: [0.25, 0.75], 1: [0.5]}

    def one_client(rows: int, url: str) -> list[list[float]]:
        with connected(url) as policy:
            policy.reset(["x"] * rows)
            actions = policy.act(_observation(rows, openings[rows]))
            return [actions[:, 0].tolist(), actions[:, 1].tolist()]

    with running(server) as thread, ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one_client, [2, 1], [thread.url] * 2))
    assert shared.rows == [3]  # both clients' rows went through one act() call
    assert results == [[[0.25, 0.75], [0.0, 0.1]], [[0.5], [0.0]]]


def test_an_openpi_server_chunk_is_executed_for_its_declared_horizon() -> None:
    seen: list[dict[str, Any]] = []
    metadata = openpi_packb(
        {"refinevla_conventions": OPENPI_CONVENTIONS, "refinevla_action_horizon": 3}
    )
    with openpi_server(metadata, seen) as server, connected(server.url) as policy:
        policy.reset(["a", "bb"])
        batch = ObservationBatch(np.zeros((2, 4, 4, 3), np.uint8), ("a", "bb"))
        used = [policy.act(batch)[:, 1].tolist() for _ in range(4)]
        assert len(seen) == 4  # two rows, each asked at steps 1 and 4
        policy.reset(["a", "bb"])  # a new episode starts from a fresh chunk
        assert policy.act(batch)[:, 1].tolist() == [1.0, 1.0]
    assert used == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [1.0, 1.0]]
    assert len(seen) == 6


def test_an_openpi_server_declaring_a_bad_horizon_is_refused() -> None:
    metadata = openpi_packb(
        {"refinevla_conventions": OPENPI_CONVENTIONS, "refinevla_action_horizon": 0}
    )
    with (
        openpi_server(metadata, []) as server,
        pytest.raises(HarnessError, match="refinevla_action_horizon=0"),
        connected(server.url),
    ):
        pass


@pytest.mark.sim
def test_the_simulator_reports_the_robots_own_state(widowx_assets: Any) -> None:
    from refinevla_bench.harness.backends.maniskill import ManiSkillBackend

    backend = ManiSkillBackend(SUITE, widowx_assets, "cpu")
    task = SUITE.select_tasks(["carrot_on_plate"])[0]
    with backend.open_task(task, privileged=True) as env:
        first = env.reset([0], seed=0)
        assert np.allclose(first.proprio["tcp_pose"], first.state["tcp_pose"])
        assert first.proprio["gripper_opening"].tolist() == [1.0]  # starts open
        close = np.zeros((1, 7), np.float32)
        close[0, 6] = -1.0
        for _ in range(5):
            outcome = env.step(close)
    assert outcome.observation.proprio["gripper_opening"][0] < 0.05
    assert np.linalg.norm(outcome.observation.proprio["tcp_pose"][0, 3:]) == pytest.approx(1.0)


def test_an_openpi_server_declaring_a_state_gets_each_rows_encoded_proprio() -> None:
    seen: list[dict[str, Any]] = []
    metadata = openpi_packb(
        {
            "refinevla_conventions": OPENPI_CONVENTIONS,
            "refinevla_state_key": "observation/state",
            "refinevla_state_encoding": "pos_rpy_gripper",
        }
    )
    sent = _observation(2, [0.25, 1.0])
    half_turn_about_z = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])  # yaw 90 deg
    sent.proprio["tcp_pose"][:, 3:] = half_turn_about_z
    with openpi_server(metadata, seen) as server, connected(server.url) as policy:
        policy.reset(["x", "x"])
        policy.act(sent)
    states = [request["observation/state"] for request in seen]
    assert all(state.dtype == np.float32 for state in states)
    expected = [[0.0, 0, 0, 0, 0, np.pi / 2, 0.25], [0.1, 0, 0, 0, 0, np.pi / 2, 1.0]]
    assert np.allclose(np.stack(states), expected, atol=1e-6)


def test_an_openpi_server_declaring_a_state_key_without_its_encoding_is_refused() -> None:
    metadata = openpi_packb(
        {"refinevla_conventions": OPENPI_CONVENTIONS, "refinevla_state_key": "observation/state"}
    )
    with (
        openpi_server(metadata, []) as server,
        pytest.raises(HarnessError, match="declares state key"),
        connected(server.url),
    ):
        pass
