"""File writes that a kill cannot leave half done: temporary names renamed into place, and
whole-line appends that are flushed to disk before the next step starts."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARTIAL_MARK = ".partial"
# the process's umask, read once (setting it is the only way to read it): a replaced file gets
# the mode a plain open() would give it, not mkstemp's owner-only 0600
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def is_partial(path: Path) -> bool:
    return path.name.startswith(".") and PARTIAL_MARK in path.name


@contextmanager
def replacing(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to `final`.

    The temporary file is hidden, in the same folder, keeps the extension (tools choosing a
    format by it still work) and is unique to this writer: processes sharing a run folder
    replace its manifest at the same moment (one name for all lost one writer's rename)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(
        dir=final.parent, prefix=f".{final.stem}{PARTIAL_MARK}.", suffix=final.suffix
    )
    os.close(descriptor)
    temporary = Path(name)
    temporary.chmod(0o666 & ~_UMASK)
    try:
        yield temporary
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        temporary.replace(final)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes_atomically(final: Path, data: bytes) -> None:
    with replacing(final) as temporary:
        temporary.write_bytes(data)


def write_json_atomically(
    final: Path, payload: Mapping[str, Any], *, indent: int = 4, sort_keys: bool = False
) -> None:
    """Readers see the old or the new document, never a truncated one. LeRobot metadata keeps
    its own layout (indent 4, key order); this project's records sort keys (indent 2) so that
    equal content gives equal bytes."""
    text = json.dumps(payload, indent=indent, sort_keys=sort_keys) + "\n"
    write_bytes_atomically(final, text.encode())


def append_json_line(path: Path, payload: Mapping[str, Any]) -> None:
    """One write of a whole line, then fsync: a kill leaves at most a torn last line."""
    line = json.dumps(payload, separators=(",", ":")) + "\n"
    with path.open("ab") as handle:
        handle.write(line.encode())
        handle.flush()
        os.fsync(handle.fileno())


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file; a torn last line (no newline) is not a line."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def drop_torn_tail(path: Path) -> None:
    """Cut an unfinished last line so the next append starts on a line of its own."""
    if not path.exists():
        return
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        write_bytes_atomically(path, complete)
