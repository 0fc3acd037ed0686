"""The messages of the refinevla-bench policy protocol, as plain msgpack-able dicts.

After connecting, the server speaks first with a `Handshake` (as openpi servers send their
metadata first); then each client request (`reset` or `act`) gets exactly one reply
(`reset_done`, `actions` or `error`), in order.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.serving.codec import WireError
from refinevla_bench.policies.protocol import (
    EpisodeKey,
    GripperMode,
    ObservationBatch,
    PolicyConventions,
    ResizeMethod,
    Robot,
    RotationFormat,
)

PROTOCOL_VERSION = "refinevla-bench/1"


def _field(message: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = message.get(key)
    if not isinstance(value, kind):
        raise WireError(f"message field '{key}' is missing or not {kind}")
    return value


def _choice(value: object, allowed: Any, what: str) -> Any:
    options = typing.get_args(allowed)
    if value not in options:
        raise WireError(f"{what} {value!r} is not one of {options}")
    return value


def conventions_to_wire(conventions: PolicyConventions) -> dict[str, Any]:
    size = list(conventions.image_size) if conventions.image_size is not None else None
    return {
        "rotation": conventions.rotation,
        "gripper": conventions.gripper,
        "image_size": size,
        "resize": conventions.resize,
        "robot": conventions.robot,
    }


def conventions_from_wire(message: object) -> PolicyConventions:
    if not isinstance(message, Mapping):
        raise WireError("conventions must be a map")
    size = message.get("image_size")
    robot = message.get("robot")
    if size is not None and not (
        isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(n, int) for n in size)
    ):
        raise WireError(f"image_size {size!r} is not [height, width]")
    return PolicyConventions(
        rotation=_choice(message.get("rotation"), RotationFormat, "rotation"),
        gripper=_choice(message.get("gripper"), GripperMode, "gripper"),
        image_size=(int(size[0]), int(size[1])) if size is not None else None,
        resize=_choice(message.get("resize"), ResizeMethod, "resize"),
        # servers that predate the field (and openpi's) declare no robot: any suite
        robot=None if robot is None else _choice(robot, Robot, "robot"),
    )


@dataclass(frozen=True)
class Handshake:
    """What a server declares before any request: the harness converts from these conventions."""

    policy: str
    conventions: PolicyConventions
    action_dim: int
    max_batch: int
    protocol: str = PROTOCOL_VERSION

    def to_wire(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "policy": self.policy,
            "conventions": conventions_to_wire(self.conventions),
            "action_dim": self.action_dim,
            "max_batch": self.max_batch,
        }

    @classmethod
    def from_wire(cls, message: Mapping[str, Any]) -> Handshake:
        return cls(
            policy=_field(message, "policy", str),
            conventions=conventions_from_wire(message.get("conventions")),
            action_dim=_field(message, "action_dim", int),
            max_batch=_field(message, "max_batch", int),
            protocol=_field(message, "protocol", str),
        )


@dataclass(frozen=True)
class ResetRequest:
    instructions: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"type": "reset", "instructions": list(self.instructions)}


@dataclass(frozen=True)
class ActRequest:
    observation: ObservationBatch

    def to_wire(self) -> dict[str, Any]:
        observation = self.observation
        return {
            "type": "act",
            "images": observation.images,
            "instructions": list(observation.instructions),
            "episodes": [[key.task, key.episode_id, key.seed] for key in observation.episodes],
            "state": dict(observation.state),
            "proprio": dict(observation.proprio),
        }


def _episode(value: object) -> EpisodeKey:
    if not (
        isinstance(value, list | tuple)
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and isinstance(value[2], int)
    ):
        raise WireError(f"episode {value!r} is not [task, episode_id, seed]")
    return EpisodeKey(value[0], value[1], value[2])


def _observation(message: Mapping[str, Any]) -> ObservationBatch:
    images = _field(message, "images", np.ndarray)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise WireError(f"images must be uint8 (batch, height, width, 3), got {images.shape}")
    instructions = _field(message, "instructions", list)
    if len(instructions) != len(images) or not all(isinstance(t, str) for t in instructions):
        raise WireError("instructions must be one string per image")
    episodes = tuple(_episode(value) for value in message.get("episodes", []))
    if episodes and len(episodes) != len(images):
        raise WireError("episodes must be empty or one per image")
    state = _arrays(message, "state", len(images))
    proprio = _arrays(message, "proprio", len(images))
    return ObservationBatch(images, tuple(instructions), episodes, state, proprio)


def _arrays(message: Mapping[str, Any], name: str, rows: int) -> dict[str, np.ndarray]:
    """An optional map of per-row arrays (`state`, `proprio`), one leading row per image."""
    value = message.get(name, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(array, np.ndarray) and array.shape[:1] == (rows,)
        for key, array in value.items()
    ):
        raise WireError(f"{name} must map names to arrays with one row per image")
    return dict(value)


def request_from_wire(message: object) -> ResetRequest | ActRequest:
    if not isinstance(message, Mapping):
        raise WireError("a request must be a map")
    kind = message.get("type")
    if kind == "reset":
        instructions = _field(message, "instructions", list)
        if not all(isinstance(text, str) for text in instructions):
            raise WireError("reset instructions must be strings")
        return ResetRequest(tuple(instructions))
    if kind == "act":
        return ActRequest(_observation(message))
    raise WireError(f"unknown request type {kind!r}")


@dataclass(frozen=True)
class ActReply:
    actions: npt.NDArray[np.floating]
    rationales: tuple[str, ...] | None = None
    terminations: tuple[bool, ...] | None = None

    def to_wire(self) -> dict[str, Any]:
        rationales = list(self.rationales) if self.rationales is not None else None
        stops = list(self.terminations) if self.terminations is not None else None
        return {
            "type": "actions",
            "actions": self.actions,
            "rationales": rationales,
            "terminations": stops,
        }

    def rows(self, start: int, stop: int) -> ActReply:
        """The reply to the part of a batch in rows [start, stop)."""
        return ActReply(
            self.actions[start:stop],
            self.rationales[start:stop] if self.rationales is not None else None,
            self.terminations[start:stop] if self.terminations is not None else None,
        )


@dataclass(frozen=True)
class ErrorReply:
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "error", "message": self.message}


RESET_DONE: dict[str, Any] = {"type": "reset_done"}


class RemotePolicyError(RuntimeError):
    """The server answered a request with an error (its policy raised, or it refused ours)."""


def reply_from_wire(message: object, rows: int) -> ActReply:
    """The actions for an `act` of `rows` rows; an error reply becomes RemotePolicyError."""
    if not isinstance(message, Mapping):
        raise WireError("a reply must be a map")
    if message.get("type") == "error":
        raise RemotePolicyError(str(message.get("message")))
    if message.get("type") != "actions":
        raise WireError(f"expected an actions reply, got {message.get('type')!r}")
    actions = _field(message, "actions", np.ndarray)
    if actions.shape[:1] != (rows,) or actions.dtype.kind != "f":
        raise WireError(f"actions {actions.dtype}{actions.shape} do not fit {rows} rows")
    rationales = message.get("rationales")
    if rationales is not None and (not isinstance(rationales, list) or len(rationales) != rows):
        raise WireError("rationales must be one string per row")
    stops = message.get("terminations")
    if stops is not None and (
        not isinstance(stops, list)
        or len(stops) != rows
        or not all(isinstance(flag, bool) for flag in stops)
    ):
        raise WireError("terminations must be one boolean per row")
    return ActReply(
        actions,
        tuple(str(text) for text in rationales) if rationales is not None else None,
        tuple(stops) if stops is not None else None,
    )


def check_reset_reply(message: object) -> None:
    if isinstance(message, Mapping) and message.get("type") == "error":
        raise RemotePolicyError(str(message.get("message")))
    if message != RESET_DONE:
        raise WireError(f"expected reset_done, got {message!r}")


def split_rows(values: Sequence[Any], sizes: Sequence[int]) -> list[Sequence[Any]]:
    """Cut a batch's rows back into the requests they came from."""
    parts, start = [], 0
    for size in sizes:
        parts.append(values[start : start + size])
        start += size
    return parts
