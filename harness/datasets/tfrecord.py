"""TFRecord files read without TensorFlow.

A record is: uint64 length, uint32 masked CRC-32C of those 8 bytes, the data, uint32 masked
CRC-32C of the data (all little-endian). Both checksums are verified: a truncated or damaged
shard from a multi-terabyte download must fail loudly, not feed garbage to a teacher.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

from refinevla_bench.harness.errors import HarnessError

RLDS_EXTRA_FIX = "pip install 'refinevla-bench[rlds]'"
LENGTH = struct.Struct("<Q")
CHECKSUM = struct.Struct("<I")
HEADER_SIZE = LENGTH.size + CHECKSUM.size
MASK_DELTA = 0xA282EAD8


def crc32c_function() -> Callable[[bytes], int]:
    """google-crc32c's CRC-32C, or the fix when the optional extra is not installed."""
    try:
        import google_crc32c
    except ImportError as error:
        raise HarnessError(
            "reading RLDS/TFDS datasets needs the google-crc32c package", RLDS_EXTRA_FIX
        ) from error

    def crc32c(data: bytes) -> int:
        return int(google_crc32c.value(data))

    return crc32c


def masked_crc32c(data: bytes, crc32c: Callable[[bytes], int]) -> int:
    """TFRecord stores CRCs rotated and offset, so that CRCs of CRCs stay informative."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


class TFRecordFile:
    """One shard: its records read in order, or one by position."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._crc32c = crc32c_function()
        self._offsets: list[int] | None = None

    def __iter__(self) -> Iterator[bytes]:
        with self._open() as handle:
            while (record := self._read_record(handle)) is not None:
                yield record

    def record(self, position: int) -> bytes:
        offsets = self.offsets()
        if not 0 <= position < len(offsets):
            raise IndexError(f"{self.path} has {len(offsets)} records, not {position + 1}")
        with self._open() as handle:
            handle.seek(offsets[position])
            record = self._read_record(handle)
        if record is None:
            self._corrupt(offsets[position], "vanished since the shard was indexed")
        return record

    def offsets(self) -> list[int]:
        """Where each record starts; headers are checked, data is skipped (seeks only)."""
        if self._offsets is None:
            offsets = []
            with self._open() as handle:
                while (length := self._read_length(handle)) is not None:
                    offsets.append(handle.tell() - HEADER_SIZE)
                    handle.seek(length + CHECKSUM.size, 1)
                end = handle.tell()
            if offsets and end > self.path.stat().st_size:
                self._corrupt(offsets[-1], "is truncated")
            self._offsets = offsets
        return self._offsets

    def _open(self) -> BinaryIO:
        if not self.path.is_file():
            raise HarnessError(f"shard {self.path} is missing", "download the dataset again")
        return self.path.open("rb")

    def _read_length(self, handle: BinaryIO) -> int | None:
        start = handle.tell()
        header = handle.read(HEADER_SIZE)
        if not header:
            return None
        if len(header) < HEADER_SIZE:
            self._corrupt(start, "is truncated")
        (length,) = LENGTH.unpack_from(header)
        (checksum,) = CHECKSUM.unpack_from(header, LENGTH.size)
        if masked_crc32c(header[: LENGTH.size], self._crc32c) != checksum:
            self._corrupt(start, "has a length that fails its checksum")
        return int(length)

    def _read_record(self, handle: BinaryIO) -> bytes | None:
        start = handle.tell()
        length = self._read_length(handle)
        if length is None:
            return None
        data = handle.read(length)
        footer = handle.read(CHECKSUM.size)
        if len(data) < length or len(footer) < CHECKSUM.size:
            self._corrupt(start, "is truncated")
        if masked_crc32c(data, self._crc32c) != CHECKSUM.unpack(footer)[0]:
            self._corrupt(start, "fails its data checksum")
        return data

    def _corrupt(self, offset: int, problem: str) -> NoReturn:
        raise HarnessError(
            f"{self.path}: the record at byte {offset} {problem}",
            "download this shard again; the file is damaged or incomplete",
        )
