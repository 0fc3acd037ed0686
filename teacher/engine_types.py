"""What the annotation engine takes and gives: its settings, each episode's outcome, the run's
summary, and the listener that observes a run (the CLI's progress bar, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.teacher.retry import RetryPolicy
from refinevla_bench.teacher.schema import Usage

StopReason = Literal["completed", "budget", "failures", "interrupted", "error"]
OutcomeKind = Literal["ok", "failed", "cached", "skipped", "estimated"]


@dataclass(frozen=True)
class AnnotationSettings:
    concurrency: int = 8
    timeout_s: float = 120.0  # per request, enforced here whatever the teacher does
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_cost: float | None = None  # USD; None: no budget
    dry_run: bool = False  # estimate tokens and cost; send and write nothing
    cache_dir: Path | None = None  # None: <out>/cache
    price_input: float | None = None  # USD per 1M tokens, overriding the list price
    price_output: float | None = None
    checkpoint_every: int = 50  # records written between manifest updates
    # Stop once this many episodes in a row failed (a revoked key, a dead server); None: never.
    stop_after_consecutive_failures: int | None = 20

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise HarnessError(f"concurrency is {self.concurrency}", "pass --concurrency >= 1")
        if self.timeout_s <= 0:
            raise HarnessError(f"timeout is {self.timeout_s} s", "pass --timeout > 0")
        if self.max_cost is not None and self.max_cost < 0:
            raise HarnessError(f"--max-cost is {self.max_cost}", "pass a budget in USD, >= 0")
        if self.checkpoint_every < 1:
            raise HarnessError(f"checkpoint interval is {self.checkpoint_every}", "pass >= 1")
        failures = self.stop_after_consecutive_failures
        if failures is not None and failures < 1:
            raise HarnessError(f"stopping after {failures} failures", "pass >= 1, or none")


@dataclass(frozen=True)
class EpisodeOutcome:
    """What happened to one episode in this run ("estimated": a dry run's would-be request)."""

    episode_index: int
    kind: OutcomeKind
    usage: Usage
    cost_usd: float | None  # None: the model's prices are unknown
    error: str | None = None


@dataclass(frozen=True)
class AnnotationFailure:
    episode_index: int
    error: str


@dataclass
class AnnotationSummary:
    """One run's tally. ok/failed/cached/skipped/pending partition the episodes: `ok` were
    answered by a request in this run, `skipped` already had a current ok record, `pending`
    got no record (a stop, or a dry run; None when the total is unknown). A dry run counts the
    episodes it would send as `estimated`; its requests, tokens and cost are estimates."""

    total: int | None
    dry_run: bool
    ok: int = 0
    failed: int = 0
    cached: int = 0
    skipped: int = 0
    estimated: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    stopped: StopReason = "completed"
    failures: list[AnnotationFailure] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.cached + self.skipped

    @property
    def pending(self) -> int | None:
        return None if self.total is None else self.total - self.done

    def add(self, outcome: EpisodeOutcome) -> None:
        setattr(self, outcome.kind, getattr(self, outcome.kind) + 1)  # a counter per kind
        if outcome.error is not None:
            self.failures.append(AnnotationFailure(outcome.episode_index, outcome.error))
        self.requests += outcome.usage.requests
        self.input_tokens += outcome.usage.input_tokens
        self.output_tokens += outcome.usage.output_tokens
        if self.cost_usd is not None and outcome.cost_usd is not None:
            self.cost_usd += outcome.cost_usd
        else:
            self.cost_usd = None

    def counts(self) -> dict[str, int | None]:
        return {
            "total": self.total,
            "ok": self.ok,
            "failed": self.failed,
            "cached": self.cached,
            "skipped": self.skipped,
            "pending": self.pending,
            "estimated": self.estimated,
        }


class AnnotationListener(Protocol):
    """Observes a run (the CLI's progress bar, tests)."""

    def run_started(self, total: int | None) -> None: ...

    def episode_finished(self, outcome: EpisodeOutcome) -> None: ...

    def retry_scheduled(self, episode_index: int, reason: str, delay_s: float) -> None: ...

    def run_finished(self, summary: AnnotationSummary) -> None: ...


class SilentListener:
    def run_started(self, total: int | None) -> None:
        pass

    def episode_finished(self, outcome: EpisodeOutcome) -> None:
        pass

    def retry_scheduled(self, episode_index: int, reason: str, delay_s: float) -> None:
        pass

    def run_finished(self, summary: AnnotationSummary) -> None:
        pass
