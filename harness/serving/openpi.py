"""Evaluating a policy served by openpi's websocket server.

openpi's server sends a metadata map first, then answers each observation map with a map
holding an action chunk. Its metadata says nothing about action conventions, so the harness
accepts an openpi server only when whoever started it put them there, under
`refinevla_conventions` (openpi servers take a `metadata` argument); it never guesses. Each
batch row is sent as one observation (openpi policies are unbatched) holding `observation/image`
and `prompt` (override the keys with `refinevla_image_key` / `refinevla_prompt_key` in the
metadata). A server whose policy conditions on the robot's state declares where it goes and how
it is laid out (`refinevla_state_key`, e.g. "observation/state", and `refinevla_state_encoding`,
one of pi0's encodings such as "bridge_pos_euler"); the row's proprio is encoded and sent there
as float32. Of each returned chunk the first `refinevla_action_horizon` actions (default 1: replan
every step) are executed one per step before the row's next query, as openpi's own clients do
with their replan interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.sync.client import ClientConnection

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.serving.codec import WireError, pack, unpack
from refinevla_bench.harness.serving.protocol import (
    ActReply,
    RemotePolicyError,
    conventions_from_wire,
)
from refinevla_bench.policies.adapters.pi0_decoding import (
    STATE_ENCODINGS,
    StateEncoding,
    parse_state_encoding,
    state_vector,
)
from refinevla_bench.policies.protocol import ACTION_DIM, ObservationBatch, PolicyConventions

CONVENTIONS_KEY = "refinevla_conventions"


def is_openpi_metadata(metadata: Mapping[str, Any]) -> bool:
    return "protocol" not in metadata


def _chunk(reply: object) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(reply, str):  # openpi answers a failure with its traceback as text
        raise RemotePolicyError(f"openpi server failed: {reply.strip()[-500:]}")
    actions = reply.get("actions") if isinstance(reply, Mapping) else None
    if not isinstance(actions, np.ndarray) or actions.dtype.kind != "f":
        raise WireError("openpi reply holds no float 'actions' array")
    chunk = actions.reshape(-1, actions.shape[-1]) if actions.ndim else actions.reshape(1, 1)
    if chunk.shape[0] == 0 or chunk.shape[1] < ACTION_DIM:
        raise WireError(f"openpi actions of shape {actions.shape} hold no {ACTION_DIM}-d action")
    return chunk[:, :ACTION_DIM].astype(np.float64)


@dataclass
class OpenpiDialect:
    conventions: PolicyConventions
    image_key: str = "observation/image"
    prompt_key: str = "prompt"
    action_horizon: int = 1
    state_key: str | None = None
    state_encoding: StateEncoding = "none"
    _pending: list[list[np.ndarray[Any, np.dtype[np.float64]]]] = field(default_factory=list)

    @classmethod
    def from_metadata(cls, url: str, metadata: Mapping[str, Any]) -> OpenpiDialect:
        declared = metadata.get(CONVENTIONS_KEY)
        if declared is None:
            raise HarnessError(
                f"openpi server at {url} declares no action conventions",
                f"start it with metadata {{'{CONVENTIONS_KEY}': {{'rotation': ..., "
                "'gripper': ..., 'image_size': [h, w] or None, 'resize': ...}}",
            )
        try:
            conventions = conventions_from_wire(declared)
        except WireError as error:
            raise HarnessError(
                f"openpi server at {url} declares bad conventions: {error}",
                f"fix its '{CONVENTIONS_KEY}' metadata",
            ) from error
        horizon = metadata.get("refinevla_action_horizon", 1)
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise HarnessError(
                f"openpi server at {url} declares refinevla_action_horizon={horizon!r}",
                "declare a whole number of actions >= 1 executed per returned chunk",
            )
        state_key = metadata.get("refinevla_state_key")
        encoding = str(metadata.get("refinevla_state_encoding", "none"))
        if (state_key is None) != (encoding == "none") or encoding not in STATE_ENCODINGS:
            raise HarnessError(
                f"openpi server at {url} declares state key {state_key!r} with encoding "
                f"{encoding!r}",
                "declare both refinevla_state_key and refinevla_state_encoding (one of "
                f"{', '.join(e for e in STATE_ENCODINGS if e != 'none')}), or neither",
            )
        return cls(
            conventions,
            str(metadata.get("refinevla_image_key", cls.image_key)),
            str(metadata.get("refinevla_prompt_key", cls.prompt_key)),
            horizon,
            None if state_key is None else str(state_key),
            parse_state_encoding(encoding),
        )

    def reset(self, connection: ClientConnection, instructions: Sequence[str], wait: float) -> None:
        del connection, wait  # openpi's protocol has no reset message: only our queues restart
        self._pending = [[] for _ in instructions]

    def act(
        self, connection: ClientConnection, observation: ObservationBatch, wait: float
    ) -> ActReply:
        if len(self._pending) != observation.batch_size:
            self._pending = [[] for _ in range(observation.batch_size)]
        states = self._states(observation)
        rows = []
        for index, (image, instruction) in enumerate(
            zip(observation.images, observation.instructions, strict=True)
        ):
            queue = self._pending[index]
            if not queue:
                request: dict[str, Any] = {self.image_key: image, self.prompt_key: instruction}
                if self.state_key is not None and states is not None:
                    request[self.state_key] = states[index]
                connection.send(pack(request))
                message = connection.recv(timeout=wait)
                chunk = _chunk(message if isinstance(message, str) else unpack(message))
                queue.extend(chunk[: self.action_horizon])
            rows.append(queue.pop(0))
        return ActReply(np.stack(rows) if rows else np.zeros((0, ACTION_DIM)))

    def _states(
        self, observation: ObservationBatch
    ) -> np.ndarray[Any, np.dtype[np.float32]] | None:
        if self.state_key is None:
            return None
        if not observation.proprio:
            raise HarnessError(
                "the openpi server wants the robot state but the observation carries none",
                "evaluate it through `refinevla-bench run`, whose simulator reports proprio",
            )
        return state_vector(observation.proprio, self.state_encoding).astype(np.float32)
