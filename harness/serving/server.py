"""An asyncio WebSocket server that hosts one policy for many harness clients.

How `reset` meets batching: with `max_batch == 1` every open connection has its own policy
instance (instances of closed connections are reused, so a model loads once per concurrent
client), and `reset` and `act` behave exactly as in process, for any policy. With
`max_batch > 1`, rows from all connections are gathered into one `act` call on a single shared
instance; that is only correct for policies whose `act` depends on the observation alone, so
the policy must declare `stateless = True` (a class attribute), and `reset` is then
acknowledged without being forwarded (it would clear other clients' episodes).
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.serving.codec import WireError, pack, unpack
from refinevla_bench.harness.serving.protocol import (
    RESET_DONE,
    ActReply,
    ErrorReply,
    Handshake,
    ResetRequest,
    request_from_wire,
)
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    ObservationBatch,
    Policy,
    ReasoningPolicy,
    TerminatingPolicy,
)

HEALTH_PATH = "/healthz"
MAX_MESSAGE_BYTES = 512 * 2**20  # a batch of full-resolution frames fits comfortably


def is_stateless(policy: Policy) -> bool:
    return bool(getattr(policy, "stateless", False))


def _act_now(policy: Policy, observation: ObservationBatch) -> ActReply:
    actions = np.asarray(policy.act(observation))
    if actions.shape != (observation.batch_size, ACTION_DIM) or actions.dtype.kind != "f":
        raise ValueError(f"policy returned actions {actions.dtype}{actions.shape}")
    rationales = policy.last_rationales() if isinstance(policy, ReasoningPolicy) else None
    stops = policy.last_terminations() if isinstance(policy, TerminatingPolicy) else None
    return ActReply(
        actions,
        tuple(rationales) if rationales is not None else None,
        tuple(bool(flag) for flag in stops) if stops is not None else None,
    )


def _concatenated(observations: list[ObservationBatch]) -> ObservationBatch:
    keys = observations[0].state.keys()
    proprio_keys = observations[0].proprio.keys()
    return ObservationBatch(
        images=np.concatenate([o.images for o in observations]),
        instructions=tuple(text for o in observations for text in o.instructions),
        episodes=tuple(key for o in observations for key in o.episodes),
        state={key: np.concatenate([o.state[key] for o in observations]) for key in keys},
        proprio={
            key: np.concatenate([o.proprio[key] for o in observations]) for key in proprio_keys
        },
    )


def _can_join(first: ObservationBatch, other: ObservationBatch) -> bool:
    """Rows share one array only with equal image sizes and the same kinds of extra data."""
    return (
        first.images.shape[1:] == other.images.shape[1:]
        and first.state.keys() == other.state.keys()
        and first.proprio.keys() == other.proprio.keys()
        and bool(first.episodes) == bool(other.episodes)
    )


@dataclass
class _Pending:
    observation: ObservationBatch
    reply: asyncio.Future[ActReply]


@dataclass
class Batcher:
    """Gathers act requests from all connections into calls of at most `max_batch` rows,
    waiting at most `max_wait_s` after the first request for others to join."""

    policy: Policy
    max_batch: int
    max_wait_s: float
    calls: int = 0
    _queue: asyncio.Queue[_Pending] = field(default_factory=asyncio.Queue)
    _held: _Pending | None = None

    async def act(self, observation: ObservationBatch) -> ActReply:
        reply: asyncio.Future[ActReply] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(observation, reply))
        return await reply

    async def _gather(self) -> list[_Pending]:
        first = self._held or await self._queue.get()
        self._held = None
        batch, rows = [first], first.observation.batch_size
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while rows < self.max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                pending = await asyncio.wait_for(self._queue.get(), max(remaining, 0.0))
            except TimeoutError:
                break
            size = pending.observation.batch_size
            fits = rows + size <= self.max_batch
            if not (fits and _can_join(first.observation, pending.observation)):
                self._held = pending  # it opens the next batch
                break
            batch.append(pending)
            rows += size
        return batch

    async def run(self) -> None:
        while True:
            batch = await self._gather()
            live = [pending for pending in batch if not pending.reply.done()]
            if not live:
                continue
            self.calls += 1
            try:
                joined = _concatenated([pending.observation for pending in live])
                reply = await asyncio.to_thread(_act_now, self.policy, joined)
            except Exception as error:  # the policy's failure goes to every caller in the batch
                for pending in live:
                    pending.reply.set_exception(error)
                continue
            start = 0
            for pending in live:
                stop = start + pending.observation.batch_size
                pending.reply.set_result(reply.rows(start, stop))
                start = stop


class PolicyServer:
    """Serves `make_policy()`'s policy; one instance per connection unless batching is on."""

    def __init__(
        self,
        make_policy: Callable[[], Policy],
        name: str,
        max_batch: int = 1,
        max_wait_ms: float = 5.0,
    ) -> None:
        if max_batch < 1:
            raise HarnessError(f"max batch {max_batch} is below 1", "pass --max-batch 1 or more")
        self.make_policy = make_policy
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.batcher: Batcher | None = None
        probe = make_policy()
        self._idle: list[Policy] = []  # per-connection instances kept for the next connection
        if max_batch > 1:
            if not is_stateless(probe):
                raise HarnessError(
                    f"policy '{name}' does not declare `stateless = True`, so rows of different "
                    "clients cannot share its act() calls",
                    "serve it with --max-batch 1 (one policy per connection)",
                )
            self.batcher = Batcher(probe, max_batch, self.max_wait_s)
        else:
            self._idle.append(probe)
        self.handshake = Handshake(name, probe.conventions, ACTION_DIM, max_batch)

    def _health(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != HEALTH_PATH:
            return None
        body = {"status": "ok", "policy": self.name, "protocol": self.handshake.protocol}
        response = connection.respond(HTTPStatus.OK, json.dumps(body) + "\n")
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _reply(self, policy: Policy | None, message: object) -> dict[str, object]:
        try:
            request = request_from_wire(unpack(message))
        except WireError as error:
            return ErrorReply(f"refused request: {error}").to_wire()
        try:
            if isinstance(request, ResetRequest):
                if policy is not None:
                    await asyncio.to_thread(policy.reset, list(request.instructions))
                return RESET_DONE
            if self.batcher is not None:
                return (await self.batcher.act(request.observation)).to_wire()
            assert policy is not None
            reply = await asyncio.to_thread(_act_now, policy, request.observation)
            return reply.to_wire()
        except Exception as error:
            detail = traceback.format_exception_only(error)[-1].strip()
            return ErrorReply(f"policy '{self.name}' failed: {detail}").to_wire()

    async def _own_policy(self) -> Policy | None:
        """A connection's private instance: an idle one (its client resets it before acting,
        as the runner always does), else a new one; None when batching shares one."""
        if self.batcher is not None:
            return None
        return self._idle.pop() if self._idle else await asyncio.to_thread(self.make_policy)

    async def _handle(self, connection: ServerConnection) -> None:
        own = await self._own_policy()
        try:
            await connection.send(pack(self.handshake.to_wire()))
            async for message in connection:
                await connection.send(pack(await self._reply(own, message)))
        except ConnectionClosed:
            pass
        finally:
            if own is not None:
                self._idle.append(own)

    async def serve(
        self, host: str, port: int, started: Callable[[Server], Awaitable[None]] | None = None
    ) -> None:
        """Serve until cancelled; `started` sees the bound server (its port when 0 was asked)."""
        batching = asyncio.create_task(self.batcher.run()) if self.batcher else None
        try:
            async with serve(
                self._handle,
                host,
                port,
                process_request=self._health,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
            ) as server:
                if started is not None:
                    await started(server)
                await server.serve_forever()
        finally:
            if batching is not None:
                batching.cancel()


def bound_port(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])
