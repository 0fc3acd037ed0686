"""tf.train.Example messages decoded from the protobuf wire format, without TensorFlow.

The schema (TensorFlow's example.proto and feature.proto) is tiny: Example{features=1},
Features{map<string, Feature> feature=1}, Feature{oneof bytes_list=1, float_list=2,
int64_list=3}, each list {repeated value=1}. Decoding it by hand keeps the RLDS reader free of
generated code; repeated numbers are accepted packed (what TensorFlow writes) and unpacked.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

FeatureValue = list[bytes] | npt.NDArray[np.float32] | npt.NDArray[np.int64]

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
BYTES_LIST, FLOAT_LIST, INT64_LIST = 1, 2, 3
INT64_SIGN = 1 << 63


class CorruptExampleError(ValueError):
    """The bytes are not a well-formed tf.train.Example."""


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while position < len(buffer) and shift < 70:
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
    raise CorruptExampleError("a varint runs past its message")


def _fields(buffer: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field; values of known sizes stay views."""
    position = 0
    while position < len(buffer):
        key, position = _varint(buffer, position)
        wire_type = key & 7
        value: int | memoryview
        if wire_type == VARINT:
            value, position = _varint(buffer, position)
        else:
            if wire_type == LENGTH_DELIMITED:
                size, position = _varint(buffer, position)
            elif wire_type in (FIXED32, FIXED64):
                size = 4 if wire_type == FIXED32 else 8
            else:
                raise CorruptExampleError(f"unknown wire type {wire_type}")
            if position + size > len(buffer):
                raise CorruptExampleError("a field runs past its message")
            value = buffer[position : position + size]
            position += size
        yield key >> 3, wire_type, value


def _bytes_list(message: memoryview) -> list[bytes]:
    return [
        bytes(value)
        for number, _, value in _fields(message)
        if number == 1 and isinstance(value, memoryview)
    ]


def _float_list(message: memoryview) -> npt.NDArray[np.float32]:
    raw = b"".join(
        bytes(value)
        for number, _, value in _fields(message)
        if number == 1 and isinstance(value, memoryview)
    )
    if len(raw) % 4:
        raise CorruptExampleError("a float list is not a whole number of floats")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def _int64_list(message: memoryview) -> npt.NDArray[np.int64]:
    values: list[int] = []
    for number, wire_type, value in _fields(message):
        if number != 1:
            continue
        if isinstance(value, int):
            values.append(value)
            continue
        if wire_type != LENGTH_DELIMITED:
            raise CorruptExampleError("an int64 list holds fixed-size values")
        position = 0
        while position < len(value):
            item, position = _varint(value, position)
            values.append(item)
    signed = [value - (1 << 64) if value >= INT64_SIGN else value for value in values]
    return np.array(signed, dtype=np.int64)


def _feature(message: memoryview) -> FeatureValue:
    for number, _, value in _fields(message):
        if not isinstance(value, memoryview):
            continue
        if number == BYTES_LIST:
            return _bytes_list(value)
        if number == FLOAT_LIST:
            return _float_list(value)
        if number == INT64_LIST:
            return _int64_list(value)
    return []  # a Feature with no list set: TensorFlow reads it as empty


def _map_entry(message: memoryview) -> tuple[str, FeatureValue]:
    key, feature = "", memoryview(b"")
    for number, _, value in _fields(message):
        if number == 1 and isinstance(value, memoryview):
            key = bytes(value).decode("utf-8", errors="replace")
        elif number == 2 and isinstance(value, memoryview):
            feature = value
    return key, _feature(feature)


def parse_example(data: bytes) -> dict[str, FeatureValue]:
    """Feature name -> its values; raises CorruptExampleError on malformed bytes."""
    features: dict[str, FeatureValue] = {}
    for number, _, value in _fields(memoryview(data)):
        if number == 1 and isinstance(value, memoryview):
            for entry_number, _, entry in _fields(value):
                if entry_number == 1 and isinstance(entry, memoryview):
                    name, feature = _map_entry(entry)
                    features[name] = feature
    return features
