"""The annotation engine end to end, over real HTTP to the loopback server: every fault ends
with each episode annotated exactly once or listed as failed, and nothing written twice."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.teacher.annotation_store import (
    load_records,
    manifest_path,
    prompt_path,
    read_record,
    record_path,
)
from refinevla_bench.teacher.cache import ReplyCache
from refinevla_bench.teacher.engine import annotate_episodes, run_annotation
from refinevla_bench.teacher.engine_types import (
    AnnotationSettings,
    AnnotationSummary,
    EpisodeOutcome,
)
from refinevla_bench.teacher.facts import EpisodeFacts
from refinevla_bench.teacher.progress import RichProgress
from refinevla_bench.teacher.protocol import MalformedReplyError, TeacherReply
from refinevla_bench.teacher.retry import RetryPolicy
from refinevla_bench.teacher.schema import EpisodeRationale, SegmentRationale, Usage
from tests.annotation_fixtures import (
    TEST_KEY,
    TEST_KEY_ENV,
    annotation_inputs,
    episode_with_frames,
    facts_for,
    loopback_teacher,
)
from tests.openai_server import FakeOpenAIServer, Fault, ServerBehaviour, running_server

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=2.0)
Inputs = list[tuple[EpisodeView, EpisodeFacts]]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setenv(TEST_KEY_ENV, TEST_KEY)
    with running_server(ServerBehaviour(retry_after_s=1.0, slow_s=1.0)) as running:
        yield running


@pytest.fixture
def record_writes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each episode record was put in place (every atomic write renames)."""
    writes: Counter[str] = Counter()
    real_replace = os.replace

    def counting_replace(source: Any, destination: Any) -> None:
        if Path(destination).parent.name == "episodes":
            writes[Path(destination).name] += 1
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", counting_replace)
    return writes


class Observed:
    """A listener that keeps everything it is told."""

    def __init__(self) -> None:
        self.totals: list[int | None] = []
        self.outcomes: list[EpisodeOutcome] = []
        self.retries: list[tuple[int, str, float]] = []
        self.summaries: list[AnnotationSummary] = []

    def run_started(self, total: int | None) -> None:
        self.totals.append(total)

    def episode_finished(self, outcome: EpisodeOutcome) -> None:
        self.outcomes.append(outcome)

    def retry_scheduled(self, episode_index: int, reason: str, delay_s: float) -> None:
        self.retries.append((episode_index, reason, delay_s))

    def run_finished(self, summary: AnnotationSummary) -> None:
        self.summaries.append(summary)


def annotate(
    inputs: Inputs,
    teacher: Any,
    out_dir: Path,
    listener: Any = None,
    **settings: Any,
) -> AnnotationSummary:
    options: dict[str, Any] = {"retry": FAST_RETRY, "timeout_s": 5.0}
    options.update(settings)
    return asyncio.run(
        annotate_episodes(
            inputs, teacher, out_dir, AnnotationSettings(**options), listener, total=len(inputs)
        )
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def statuses(out_dir: Path, count: int) -> list[str | None]:
    records = [read_record(record_path(out_dir, index)) for index in range(count)]
    return [None if record is None else record.status for record in records]


@pytest.mark.parametrize(
    "fault",
    ["rate_limit", "server_error", "slow", "drop", "malformed", "truncated", "wrong_segments"],
)
def test_every_fault_ends_with_each_episode_annotated_exactly_once(
    server: FakeOpenAIServer, tmp_path: Path, record_writes: Counter[str], fault: Fault
) -> None:
    server.behaviour.faults = {1: [fault], 2: [fault]}
    teacher = loopback_teacher(server.base_url, timeout_s=0.3)
    summary = annotate(annotation_inputs(4), teacher, tmp_path)

    assert (summary.ok, summary.failed, summary.stopped) == (4, 0, "completed")
    assert statuses(tmp_path, 4) == ["ok"] * 4
    assert set(record_writes.values()) == {1} and len(record_writes) == 4
    assert [len(server.requests_for(index)) for index in range(4)] == [1, 2, 2, 1]
    repaired = fault in ("malformed", "truncated", "wrong_segments")
    assert server.requests_for(1)[1].repair is repaired
    record = read_record(record_path(tmp_path, 1))
    assert record is not None and record.usage.requests == 2
    assert record.usage.output_tokens == (400 if repaired else 200)  # a bad answer still costs
    assert summary.requests == 6


def test_retry_after_is_a_floor_for_the_next_attempt(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.behaviour.faults = {0: ["rate_limit"]}
    listener = Observed()
    annotate(annotation_inputs(1), loopback_teacher(server.base_url), tmp_path, listener)
    first, second = server.requests_for(0)
    assert second.at - first.at >= 0.95  # Retry-After: 1, backoff alone would be ~0.01 s
    ((episode, reason, delay),) = listener.retries
    assert episode == 0 and "HTTP 429" in reason and delay >= 1.0


def test_a_reply_invalid_twice_gets_one_repair_then_a_failure_record(
    server: FakeOpenAIServer, tmp_path: Path, record_writes: Counter[str]
) -> None:
    server.behaviour.faults = {1: ["malformed", "malformed"]}
    summary = annotate(annotation_inputs(3), loopback_teacher(server.base_url), tmp_path)
    assert (summary.ok, summary.failed) == (2, 1)
    assert [request.repair for request in server.requests_for(1)] == [False, True]
    failed = read_record(record_path(tmp_path, 1))
    assert failed is not None and failed.status == "failed" and failed.rationale is None
    assert failed.error is not None and "after a repair" in failed.error
    manifest = json.loads(manifest_path(tmp_path).read_text())
    assert manifest["counts"]["failed"] == 1
    assert manifest["failures"] == [{"episode_index": 1, "error": failed.error}]

    rerun = annotate(annotation_inputs(3), loopback_teacher(server.base_url), tmp_path)
    assert (rerun.ok, rerun.skipped, rerun.failed) == (1, 2, 0)
    assert statuses(tmp_path, 3) == ["ok"] * 3
    assert record_writes == Counter(
        {"episode_000000.json": 1, "episode_000001.json": 2, "episode_000002.json": 1}
    )
    assert json.loads(manifest_path(tmp_path).read_text())["failures"] == []


def test_transient_failures_give_up_after_the_attempt_limit(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.behaviour.always = "server_error"
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
    summary = annotate(
        annotation_inputs(2), loopback_teacher(server.base_url), tmp_path, retry=retry
    )
    assert summary.failed == 2 and summary.requests == 6
    assert [len(server.requests_for(index)) for index in range(2)] == [3, 3]
    record = read_record(record_path(tmp_path, 0))
    assert record is not None and record.error is not None
    assert record.error.startswith("gave up after 3 attempts: server error (HTTP 500)")


def test_a_rerun_sends_nothing_and_changes_no_byte(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    first = annotate(annotation_inputs(5), loopback_teacher(server.base_url), tmp_path)
    assert first.ok == 5
    before, sent = snapshot(tmp_path), len(server.requests)
    rerun = annotate(annotation_inputs(5), loopback_teacher(server.base_url), tmp_path)
    assert (rerun.skipped, rerun.ok, rerun.requests) == (5, 0, 0)
    assert len(server.requests) == sent
    assert snapshot(tmp_path) == before
    assert [record.episode_index for record in load_records(tmp_path)] == [0, 1, 2, 3, 4]
    assert prompt_path(tmp_path, "v1").read_text().startswith("### system (v1)")


def test_a_changed_request_replaces_the_record(
    server: FakeOpenAIServer, tmp_path: Path, record_writes: Counter[str]
) -> None:
    annotate(annotation_inputs(2), loopback_teacher(server.base_url), tmp_path)
    changed = annotate(
        annotation_inputs(2), loopback_teacher(server.base_url, model="m2"), tmp_path
    )
    assert changed.ok == 2 and len(server.requests) == 4
    assert {record.model for record in load_records(tmp_path)} == {"m2"}
    assert set(record_writes.values()) == {2}


def test_a_shared_cache_answers_another_output_folder_for_free(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    cache = tmp_path / "shared-cache"
    annotate(
        annotation_inputs(3), loopback_teacher(server.base_url), tmp_path / "a", cache_dir=cache
    )
    second = annotate(
        annotation_inputs(3),
        loopback_teacher(server.base_url),
        tmp_path / "b",
        cache_dir=cache,
        price_input=1.0,
        price_output=1.0,
    )
    assert (second.cached, second.requests, second.cost_usd) == (3, 0, 0.0)
    assert len(server.requests) == 3
    for first, again in zip(
        load_records(tmp_path / "a"), load_records(tmp_path / "b"), strict=True
    ):
        assert again.cached and not first.cached
        assert again.rationale == first.rationale and again.request_key == first.request_key
        assert again.usage == Usage()
    assert not (tmp_path / "b" / "cache").exists()


def test_an_unreadable_cache_entry_is_a_miss(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path)
    rationale = EpisodeRationale(
        segments=[
            SegmentRationale(
                segment=0,
                subtask="reach",
                observation="o",
                situation_analysis="s",
                spatial_reasoning="r",
                task_plan=["reach"],
                next_step="n",
            )
        ]
    )
    reply = TeacherReply(rationale, Usage(input_tokens=3))
    cache.put("ab" * 32, reply)
    assert cache.path("ab" * 32).parent.name == "ab"
    assert cache.get("ab" * 32) == reply
    cache.path("ab" * 32).write_text("{not json")
    assert cache.get("ab" * 32) is None
    assert cache.get("cd" * 32) is None


def test_a_dry_run_estimates_the_rest_and_sends_and_writes_nothing(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    done = tmp_path / "done"
    annotate(annotation_inputs(2), loopback_teacher(server.base_url), done)
    before, sent = snapshot(done), len(server.requests)
    teacher = loopback_teacher(server.base_url)
    inputs = annotation_inputs(5)
    summary = annotate(inputs, teacher, done, dry_run=True, price_input=2.0, price_output=8.0)
    assert (summary.skipped, summary.estimated, summary.pending, summary.requests) == (2, 3, 3, 3)
    estimate = teacher.estimate_usage(*inputs[4])
    assert summary.input_tokens == 3 * estimate.input_tokens
    assert summary.cost_usd == pytest.approx(
        3 * (estimate.input_tokens * 2.0 + estimate.output_tokens * 8.0) / 1e6
    )
    assert len(server.requests) == sent and snapshot(done) == before

    fresh = tmp_path / "fresh"
    unpriced = annotate(inputs, teacher, fresh, dry_run=True)
    assert unpriced.estimated == 5 and unpriced.cost_usd is None
    assert not fresh.exists()


def test_a_budget_stops_cleanly_and_a_larger_one_finishes(
    server: FakeOpenAIServer, tmp_path: Path, record_writes: Counter[str]
) -> None:
    teacher = loopback_teacher(server.base_url)
    inputs = annotation_inputs(6)
    estimate = teacher.estimate_usage(*inputs[0])
    price = 1000.0  # USD per 1M tokens: the server reports 1000 + 200 tokens, $1.20 an episode
    estimated_usd = (estimate.input_tokens + estimate.output_tokens) * price / 1e6
    room_for_three = 2 * 1.2 + estimated_usd + 0.01
    prices = {"price_input": price, "price_output": price}
    stopped = annotate(inputs, teacher, tmp_path, concurrency=1, max_cost=room_for_three, **prices)
    assert (stopped.stopped, stopped.ok, stopped.pending) == ("budget", 3, 3)
    assert stopped.cost_usd == pytest.approx(3.6)
    assert statuses(tmp_path, 6) == ["ok", "ok", "ok", None, None, None]
    assert {request.episode for request in server.requests} == {0, 1, 2}
    manifest = json.loads(manifest_path(tmp_path).read_text())
    assert manifest["stopped"] == "budget" and manifest["counts"]["pending"] == 3

    finished = annotate(inputs, teacher, tmp_path, concurrency=1, max_cost=100.0, **prices)
    assert (finished.stopped, finished.ok, finished.skipped) == ("completed", 3, 3)
    assert statuses(tmp_path, 6) == ["ok"] * 6
    assert set(record_writes.values()) == {1} and len(server.requests) == 6


def test_a_budget_needs_prices_for_an_unlisted_model(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    with pytest.raises(HarnessError) as refused:
        annotate(annotation_inputs(1), loopback_teacher(server.base_url), tmp_path, max_cost=1.0)
    assert "--price-input" in refused.value.fix and "--price-output" in refused.value.fix
    assert server.requests == [] and not tmp_path.joinpath("episodes").exists()


def test_a_refused_key_fails_each_episode_naming_the_variable_never_the_key(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.behaviour.always = "unauthorized"
    summary = annotate(annotation_inputs(3), loopback_teacher(server.base_url), tmp_path)
    assert (summary.failed, summary.requests) == (3, 3)  # never retried
    assert all(request.authorization == f"Bearer {TEST_KEY}" for request in server.requests)
    for record in load_records(tmp_path):
        assert record.error is not None and TEST_KEY_ENV in record.error
    written = b"".join(snapshot(tmp_path).values())
    assert TEST_KEY.encode() not in written and TEST_KEY_ENV.encode() in written


def test_the_key_is_in_no_file_of_a_successful_run(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.behaviour.faults = {0: ["malformed"], 1: ["rate_limit"]}
    server.behaviour.retry_after_s = 0.01
    annotate(annotation_inputs(3), loopback_teacher(server.base_url), tmp_path)
    files = snapshot(tmp_path)
    assert any(name.startswith("cache/") for name in files) and "manifest.json" in files
    assert all(TEST_KEY.encode() not in content for content in files.values())


def test_consecutive_failures_stop_the_run(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.behaviour.always = "unauthorized"
    summary = annotate(
        annotation_inputs(6),
        loopback_teacher(server.base_url),
        tmp_path,
        concurrency=1,
        stop_after_consecutive_failures=2,
    )
    assert (summary.stopped, summary.failed, summary.pending) == ("failures", 2, 4)
    assert len(server.requests) == 2


class ScriptedTeacher:
    """A teacher without HTTP: the engine must not care which teacher it drives."""

    name = "scripted"
    model = "scripted-model"
    prompt_version = "s1"

    def __init__(self, hang_first: bool = False, pause_s: float = 0.0) -> None:
        self.hang_first = hang_first
        self.pause_s = pause_s
        self.calls: Counter[int] = Counter()
        self.active = 0
        self.peak = 0

    def request_key(self, episode: EpisodeView, facts: EpisodeFacts) -> str:
        return f"scripted-{episode.index:064d}"

    def estimate_usage(self, episode: EpisodeView, facts: EpisodeFacts) -> Usage:
        return Usage()

    async def annotate(
        self, episode: EpisodeView, facts: EpisodeFacts, repair: MalformedReplyError | None = None
    ) -> TeacherReply:
        self.calls[episode.index] += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.hang_first and self.calls[episode.index] == 1:
                await asyncio.Event().wait()  # never answers: only the engine's timeout ends it
            await asyncio.sleep(self.pause_s)
        finally:
            self.active -= 1
        segments = [
            SegmentRationale(
                segment=span.segment,
                subtask=span.subtask,
                observation="o",
                situation_analysis="s",
                spatial_reasoning="r",
                task_plan=[span.subtask],
                next_step="n",
            )
            for span in facts.spans()
        ]
        return TeacherReply(EpisodeRationale(segments=segments), Usage())


def test_the_engine_enforces_the_request_timeout_on_any_teacher(tmp_path: Path) -> None:
    teacher = ScriptedTeacher(hang_first=True)
    summary = annotate(annotation_inputs(2), teacher, tmp_path, timeout_s=0.1)
    assert summary.ok == 2 and teacher.calls == Counter({0: 2, 1: 2})
    manifest = json.loads(manifest_path(tmp_path).read_text())
    assert manifest["teacher"] == "scripted" and manifest["cost_usd"] == 0.0
    assert manifest["base_url"] is None and manifest["prompt_file"] is None


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    teacher = ScriptedTeacher(pause_s=0.02)
    summary = annotate(annotation_inputs(9), teacher, tmp_path, concurrency=3)
    assert summary.ok == 9 and teacher.peak == 3


def test_an_interrupted_run_keeps_what_finished_and_says_so(tmp_path: Path) -> None:
    teacher = ScriptedTeacher(pause_s=0.05)

    async def interrupt_after_first_record() -> None:
        settings = AnnotationSettings(concurrency=2)
        run = asyncio.create_task(
            annotate_episodes(annotation_inputs(8), teacher, tmp_path, settings)
        )
        while not record_path(tmp_path, 0).exists():
            await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(interrupt_after_first_record())
    manifest = json.loads(manifest_path(tmp_path).read_text())
    assert manifest["stopped"] == "interrupted" and manifest["counts"]["ok"] >= 1
    assert 1 <= len(list(load_records(tmp_path))) < 8


KILLED_RUN = """
import asyncio, sys
from pathlib import Path
from refinevla_bench.teacher.engine import AnnotationSettings, annotate_episodes
from tests.annotation_fixtures import annotation_inputs, loopback_teacher

teacher = loopback_teacher(sys.argv[1])
settings = AnnotationSettings(concurrency=2, checkpoint_every=2)
asyncio.run(annotate_episodes(annotation_inputs(12), teacher, Path(sys.argv[2]), settings))
"""


def wait_for_records(out_dir: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a speed requirement
    while len(list(out_dir.glob("episodes/episode_*.json"))) < count:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no records appeared"
        time.sleep(0.01)


def test_a_killed_run_resumes_and_annotates_each_episode_exactly_once(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.behaviour.latency_s = 0.2
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, server.base_url, str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_records(tmp_path, 3, process)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    survivors = {path.name: path.stat() for path in tmp_path.glob("episodes/episode_*.json")}
    assert 3 <= len(survivors) < 12
    checkpoint = json.loads(manifest_path(tmp_path).read_text())
    assert checkpoint["finished_at"] is None and checkpoint["stopped"] is None

    server.behaviour.latency_s = 0.0
    summary = annotate(annotation_inputs(12), loopback_teacher(server.base_url), tmp_path)
    assert summary.skipped == len(survivors) and summary.failed == 0
    assert statuses(tmp_path, 12) == ["ok"] * 12
    for name, before in survivors.items():
        after = (tmp_path / "episodes" / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    resent = [len(server.requests_for(index)) - 1 for index in range(12)]
    assert all(count in (0, 1) for count in resent) and sum(resent) <= 2  # only those in flight


def test_the_progress_bar_reports_the_run(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.behaviour.faults = {1: ["unauthorized"]}
    output = io.StringIO()
    with RichProgress(Console(file=output, width=200, force_terminal=False)) as progress:
        annotate(annotation_inputs(3), loopback_teacher(server.base_url), tmp_path, progress)
        run_annotation(
            [episode_with_frames(index) for index in range(3)],
            facts_for,
            loopback_teacher(server.base_url),
            tmp_path,
            AnnotationSettings(dry_run=True),
            progress,
        )
    text = output.getvalue()
    assert "episode 1 failed: the endpoint refused the API key (HTTP 401)" in text
    assert "annotated 3/3: 2 ok, 0 cached, 0 skipped, 1 failed; 3 request(s)" in text
    assert "stopped: completed" in text and "cost unknown" in text
    assert "dry run: 1 episode(s) to annotate (2 done, 0 in the cache)" in text


def test_retry_delays_stay_in_the_jitter_window_above_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.5, max_delay_s=3.0)
    for _ in range(200):
        assert 0.0 <= policy.delay_s(1, None) <= 0.5
        assert 0.0 <= policy.delay_s(3, None) <= 2.0
        assert 0.0 <= policy.delay_s(60, None) <= 3.0
        assert policy.delay_s(1, 1.5) == 1.5  # the window (0.5 s) is below Retry-After
        assert 0.1 <= policy.delay_s(3, 0.1) <= 2.0
        assert policy.delay_s(1, 100.0) == 3.0  # a bogus Retry-After is capped
    with pytest.raises(HarnessError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(HarnessError):
        RetryPolicy(base_delay_s=2.0, max_delay_s=1.0)
    with pytest.raises(HarnessError):
        AnnotationSettings(concurrency=0)
    with pytest.raises(HarnessError):
        AnnotationSettings(stop_after_consecutive_failures=0)
