"""Answers already paid for, keyed by the content hash of the request that produced them.

A request with the same key would get an equivalent answer, so a hit is served from disk for
free, across output folders that share the cache. Files are sharded by the key's first two
hex digits (no folder grows to 100k entries) and replaced atomically (a kill never leaves a
half-written entry). An unreadable entry counts as a miss: it is asked again and overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

from refinevla_bench.harness.datasets.atomic_files import write_json_atomically
from refinevla_bench.teacher.protocol import TeacherReply
from refinevla_bench.teacher.schema import EpisodeRationale, Usage

SHARD_DIGITS = 2


class ReplyCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, request_key: str) -> Path:
        return self.root / request_key[:SHARD_DIGITS] / f"{request_key}.json"

    def get(self, request_key: str) -> TeacherReply | None:
        path = self.path(request_key)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            return TeacherReply(
                rationale=EpisodeRationale.model_validate(stored["rationale"]),
                usage=Usage.model_validate(stored["usage"]),
            )
        except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable or invalid
            return None

    def put(self, request_key: str, reply: TeacherReply) -> None:
        path = self.path(request_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(
            path,
            {
                "request_key": request_key,
                "rationale": reply.rationale.model_dump(mode="json"),
                "usage": reply.usage.model_dump(mode="json"),
            },
            indent=2,
            sort_keys=True,
        )
