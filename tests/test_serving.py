"""The policy wire protocol: codec, server, client, openpi interop, batching and failures.

Servers run on 127.0.0.1 ephemeral ports in a background thread with small in-test policies.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar, cast

import msgpack
import numpy as np
import numpy.typing as npt
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.sync.client import connect

from refinevla_bench.harness.backends.maniskill import TaskEnvironment
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.runner import run_batch
from refinevla_bench.harness.serving.client import (
    ClientSettings,
    RemotePolicy,
    RemoteTimeoutError,
    remote_policy,
)
from refinevla_bench.harness.serving.codec import WireError, pack, unpack
from refinevla_bench.harness.serving.protocol import RemotePolicyError
from refinevla_bench.harness.serving.server import PolicyServer, bound_port
from refinevla_bench.policies.protocol import (
    EpisodeKey,
    ObservationBatch,
    Policy,
    PolicyConventions,
)
from refinevla_bench.policies.random import RandomPolicy
from refinevla_bench.policies.zero import ZeroPolicy
from tests.test_runner_batch import SUITE, ScriptedEnv

SAFE_DTYPES = [
    "bool",
    *(f"int{bits}" for bits in (8, 16, 32, 64)),
    *(f"uint{bits}" for bits in (8, 16, 32, 64)),
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
]
FAST = ClientSettings(timeout_s=10.0, connect_attempts=8, first_backoff_s=0.05)


def array_map(data: bytes, dtype: str, shape: list[int]) -> dict[bytes, Any]:
    """An array in openpi's layout, written by hand so the decoder is tested independently."""
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def observation(rows: int, instruction: str = "put carrot on plate") -> ObservationBatch:
    return ObservationBatch(
        images=np.full((rows, 8, 6, 3), 7, dtype=np.uint8),
        instructions=(instruction,) * rows,
        episodes=tuple(EpisodeKey("carrot_on_plate", row, 0) for row in range(rows)),
    )


# --- codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAFE_DTYPES)
def test_every_safe_dtype_round_trips_including_0d_empty_and_strided(name: str) -> None:
    dtype = np.dtype(name)
    grid = np.arange(24).reshape(4, 6) % 2 if dtype.kind == "b" else np.arange(24).reshape(4, 6)
    strided = grid.astype(dtype)[:, ::2]  # not contiguous
    cases = [strided, np.zeros((), dtype), np.zeros((0, 3), dtype), dtype.type(1)]
    decoded = unpack(pack({"cases": cases}))["cases"]
    assert all(isinstance(got, np.ndarray) for got in decoded[:3])
    for sent, got in zip(cases, decoded, strict=True):
        # a float64 scalar is a Python float to msgpack, which sends it natively
        assert np.asarray(got).dtype == dtype and np.shape(got) == sent.shape
        assert np.array_equal(got, sent)


def test_big_endian_arrays_are_converted_to_native_order() -> None:
    sent = np.arange(6, dtype=">f4").reshape(2, 3)
    got = unpack(pack(sent))
    assert got.dtype == np.dtype("=f4") and np.array_equal(got, sent)
    by_hand = msgpack.packb(array_map(np.array([1, 2], ">i2").tobytes(), ">i2", [2]))
    assert unpack(by_hand).tolist() == [1, 2]


def test_decoded_arrays_are_writable_copies() -> None:
    got = unpack(pack(np.zeros(3, np.float32)))
    got[0] = 1.0
    assert got.tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "value", [np.array([object()], dtype=object), np.zeros(2, "V4"), np.zeros(2, "M8[s]")]
)
def test_unsafe_dtypes_are_refused_on_encode(value: npt.NDArray[Any]) -> None:
    with pytest.raises(WireError, match="refused"):
        pack({"value": value})


@pytest.mark.parametrize("dtype", ["|O", "|V8", "<M8[s]", "<U4", "float32", "not-a-dtype", 7])
def test_unsafe_or_non_canonical_dtypes_are_refused_on_decode(dtype: object) -> None:
    payload = msgpack.packb(array_map(b"\0" * 8, cast(str, dtype), [1]))
    with pytest.raises(WireError, match="dtype"):
        unpack(payload)


def test_truncated_or_misshapen_array_data_is_refused() -> None:
    payload = msgpack.packb(array_map(b"\0" * 15, "<f4", [2, 2]))
    with pytest.raises(WireError, match="15 bytes"):
        unpack(payload)
    with pytest.raises(WireError, match="shape"):
        unpack(msgpack.packb(array_map(b"", "<f4", [-1])))


def test_pickle_payloads_and_other_garbage_are_refused() -> None:
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        with pytest.raises(WireError, match="pickle"):
            unpack(pickle.dumps({"actions": np.zeros(3)}, protocol=protocol))
    with pytest.raises(WireError, match="pickle"):
        unpack(pickle.dumps([1, 2], protocol=0))
    with pytest.raises(WireError, match="text"):
        unpack("Traceback (most recent call last)")


# --- a server in a background thread -------------------------------------------------------


class ServerThread:
    """Runs an asyncio server coroutine on its own loop until stopped."""

    def __init__(self, start: Callable[[Callable[[Server], Any]], Any]) -> None:
        self._start = start
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "server did not start"

    async def _started(self, bound: Server) -> None:
        self.port = bound_port(bound)
        self._ready.set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._start(self._started))
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        assert self._task is not None
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)


@contextmanager
def running(server: PolicyServer, port: int = 0) -> Iterator[ServerThread]:
    thread = ServerThread(lambda started: server.serve("127.0.0.1", port, started))
    try:
        yield thread
    finally:
        thread.stop()


@contextmanager
def connected(url: str, settings: ClientSettings = FAST) -> Iterator[RemotePolicy]:
    policy = cast(RemotePolicy, remote_policy(url, settings))
    try:
        yield policy
    finally:
        policy.close()


class CountingPolicy:
    """Stateless: row i of the reply is the number in its instruction; counts act() calls."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions(rotation="roll_pitch_yaw")
    stateless: ClassVar[bool] = True

    def __init__(self) -> None:
        self.calls = 0
        self.rows: list[int] = []

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        self.calls += 1
        self.rows.append(observation.batch_size)
        actions = np.zeros((observation.batch_size, 7))
        actions[:, 0] = [float(text.split()[-1]) for text in observation.instructions]
        return actions

    def last_rationales(self) -> Sequence[str] | None:
        return [f"thinking about {text}" for text in ("a",) * self.rows[-1]]


# --- the real server -----------------------------------------------------------------------


def test_handshake_declares_the_served_policys_conventions_and_actions_come_back() -> None:
    with running(PolicyServer(CountingPolicy, "counting")) as server, connected(server.url) as p:
        assert p.conventions == CountingPolicy.conventions
        assert isinstance(p, Policy)
        p.reset(["go 3"])
        actions = p.act(observation(2, "go 3"))
        assert actions.shape == (2, 7) and actions[:, 0].tolist() == [3.0, 3.0]
        assert p.last_rationales() == ("thinking about a",) * 2


def test_random_policy_served_per_connection_matches_it_in_process() -> None:
    with running(PolicyServer(RandomPolicy, "random")) as server, connected(server.url) as p:
        p.reset(["x"] * 3)
        local = RandomPolicy()
        local.reset(["x"] * 3)
        for _ in range(3):
            assert np.array_equal(p.act(observation(3)), local.act(observation(3)))


def test_health_endpoint_answers_plain_http_with_json() -> None:
    with running(PolicyServer(ZeroPolicy, "zero")) as server:
        url = f"http://127.0.0.1:{server.port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            body = json.loads(response.read())
    assert body["status"] == "ok" and body["policy"] == "zero"


def test_bad_requests_get_an_error_reply_and_the_connection_stays_usable() -> None:
    with running(PolicyServer(ZeroPolicy, "zero")) as server, connect(server.url) as raw:
        unpack(raw.recv(timeout=10))  # the handshake
        raw.send(pickle.dumps({"type": "act"}))
        assert "pickle" in unpack(raw.recv(timeout=10))["message"]
        bad = {"type": "act", "images": np.zeros((1, 2, 2, 3), np.float32)}
        raw.send(pack({**bad, "instructions": ["x"]}))
        assert "uint8" in unpack(raw.recv(timeout=10))["message"]
        raw.send(pack({"type": "reset", "instructions": []}))
        assert unpack(raw.recv(timeout=10)) == {"type": "reset_done"}


class FailingPolicy(ZeroPolicy):
    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        raise ValueError("model exploded")


def test_a_policy_failure_reaches_the_client_as_an_error() -> None:
    server = PolicyServer(FailingPolicy, "failing")
    with (
        running(server) as thread,
        connected(thread.url) as p,
        pytest.raises(RemotePolicyError, match="model exploded"),
    ):
        p.act(observation(1))


def test_concurrent_clients_share_batched_calls_and_get_their_own_rows() -> None:
    clients = 6
    shared = CountingPolicy()
    server = PolicyServer(lambda: shared, "counting", max_batch=clients, max_wait_ms=2000)

    def one_client(index: int, url: str) -> list[float]:
        with connected(url) as policy:
            policy.reset([f"go {index}"])
            row: list[float] = policy.act(observation(1, f"go {index}"))[:, 0].tolist()
            return row

    with running(server) as thread, ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one_client, range(clients), [thread.url] * clients))
    assert results == [[float(index)] for index in range(clients)]
    assert 1 <= shared.calls < clients and sum(shared.rows) == clients


def test_batching_across_clients_is_refused_for_a_stateful_policy() -> None:
    with pytest.raises(HarnessError, match="stateless") as caught:
        PolicyServer(RandomPolicy, "random", max_batch=4)
    assert "--max-batch 1" in caught.value.fix


def test_built_in_stateless_policies_may_be_served_batched() -> None:
    with running(PolicyServer(ZeroPolicy, "zero", max_batch=4)) as thread:
        policy = remote_policy(thread.url, FAST)
        assert policy.act(observation(1, "go")).shape == (1, 7)
        cast(RemotePolicy, policy).close()


def test_client_reconnects_after_the_server_restarts_on_the_same_port() -> None:
    with running(PolicyServer(CountingPolicy, "counting")) as first:
        port = first.port
        policy = cast(RemotePolicy, remote_policy(first.url, FAST))
        policy.reset(["go 1"])
        assert policy.act(observation(1, "go 1"))[0, 0] == 1.0
    with running(PolicyServer(CountingPolicy, "counting"), port=port):
        assert policy.act(observation(1, "go 2"))[0, 0] == 2.0  # reconnected and retried
    policy.close()


def test_a_server_that_comes_back_with_other_conventions_is_refused() -> None:
    with running(PolicyServer(CountingPolicy, "counting")) as first:
        port = first.port
        policy = cast(RemotePolicy, remote_policy(first.url, FAST))
    with (
        running(PolicyServer(ZeroPolicy, "zero"), port=port),
        pytest.raises(HarnessError, match="came back declaring"),
    ):
        policy.act(observation(1, "go 1"))


def test_an_unreachable_server_names_the_serve_command() -> None:
    with running(PolicyServer(ZeroPolicy, "zero")) as server:
        url = server.url
    settings = ClientSettings(timeout_s=2.0, connect_attempts=2, first_backoff_s=0.01)
    with pytest.raises(HarnessError) as caught:
        remote_policy(url, settings)
    assert "no policy server answers" in caught.value.problem
    assert "refinevla-bench serve" in caught.value.fix


class SlowPolicy(ZeroPolicy):
    """Blocks in act() until released, standing in for a model that hangs."""

    release = threading.Event()

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        SlowPolicy.release.wait(10)
        return super().act(observation)


def test_a_call_past_its_timeout_fails_and_the_next_call_reconnects() -> None:
    settings = ClientSettings(timeout_s=0.3, connect_attempts=4, first_backoff_s=0.05)
    with running(PolicyServer(SlowPolicy, "slow")) as server, connected(server.url, settings) as p:
        with pytest.raises(RemoteTimeoutError, match="did not answer"):
            p.act(observation(1))
        SlowPolicy.release.set()
        assert p.act(observation(2)).shape == (2, 7)


# --- conventions a controller refuses ------------------------------------------------------


class RelativeGripperPolicy(ZeroPolicy):
    conventions = PolicyConventions(gripper="relative")


def test_a_served_convention_the_controller_refuses_ends_episodes_with_that_refusal() -> None:
    server = PolicyServer(RelativeGripperPolicy, "relative")
    with running(server) as thread, connected(thread.url) as policy:
        env = cast(TaskEnvironment, ScriptedEnv())
        records = run_batch(env, SUITE, policy, [0, 1, 2], seed=0)
    assert all(record.termination == "error" for record in records)
    assert all("gripper is relative" in (record.error or "") for record in records)
    assert all(record.steps == 0 for record in records)


# --- openpi-style servers ------------------------------------------------------------------


def openpi_packb(message: object) -> bytes:
    """Arrays as openpi lays them out, encoded without our codec."""

    def encode(value: object) -> object:
        if isinstance(value, np.ndarray):
            return array_map(value.tobytes(), value.dtype.str, list(value.shape))
        raise TypeError(type(value))

    return cast(bytes, msgpack.packb(message, default=encode))


OPENPI_CONVENTIONS = {
    "rotation": "euler_xyz",
    "gripper": "absolute",
    "image_size": [224, 224],
    "resize": "bilinear",
}


async def openpi_like(
    started: Callable[[Server], Any], first: bytes, seen: list[dict[str, Any]]
) -> None:
    """Metadata first, then one {"actions": chunk} per observation, as openpi's server does."""

    async def handle(connection: ServerConnection) -> None:
        await connection.send(first)
        async for message in connection:
            request = unpack(message)
            seen.append(request)
            chunk = np.tile(np.arange(8, dtype=np.float32), (4, 1))
            chunk[:, 0] = len(request["prompt"])
            chunk[:, 1] = np.arange(1, 5)  # which entry of the chunk an action came from
            await connection.send(openpi_packb({"actions": chunk}))

    async with serve(handle, "127.0.0.1", 0) as server:
        await started(server)
        await server.serve_forever()


@contextmanager
def openpi_server(metadata: bytes, seen: list[dict[str, Any]]) -> Iterator[ServerThread]:
    thread = ServerThread(lambda started: openpi_like(started, metadata, seen))
    try:
        yield thread
    finally:
        thread.stop()


def test_openpi_server_is_evaluated_row_by_row_with_its_declared_conventions() -> None:
    seen: list[dict[str, Any]] = []
    metadata = openpi_packb({"policy": "pi0", "refinevla_conventions": OPENPI_CONVENTIONS})
    with openpi_server(metadata, seen) as server, connected(server.url) as policy:
        assert policy.conventions == PolicyConventions("euler_xyz", "absolute", (224, 224))
        policy.reset(["ab", "abc"])
        batch = ObservationBatch(np.zeros((2, 4, 4, 3), np.uint8), ("ab", "abc"))
        actions = policy.act(batch)
    assert actions.shape == (2, 7) and actions[:, 0].tolist() == [2.0, 3.0]
    assert actions[0, 1:].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert [request["prompt"] for request in seen] == ["ab", "abc"]
    assert seen[0]["observation/image"].shape == (4, 4, 3)


def test_openpi_server_without_declared_conventions_is_refused() -> None:
    with (
        openpi_server(openpi_packb({"policy": "pi0"}), []) as server,
        pytest.raises(HarnessError, match="declares no action conventions"),
    ):
        remote_policy(server.url, FAST)


def test_a_server_speaking_pickle_is_refused() -> None:
    metadata = pickle.dumps({"refinevla_conventions": OPENPI_CONVENTIONS})
    with openpi_server(metadata, []) as server, pytest.raises(HarnessError, match="pickle"):
        remote_policy(server.url, FAST)


def test_a_server_replying_with_an_object_dtype_is_refused() -> None:
    metadata = openpi_packb({"refinevla_conventions": OPENPI_CONVENTIONS})

    async def evil(started: Callable[[Server], Any]) -> None:
        async def handle(connection: ServerConnection) -> None:
            await connection.send(metadata)
            async for _ in connection:
                await connection.send(msgpack.packb({"actions": array_map(b"\0" * 8, "|O", [1])}))

        async with serve(handle, "127.0.0.1", 0) as server:
            await started(server)
            await server.serve_forever()

    thread = ServerThread(evil)
    try:
        with connected(thread.url) as policy, pytest.raises(WireError, match="refused"):
            policy.act(observation(1))
    finally:
        thread.stop()
