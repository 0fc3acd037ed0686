"""`run --policy ws://HOST:PORT`: a served policy behind the ordinary Policy protocol.

The server's handshake declares the policy's conventions; the client exposes them as its own,
so the harness's one conversion module converts (or refuses) exactly as for a local policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException
from websockets.sync.client import ClientConnection, connect

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.serving.codec import WireError, pack, unpack
from refinevla_bench.harness.serving.openpi import OpenpiDialect, is_openpi_metadata
from refinevla_bench.harness.serving.protocol import (
    PROTOCOL_VERSION,
    ActReply,
    ActRequest,
    Handshake,
    ResetRequest,
    check_reset_reply,
    reply_from_wire,
)
from refinevla_bench.harness.serving.server import MAX_MESSAGE_BYTES
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    ObservationBatch,
    Policy,
    PolicyConventions,
)

SERVE_FIX = "start a server with `refinevla-bench serve --policy NAME --port PORT`, then pass ws://HOST:PORT"
Result = TypeVar("Result")


@dataclass(frozen=True)
class ClientSettings:
    timeout_s: float = 120.0  # per call: a stuck server fails the step instead of hanging a run
    connect_attempts: int = 6
    first_backoff_s: float = 0.1  # doubled after each failed attempt


class RemoteTimeoutError(TimeoutError):
    """The server did not answer within the per-call timeout."""


class Dialect(Protocol):
    """How requests are phrased for one kind of server."""

    @property
    def conventions(self) -> PolicyConventions: ...

    def reset(
        self, connection: ClientConnection, instructions: Sequence[str], wait: float
    ) -> None: ...

    def act(
        self, connection: ClientConnection, observation: ObservationBatch, wait: float
    ) -> ActReply: ...


@dataclass
class NativeDialect:
    """The refinevla-bench protocol (see `protocol.py`)."""

    handshake: Handshake

    @property
    def conventions(self) -> PolicyConventions:
        return self.handshake.conventions

    def reset(self, connection: ClientConnection, instructions: Sequence[str], wait: float) -> None:
        connection.send(pack(ResetRequest(tuple(instructions)).to_wire()))
        check_reset_reply(unpack(connection.recv(timeout=wait)))

    def act(
        self, connection: ClientConnection, observation: ObservationBatch, wait: float
    ) -> ActReply:
        connection.send(pack(ActRequest(observation).to_wire()))
        return reply_from_wire(unpack(connection.recv(timeout=wait)), observation.batch_size)


def dialect_for(url: str, metadata: object) -> NativeDialect | OpenpiDialect:
    """Our handshake, or openpi's metadata; anything else is refused, never guessed at."""
    if not isinstance(metadata, Mapping):
        raise HarnessError(f"server at {url} sent no metadata map first", SERVE_FIX)
    if is_openpi_metadata(metadata):
        return OpenpiDialect.from_metadata(url, metadata)
    try:
        handshake = Handshake.from_wire(metadata)
    except WireError as error:
        raise HarnessError(f"server at {url} sent a bad handshake: {error}", SERVE_FIX) from error
    if handshake.protocol != PROTOCOL_VERSION or handshake.action_dim != ACTION_DIM:
        raise HarnessError(
            f"server at {url} speaks {handshake.protocol} with {handshake.action_dim}-d actions; "
            f"this client speaks {PROTOCOL_VERSION} with {ACTION_DIM}-d actions",
            "serve the policy with the same refinevla-bench version as the client",
        )
    return NativeDialect(handshake)


def _connected(url: str, settings: ClientSettings) -> ClientConnection:
    """An open connection whose closing is the caller's (RemotePolicy.close) from now on."""
    with ExitStack() as stack:
        connection = stack.enter_context(
            connect(
                url, open_timeout=settings.timeout_s, max_size=MAX_MESSAGE_BYTES, compression=None
            )
        )
        stack.pop_all()
    return connection


def open_session(url: str, settings: ClientSettings) -> tuple[ClientConnection, Dialect]:
    """Connect and read the server's first message, retrying with exponential backoff."""
    delay, failure = settings.first_backoff_s, "no attempt made"
    for attempt in range(settings.connect_attempts):
        if attempt:
            time.sleep(delay)
            delay *= 2
        try:
            connection = _connected(url, settings)
        except InvalidURI as error:
            raise HarnessError(f"'{url}' is not a ws:// URL", SERVE_FIX) from error
        except (OSError, TimeoutError, WebSocketException) as error:
            failure = f"{type(error).__name__}: {error}"
            continue
        try:
            metadata = unpack(connection.recv(timeout=settings.timeout_s))
        except WireError as error:
            connection.close()
            raise HarnessError(f"server at {url} is refused: {error}", SERVE_FIX) from error
        except (TimeoutError, ConnectionClosed) as error:
            connection.close()
            failure = f"no handshake ({type(error).__name__})"
            continue
        return connection, dialect_for(url, metadata)
    raise HarnessError(
        f"no policy server answers at {url} after {settings.connect_attempts} tries ({failure})",
        SERVE_FIX,
    )


class RemotePolicy:
    """A Policy whose reset/act run on a server; `conventions` is the server's declaration
    (set per server by `remote_policy`, which builds a subclass)."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions()

    def __init__(
        self, url: str, settings: ClientSettings, connection: ClientConnection, dialect: Dialect
    ) -> None:
        self.url = url
        self.settings = settings
        self._connection: ClientConnection | None = connection
        self._dialect = dialect
        self._instructions: tuple[str, ...] | None = None
        self._rationales: tuple[str, ...] | None = None
        self._terminations: tuple[bool, ...] | None = None

    def _reconnect(self) -> ClientConnection:
        connection, dialect = open_session(self.url, self.settings)
        if dialect.conventions != self.conventions:
            connection.close()
            raise HarnessError(
                f"server at {self.url} came back declaring {dialect.conventions}, "
                f"not {self.conventions}",
                "restart the run against one policy server",
            )
        self._connection, self._dialect = connection, dialect
        if self._instructions is not None:  # a fresh server-side policy needs its reset
            dialect.reset(connection, self._instructions, self.settings.timeout_s)
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    def _call(self, request: Callable[[ClientConnection], Result]) -> Result:
        """One request; after a dropped connection, reconnect (replaying `reset`) and retry
        once. A timeout is not retried: the server may still be busy with the request."""
        for attempt in range(2):
            connection = self._connection or self._reconnect()
            try:
                return request(connection)
            except TimeoutError as error:
                self._drop()  # its late reply must not answer the next request
                raise RemoteTimeoutError(
                    f"server at {self.url} did not answer within {self.settings.timeout_s} s"
                ) from error
            except ConnectionClosed:
                self._drop()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def reset(self, instructions: Sequence[str]) -> None:
        self._instructions = tuple(instructions)
        wait = self.settings.timeout_s
        self._call(lambda connection: self._dialect.reset(connection, instructions, wait))

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        wait = self.settings.timeout_s
        reply = self._call(lambda connection: self._dialect.act(connection, observation, wait))
        self._rationales = reply.rationales
        self._terminations = reply.terminations
        return np.asarray(reply.actions, dtype=np.float64)

    def last_rationales(self) -> Sequence[str] | None:
        return self._rationales

    def last_terminations(self) -> Sequence[bool] | None:
        return self._terminations

    def close(self) -> None:
        self._drop()


def remote_policy(url: str, settings: ClientSettings | None = None) -> Policy:
    """Connect to a policy server at a ws:// URL; its declared conventions become the policy's."""
    settings = settings or ClientSettings()
    connection, dialect = open_session(url, settings)
    bound: dict[str, Any] = {"conventions": dialect.conventions}
    policy_class = type("RemotePolicy", (RemotePolicy,), bound)
    return cast(RemotePolicy, policy_class(url, settings, connection, dialect))
