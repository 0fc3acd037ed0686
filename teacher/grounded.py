"""The `grounded` teacher: rationales written offline from the recorded facts, free and exact.

It needs no model and no network, so it annotates a simulator dataset in seconds, gives the
consistency check a reference that must score 1.0, and lets the whole pipeline (engine, cache,
sidecar, training) run end to end on any machine.
"""

from __future__ import annotations

import hashlib
import json

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher.facts import EpisodeFacts
from refinevla_bench.teacher.narration import write_rationale
from refinevla_bench.teacher.protocol import (
    MalformedReplyError,
    PermanentTeacherError,
    TeacherReply,
)
from refinevla_bench.teacher.schema import Usage

TEMPLATE_VERSION = "grounded-1"


class GroundedTeacher:
    """Writes each segment's rationale from its facts; the same facts always give the same text."""

    name = "grounded"
    model = "grounded-v1"
    prompt_version = TEMPLATE_VERSION

    def request_key(self, episode: EpisodeView, facts: EpisodeFacts) -> str:
        content = {
            "teacher": self.name,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "instruction": episode.instruction,
            "facts": facts.to_dict(),
        }
        encoded = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()

    def estimate_usage(self, episode: EpisodeView, facts: EpisodeFacts) -> Usage:
        return Usage()

    async def annotate(
        self, episode: EpisodeView, facts: EpisodeFacts, repair: MalformedReplyError | None = None
    ) -> TeacherReply:
        """No I/O. The phrasing seed comes from the request key, not the episode index, so an
        answer served from the cache reads exactly like a fresh one."""
        if not facts.segments:
            raise PermanentTeacherError(f"episode {episode.index} has no steps to explain")
        seed = int(self.request_key(episode, facts)[:8], 16)
        return TeacherReply(rationale=write_rationale(facts, seed), usage=Usage())
