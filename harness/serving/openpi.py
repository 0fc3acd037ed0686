"""Evaluating a policy served by openpi's websocket server.

openpi's server sends a metadata map first, then answers each observation map with a map
holding an action chunk. Its metadata says nothing about action conventions, so the harness
accepts an openpi server only when whoever started it put them there, under
`refinevla_conventions` (openpi servers take a `metadata` argument); it never guesses. Each
batch row is sent as one observation (openpi policies are unbatched) holding `observation/image`
and `prompt` (override the keys with `refinevla_image_key` / `refinevla_prompt_key` in the
metadata); the first action of each returned chunk is executed, so the policy replans each step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from refinevla_bench.policies.protocol import ACTION_DIM, ObservationBatch, PolicyConventions

CONVENTIONS_KEY = "refinevla_conventions"


def is_openpi_metadata(metadata: Mapping[str, Any]) -> bool:
    return "protocol" not in metadata


def _first_action(reply: object) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(reply, str):  # openpi answers a failure with its traceback as text
        raise RemotePolicyError(f"openpi server failed: {reply.strip()[-500:]}")
    actions = reply.get("actions") if isinstance(reply, Mapping) else None
    if not isinstance(actions, np.ndarray) or actions.dtype.kind != "f":
        raise WireError("openpi reply holds no float 'actions' array")
    chunk = actions.reshape(-1, actions.shape[-1]) if actions.ndim else actions.reshape(1, 1)
    if chunk.shape[0] == 0 or chunk.shape[1] < ACTION_DIM:
        raise WireError(f"openpi actions of shape {actions.shape} hold no {ACTION_DIM}-d action")
    return chunk[0, :ACTION_DIM].astype(np.float64)


@dataclass
class OpenpiDialect:
    conventions: PolicyConventions
    image_key: str = "observation/image"
    prompt_key: str = "prompt"

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
        return cls(
            conventions,
            str(metadata.get("refinevla_image_key", cls.image_key)),
            str(metadata.get("refinevla_prompt_key", cls.prompt_key)),
        )

    def reset(self, connection: ClientConnection, instructions: Sequence[str], wait: float) -> None:
        del connection, instructions, wait  # openpi's protocol has no reset message

    def act(
        self, connection: ClientConnection, observation: ObservationBatch, wait: float
    ) -> ActReply:
        rows = []
        for image, instruction in zip(observation.images, observation.instructions, strict=True):
            connection.send(pack({self.image_key: image, self.prompt_key: instruction}))
            message = connection.recv(timeout=wait)
            rows.append(_first_action(message if isinstance(message, str) else unpack(message)))
        return ActReply(np.stack(rows) if rows else np.zeros((0, ACTION_DIM)))
