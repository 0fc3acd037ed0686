"""msgpack with numpy arrays as typed raw bytes, readable by and from openpi's policy servers.

Arrays travel as maps {b"__ndarray__": True, b"data", b"dtype", b"shape"} (scalars under
b"__npgeneric__"), the layout openpi uses. Only plain numeric dtypes pass: object, void,
string and datetime dtypes are refused both ways, so a payload can never make us build
arbitrary objects, and nothing is ever unpickled. Byte order is converted, not refused: big-endian
arrays are accepted and always come out in native order.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

ARRAY_KEY = b"__ndarray__"
SCALAR_KEY = b"__npgeneric__"
SAFE_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex
PICKLE_PROTOCOL_MARKER = 0x80


class WireError(ValueError):
    """A message that breaks the wire format; the peer is told and nothing is guessed."""


def safe_dtype(text: object) -> np.dtype[Any]:
    """The dtype named by a wire `dtype` field, if it is a plain number that round trips."""
    if not isinstance(text, str):
        raise WireError(f"array dtype must be a string, got {type(text).__name__}")
    try:
        dtype = np.dtype(text)
    except TypeError as error:
        raise WireError(f"unknown array dtype {text!r}") from error
    if dtype.kind not in SAFE_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array dtype {text!r} is refused (only bool, int, uint, float, complex)")
    if dtype.str != text:
        raise WireError(f"array dtype {text!r} is not in canonical form (expected {dtype.str!r})")
    return dtype


def _encoded(value: object) -> object:
    if isinstance(value, np.ndarray | np.generic):
        safe_dtype(value.dtype.str)
        key = ARRAY_KEY if isinstance(value, np.ndarray) else SCALAR_KEY
        data = np.ascontiguousarray(value).tobytes()
        shape = list(value.shape)
        return {key: True, b"data": data, b"dtype": value.dtype.str, b"shape": shape}
    raise TypeError(f"cannot send {type(value).__name__} over the wire")


def _shape(value: object) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(size, int) and size >= 0 for size in value
    ):
        raise WireError(f"array shape must be a list of non-negative ints, got {value!r}")
    return tuple(value)


def _decoded(fields: dict[Any, Any]) -> object:
    is_array = fields.get(ARRAY_KEY) is True
    if not is_array and fields.get(SCALAR_KEY) is not True:
        return fields
    dtype = safe_dtype(fields.get(b"dtype"))
    data = fields.get(b"data")
    if not isinstance(data, bytes):
        raise WireError("array data must be raw bytes")
    shape = _shape(fields.get(b"shape", [])) if is_array else ()
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise WireError(f"array data holds {len(data)} bytes, shape {shape} needs {expected}")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    native = array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order
    return native if is_array else native[()]


def pack(message: object) -> bytes:
    try:
        payload: bytes = msgpack.packb(message, default=_encoded, use_bin_type=True)
    except (TypeError, ValueError) as error:
        raise WireError(f"cannot encode message: {error}") from error
    return payload


def unpack(payload: object) -> Any:
    """Decode one message; anything but a single valid msgpack value is refused."""
    if isinstance(payload, str):
        raise WireError(f"expected a binary msgpack frame, got text: {payload[:200]!r}")
    if not isinstance(payload, bytes):
        raise WireError(f"expected bytes, got {type(payload).__name__}")
    if len(payload) > 1 and payload[0] == PICKLE_PROTOCOL_MARKER:
        raise WireError("payload looks like a pickle stream; pickle is refused, send msgpack")
    try:
        return msgpack.unpackb(payload, object_hook=_decoded, raw=False, strict_map_key=False)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise WireError(
            f"payload is not valid msgpack ({error}); pickle and other formats are refused"
        ) from error
