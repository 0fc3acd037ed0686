"""The annotation engine: every episode of a dataset through one teacher, exactly once.

The engine owns what every teacher needs and none should reimplement: bounded concurrency,
retries with backoff, one repair attempt for an invalid answer, a per-request timeout, a
budget, the reply cache, and atomic per-episode writes. A kill loses at most the requests in
flight; running the same command again skips every episode whose ok record already has the
current request key, retries failed ones, and writes nothing else.

Reading episodes, preparing requests (frame decoding and encoding) and writing files run in
worker threads, so the event loop keeps serving the requests in flight meanwhile.

    summary = run_annotation(source, extract_facts, teacher, out_dir, AnnotationSettings())
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher import annotation_store as store
from refinevla_bench.teacher.cache import ReplyCache
from refinevla_bench.teacher.consistency import score_rationale
from refinevla_bench.teacher.cost import Prices, require_prices_for_budget, resolve_prices
from refinevla_bench.teacher.engine_types import (
    AnnotationListener,
    AnnotationSettings,
    AnnotationSummary,
    EpisodeOutcome,
    SilentListener,
    StopReason,
)
from refinevla_bench.teacher.facts import EpisodeFacts
from refinevla_bench.teacher.protocol import (
    MalformedReplyError,
    PermanentTeacherError,
    RetryableError,
    Teacher,
    TeacherReply,
)
from refinevla_bench.teacher.schema import SCHEMA_VERSION, AnnotationRecord, Usage

EpisodeAndFacts = tuple[EpisodeView, EpisodeFacts]


@runtime_checkable
class DescribedTeacher(Protocol):
    """A teacher that can say more about itself for the manifest (endpoint, settings, prompt)."""

    def prompt_template(self) -> str: ...

    def manifest_fields(self) -> dict[str, Any]: ...


@runtime_checkable
class ClosableTeacher(Protocol):
    """A teacher holding connections the run's event loop must close before it ends."""

    async def aclose(self) -> None: ...


async def annotate_episodes(
    episodes: Iterable[EpisodeAndFacts],
    teacher: Teacher,
    out_dir: Path,
    settings: AnnotationSettings | None = None,
    listener: AnnotationListener | None = None,
    total: int | None = None,
) -> AnnotationSummary:
    """Annotate `episodes` (read lazily, in order) into `out_dir`; `total` sizes the progress."""
    run = _AnnotationRun(
        teacher, out_dir, settings or AnnotationSettings(), listener or SilentListener(), total
    )
    try:
        return await run.execute(iter(episodes))
    finally:
        if isinstance(teacher, ClosableTeacher):
            await teacher.aclose()


def run_annotation(
    episodes: Iterable[EpisodeView],
    facts_for: Callable[[EpisodeView], EpisodeFacts],
    teacher: Teacher,
    out_dir: Path,
    settings: AnnotationSettings | None = None,
    listener: AnnotationListener | None = None,
) -> AnnotationSummary:
    """The blocking entry point: facts are extracted lazily, one episode ahead of its request."""
    total = len(episodes) if isinstance(episodes, Sized) else None
    pairs = ((episode, facts_for(episode)) for episode in episodes)
    return asyncio.run(annotate_episodes(pairs, teacher, out_dir, settings, listener, total))


@dataclass(frozen=True)
class _Inspection:
    """What the folder and the cache already hold for an episode's current request."""

    key: str
    done: bool  # an ok record with this key exists
    cached: TeacherReply | None
    estimate: Usage | None  # only for episodes that need a request


@dataclass(frozen=True)
class _Request:
    episode: EpisodeView
    facts: EpisodeFacts
    key: str
    reserved_usd: float  # its estimated cost, held against the budget while in flight


class _AnnotationRun:
    def __init__(
        self,
        teacher: Teacher,
        out_dir: Path,
        settings: AnnotationSettings,
        listener: AnnotationListener,
        total: int | None,
    ) -> None:
        self.teacher = teacher
        self.out_dir = out_dir
        self.settings = settings
        self.listener = listener
        self.prices = resolve_prices(teacher.model, settings.price_input, settings.price_output)
        if settings.max_cost is not None:
            require_prices_for_budget(teacher.model, self.prices)
        self.cache = ReplyCache(settings.cache_dir or out_dir / store.CACHE_DIR)
        self.summary = AnnotationSummary(total=total, dry_run=settings.dry_run)
        self.started_at = _now()
        self.stop_reason: StopReason | None = None
        self.spent_usd = 0.0
        self.reserved_usd = 0.0  # estimated cost of the requests in flight
        self.records_written = 0
        self.consecutive_failures = 0

    async def execute(self, episodes: Iterator[EpisodeAndFacts]) -> AnnotationSummary:
        self.listener.run_started(self.summary.total)
        try:
            await self._dispatch(episodes)
        except (asyncio.CancelledError, KeyboardInterrupt):
            self._finish("interrupted")
            raise
        except BaseException:
            self._finish("error")
            raise
        self._finish(self.stop_reason or "completed")
        return self.summary

    async def _dispatch(self, episodes: Iterator[EpisodeAndFacts]) -> None:
        slots = asyncio.Semaphore(self.settings.concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                while self.stop_reason is None:
                    item = await asyncio.to_thread(next, episodes, None)
                    if item is None:
                        break
                    request = await self._admit(*item, slots)
                    if request is not None:
                        group.create_task(self._annotate_in_slot(slots, request))
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None  # the first cause; the others are its echoes

    def _inspect(self, episode: EpisodeView, facts: EpisodeFacts) -> _Inspection:
        key = self.teacher.request_key(episode, facts)
        existing = store.read_record(store.record_path(self.out_dir, episode.index))
        if existing is not None and existing.status == "ok" and existing.request_key == key:
            return _Inspection(key, True, None, None)
        cached = self.cache.get(key)
        if cached is not None:
            return _Inspection(key, False, cached, None)
        return _Inspection(key, False, None, self.teacher.estimate_usage(episode, facts))

    async def _admit(
        self, episode: EpisodeView, facts: EpisodeFacts, slots: asyncio.Semaphore
    ) -> _Request | None:
        """Settle the episode without a request when possible; else wait for a slot and
        reserve its estimated cost. Returns what the request needs, or None."""
        found = await asyncio.to_thread(self._inspect, episode, facts)
        if found.done:
            self._settle(EpisodeOutcome(episode.index, "skipped", Usage(), 0.0))
            return None
        if found.cached is not None:
            if not self.settings.dry_run:
                await self._write(
                    _ok_record(self.teacher, episode, facts, found.key, found.cached, Usage(), True)
                )
            self._settle(EpisodeOutcome(episode.index, "cached", Usage(), 0.0))
            return None
        estimate = found.estimate or Usage()
        estimated_cost = self._cost(estimate)
        if self.settings.dry_run:
            self._settle(EpisodeOutcome(episode.index, "estimated", estimate, estimated_cost))
            return None
        await slots.acquire()
        if self.stop_reason is None and self._over_budget(estimated_cost):
            self.stop_reason = "budget"
        if self.stop_reason is not None:
            slots.release()
            return None
        request = _Request(episode, facts, found.key, estimated_cost or 0.0)
        self.reserved_usd += request.reserved_usd
        return request

    def _over_budget(self, estimated_cost: float | None) -> bool:
        if self.settings.max_cost is None:
            return False
        planned = self.spent_usd + self.reserved_usd + (estimated_cost or 0.0)
        return planned > self.settings.max_cost

    async def _annotate_in_slot(self, slots: asyncio.Semaphore, request: _Request) -> None:
        try:
            outcome = await self._annotate(request)
        finally:
            self.reserved_usd -= request.reserved_usd
            slots.release()
        self.spent_usd += outcome.cost_usd or 0.0
        if outcome.kind == "failed":
            self.consecutive_failures += 1
            limit = self.settings.stop_after_consecutive_failures
            if limit is not None and self.consecutive_failures >= limit:
                self.stop_reason = self.stop_reason or "failures"
        else:
            self.consecutive_failures = 0
        self._settle(outcome)

    async def _annotate(self, request: _Request) -> EpisodeOutcome:
        """Attempts until an answer, a failure retrying cannot fix, or the attempts run out;
        an invalid answer gets one repair attempt."""
        episode, facts = request.episode, request.facts
        spent = Usage()
        repair: MalformedReplyError | None = None
        transient_failures = 0
        while True:
            spent = _plus(spent, Usage(requests=1))
            try:
                reply = await asyncio.wait_for(
                    self.teacher.annotate(episode, facts, repair), self.settings.timeout_s
                )
            except PermanentTeacherError as failure:
                return await self._fail(request, spent, str(failure))
            except MalformedReplyError as malformed:
                spent = _plus(spent, _tokens_of(malformed.usage))
                if repair is not None:
                    return await self._fail(
                        request, spent, f"invalid answer after a repair: {malformed}"
                    )
                repair = malformed
                continue
            except (RetryableError, TimeoutError) as transient:
                transient_failures += 1
                reason = str(transient) or f"no answer within {self.settings.timeout_s:g} s"
                if transient_failures >= self.settings.retry.max_attempts:
                    error = f"gave up after {transient_failures} attempts: {reason}"
                    return await self._fail(request, spent, error)
                retry_after = (
                    transient.retry_after if isinstance(transient, RetryableError) else None
                )
                delay = self.settings.retry.delay_s(transient_failures, retry_after)
                self.listener.retry_scheduled(episode.index, reason, delay)
                await asyncio.sleep(delay)
                continue
            spent = _plus(spent, _tokens_of(reply.usage))
            cost = self._cost(spent)
            spent = spent.model_copy(update={"cost_usd": cost or 0.0})
            await asyncio.to_thread(self.cache.put, request.key, reply)
            await self._write(
                _ok_record(self.teacher, episode, facts, request.key, reply, spent, False)
            )
            return EpisodeOutcome(episode.index, "ok", spent, cost)

    async def _fail(self, request: _Request, spent: Usage, error: str) -> EpisodeOutcome:
        cost = self._cost(spent)
        spent = spent.model_copy(update={"cost_usd": cost or 0.0})
        record = AnnotationRecord(
            episode_index=request.episode.index,
            status="failed",
            teacher=self.teacher.name,
            model=self.teacher.model,
            prompt_version=self.teacher.prompt_version,
            request_key=request.key,
            spans=request.facts.spans(),
            error=error,
            usage=spent,
        )
        await self._write(record)
        return EpisodeOutcome(request.episode.index, "failed", spent, cost, error)

    def _cost(self, usage: Usage) -> float | None:
        if usage.input_tokens == 0 and usage.output_tokens == 0:
            return 0.0
        if self.prices is None:
            return None
        return self.prices.cost(usage.input_tokens, usage.output_tokens)

    def _settle(self, outcome: EpisodeOutcome) -> None:
        self.summary.add(outcome)
        self.listener.episode_finished(outcome)

    async def _write(self, record: AnnotationRecord) -> None:
        await asyncio.to_thread(store.write_record, self.out_dir, record)
        self.records_written += 1
        if self.records_written % self.settings.checkpoint_every == 0:
            self._write_manifest(None)  # on the loop: checkpoints never overtake each other

    def _finish(self, stopped: StopReason) -> None:
        self.summary.stopped = stopped
        has_manifest = store.manifest_path(self.out_dir).exists()
        if not self.settings.dry_run and (self.records_written or not has_manifest):
            self._write_manifest(_now())
        self.listener.run_finished(self.summary)

    def _write_manifest(self, finished_at: str | None) -> None:
        """What produced the folder; a run that wrote no record leaves the old one untouched."""
        teacher_fields: dict[str, Any] = {}
        prompt_file = None
        if isinstance(self.teacher, DescribedTeacher):
            teacher_fields = self.teacher.manifest_fields()
            store.write_prompt(
                self.out_dir, self.teacher.prompt_version, self.teacher.prompt_template()
            )
            prompt_file = store.prompt_path(self.out_dir, self.teacher.prompt_version).name
        summary = self.summary
        store.write_manifest(
            self.out_dir,
            {
                "teacher": self.teacher.name,
                "model": self.teacher.model,
                "base_url": teacher_fields.get("base_url"),
                "prompt_version": self.teacher.prompt_version,
                "prompt_file": prompt_file,
                "schema_version": SCHEMA_VERSION,
                "teacher_settings": teacher_fields,
                "engine_settings": _settings_fields(self.settings, self.prices),
                "counts": summary.counts(),
                "failures": [
                    {"episode_index": failure.episode_index, "error": failure.error}
                    for failure in summary.failures
                ],
                "requests": summary.requests,
                "tokens": {"input": summary.input_tokens, "output": summary.output_tokens},
                "cost_usd": summary.cost_usd,
                "started_at": self.started_at,
                "finished_at": finished_at,
                "stopped": summary.stopped if finished_at else None,
            },
        )


def _ok_record(
    teacher: Teacher,
    episode: EpisodeView,
    facts: EpisodeFacts,
    key: str,
    reply: TeacherReply,
    usage: Usage,
    cached: bool,
) -> AnnotationRecord:
    consistency = score_rationale(reply.rationale, facts)  # stored, so reports need no facts
    return AnnotationRecord(
        episode_index=episode.index,
        status="ok",
        teacher=teacher.name,
        model=teacher.model,
        prompt_version=teacher.prompt_version,
        request_key=key,
        spans=facts.spans(),
        rationale=reply.rationale,
        usage=usage,
        cached=cached,
        consistency=round(consistency.score, 4),
        consistency_issues=list(consistency.issues),
    )


def _tokens_of(usage: Usage) -> Usage:
    """A teacher's usage without its request count: the engine counts every attempt itself."""
    return Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


def _plus(left: Usage, right: Usage) -> Usage:
    return Usage(
        input_tokens=left.input_tokens + right.input_tokens,
        output_tokens=left.output_tokens + right.output_tokens,
        requests=left.requests + right.requests,
        cost_usd=left.cost_usd + right.cost_usd,
    )


def _settings_fields(settings: AnnotationSettings, prices: Prices | None) -> dict[str, Any]:
    return {
        "concurrency": settings.concurrency,
        "timeout_s": settings.timeout_s,
        "max_attempts": settings.retry.max_attempts,
        "backoff_base_s": settings.retry.base_delay_s,
        "backoff_max_s": settings.retry.max_delay_s,
        "max_cost_usd": settings.max_cost,
        "cache_dir": str(settings.cache_dir) if settings.cache_dir else store.CACHE_DIR,
        "prices_usd_per_million": None
        if prices is None
        else {"input": prices.input_per_million, "output": prices.output_per_million},
        "stop_after_consecutive_failures": settings.stop_after_consecutive_failures,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
