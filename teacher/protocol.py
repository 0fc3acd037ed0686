"""What a teacher is to the annotation engine.

A teacher makes one attempt per call and classifies what went wrong; the engine owns
everything around the attempt (concurrency, retries, backoff, the cache, the budget, writes),
so every teacher gets the same crash safety and the same accounting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher.facts import EpisodeFacts
from refinevla_bench.teacher.schema import EpisodeRationale, Usage


@dataclass(frozen=True)
class TeacherReply:
    rationale: EpisodeRationale
    usage: Usage


class RetryableError(Exception):
    """A transient failure (429, 5xx, timeout, dropped connection): try again later.

    `retry_after` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class MalformedReplyError(Exception):
    """The teacher answered, but not with a valid rationale (bad or truncated JSON, schema
    violations). `text` is what it said; the engine asks once more with a repair prompt."""

    def __init__(self, reason: str, text: str, usage: Usage) -> None:
        super().__init__(reason)
        self.text = text
        self.usage = usage


class PermanentTeacherError(Exception):
    """A failure retrying cannot fix (401, 400, a model that does not exist)."""


class Teacher(Protocol):
    name: str  # "grounded", "openai"
    model: str
    prompt_version: str

    def request_key(self, episode: EpisodeView, facts: EpisodeFacts) -> str:
        """A content hash of everything that determines the answer (model, prompt, inputs)."""
        ...

    def estimate_usage(self, episode: EpisodeView, facts: EpisodeFacts) -> Usage:
        """Tokens one attempt will take, known before sending anything (for --dry-run)."""
        ...

    async def annotate(
        self, episode: EpisodeView, facts: EpisodeFacts, repair: MalformedReplyError | None = None
    ) -> TeacherReply:
        """One attempt. With `repair`, ask the teacher to fix its previous invalid answer."""
        ...
