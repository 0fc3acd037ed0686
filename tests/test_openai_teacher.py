"""The openai teacher against a real HTTP server: what it sends, and how it reads each failure."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from PIL import Image

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.teacher.cost import LIST_PRICES, Prices, resolve_prices
from refinevla_bench.teacher.frame_sampling import choose_frames
from refinevla_bench.teacher.openai_errors import retry_after_s
from refinevla_bench.teacher.openai_teacher import OpenAITeacher, OpenAITeacherSettings
from refinevla_bench.teacher.prompts import PROMPT_VERSION, prompt_template_text
from refinevla_bench.teacher.protocol import (
    MalformedReplyError,
    PermanentTeacherError,
    RetryableError,
    TeacherReply,
)
from refinevla_bench.teacher.reply_parsing import parse_rationale
from refinevla_bench.teacher.schema import SegmentSpan, Usage
from refinevla_bench.teacher.token_estimate import answer_tokens, image_tokens
from tests.annotation_fixtures import (
    TEST_KEY,
    TEST_KEY_ENV,
    episode_with_frames,
    facts_for,
    loopback_teacher,
)
from tests.openai_server import FakeOpenAIServer, Fault, ServerBehaviour, running_server


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setenv(TEST_KEY_ENV, TEST_KEY)
    with running_server(ServerBehaviour(retry_after_s=1.0, slow_s=1.0)) as running:
        yield running


async def closing(teacher: OpenAITeacher, asking: Awaitable[TeacherReply]) -> TeacherReply:
    try:
        return await asking
    finally:
        await teacher.aclose()


def annotate_once(
    teacher: OpenAITeacher, repair: MalformedReplyError | None = None
) -> TeacherReply:
    view = episode_with_frames(0)
    return asyncio.run(closing(teacher, teacher.annotate(view, facts_for(view), repair)))


def user_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = body["messages"][1]["content"]
    return parts


def test_request_carries_instruction_facts_segments_and_small_jpeg_frames(
    server: FakeOpenAIServer,
) -> None:
    teacher = loopback_teacher(server.base_url, frames_per_episode=6)
    view = episode_with_frames(3, length=40, height=480, width=640)
    facts = facts_for(view)
    reply = asyncio.run(closing(teacher, teacher.annotate(view, facts)))

    (request,) = server.requests
    assert request.episode == 3 and not request.repair
    assert request.authorization == f"Bearer {TEST_KEY}"
    body = request.body
    assert body["model"] == "test-model"
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system"
    prompt = user_parts(body)[0]["text"]
    assert "Instruction: put carrot on plate" in prompt
    assert json.dumps(facts.to_dict(), sort_keys=True, separators=(",", ":")) in prompt
    assert '"segment"' in prompt and '"properties"' in prompt  # the answer's schema is included
    images = [part for part in user_parts(body) if part["type"] == "image_url"]
    assert len(images) == 6  # 8 candidate frames (first and last of 4 segments), capped
    for image in images:
        header, encoded = image["image_url"]["url"].split(",", 1)
        assert header == "data:image/jpeg;base64"
        decoded = Image.open(io.BytesIO(base64.b64decode(encoded)))
        assert decoded.format == "JPEG" and decoded.size == (320, 240)
        assert image["image_url"]["detail"] == "low"
    assert [segment.segment for segment in reply.rationale.segments] == [0, 1, 2, 3]
    assert reply.usage == Usage(input_tokens=1000, output_tokens=200, requests=1)


def test_frames_are_segment_ends_thinned_evenly_keeping_both_ends() -> None:
    spans = [
        SegmentSpan(segment=0, subtask="reach", start=0, end=10),
        SegmentSpan(segment=1, subtask="grasp", start=10, end=11),
        SegmentSpan(segment=2, subtask="lift", start=11, end=20),
    ]
    every = choose_frames(spans, 10)
    assert [(choice.step, choice.position) for choice in every] == [
        (0, "first step"),
        (9, "last step"),
        (10, "only step"),
        (11, "first step"),
        (19, "last step"),
    ]
    assert [choice.step for choice in choose_frames(spans, 3)] == [0, 10, 19]
    assert [choice.step for choice in choose_frames(spans, 1)] == [0]
    assert choose_frames(spans, 0) == []


def test_request_key_is_a_stable_hash_of_model_prompt_and_inputs(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = episode_with_frames(0)
    facts = facts_for(view)
    key = loopback_teacher(server.base_url).request_key(view, facts)
    assert key == loopback_teacher(server.base_url).request_key(view, facts)
    assert len(key) == 64 and int(key, 16) >= 0
    other_frames = episode_with_frames(0, height=50)
    variants = [
        loopback_teacher(server.base_url, model="other-model").request_key(view, facts),
        loopback_teacher(server.base_url, image_detail="high").request_key(view, facts),
        loopback_teacher(server.base_url, json_schema=True).request_key(view, facts),
        loopback_teacher(server.base_url).request_key(other_frames, facts_for(other_frames)),
        loopback_teacher(server.base_url).request_key(view, facts_for(view, segments=3)),
    ]
    assert len({key, *variants}) == len(variants) + 1
    monkeypatch.setenv(TEST_KEY_ENV, "sk-another-key")
    assert loopback_teacher(server.base_url).request_key(view, facts) == key  # not a secret input


def test_estimate_counts_text_images_and_the_expected_answer(server: FakeOpenAIServer) -> None:
    view = episode_with_frames(0)  # 48x64 frames: one tile at high detail
    facts = facts_for(view)
    low = loopback_teacher(server.base_url).estimate_usage(view, facts)
    high = loopback_teacher(server.base_url, image_detail="high").estimate_usage(view, facts)
    text_only = loopback_teacher(server.base_url, frames_per_episode=0).estimate_usage(view, facts)
    assert low.output_tokens == answer_tokens(4) and low.requests == 1
    frames = 8
    assert high.input_tokens - low.input_tokens == frames * (255 - 85)
    assert low.input_tokens - text_only.input_tokens > frames * 85  # images and their captions
    assert text_only.input_tokens > len(json.dumps(facts.to_dict())) // 4
    assert server.requests == []  # estimating sends nothing


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (320, 240, "low", 85),
        (4000, 3000, "low", 85),
        (320, 240, "high", 255),
        (1024, 1024, "high", 765),  # shrunk to 768x768: 4 tiles
        (2048, 4096, "high", 1105),  # 1024x2048, then 768x1536: 6 tiles
        (2048, 4096, "auto", 1105),
    ],
)
def test_image_tokens_follow_the_tile_formula(
    width: int, height: int, detail: Any, tokens: int
) -> None:
    assert image_tokens(width, height, detail) == tokens


@pytest.mark.parametrize(
    ("fault", "raised", "says"),
    [
        ("rate_limit", RetryableError, "HTTP 429"),
        ("server_error", RetryableError, "HTTP 500"),
        ("slow", RetryableError, "timed out"),
        ("drop", RetryableError, "connection"),
        ("malformed", MalformedReplyError, "not valid JSON"),
        ("wrong_segments", MalformedReplyError, "asked for"),
        ("truncated", MalformedReplyError, "cut off"),
        ("unauthorized", PermanentTeacherError, TEST_KEY_ENV),
    ],
)
def test_each_failure_is_classified(
    server: FakeOpenAIServer, fault: Fault, raised: type[Exception], says: str
) -> None:
    server.behaviour.faults[0] = [fault]
    with pytest.raises(raised) as caught:
        annotate_once(loopback_teacher(server.base_url, timeout_s=0.3))
    assert says in str(caught.value)
    assert TEST_KEY not in str(caught.value)
    if isinstance(caught.value, RetryableError):
        assert caught.value.retry_after == (1.0 if fault == "rate_limit" else None)
    if isinstance(caught.value, MalformedReplyError):
        assert caught.value.usage.output_tokens == 200  # a bad answer still costs
        assert caught.value.text


def test_a_missing_route_or_model_is_not_retried(server: FakeOpenAIServer) -> None:
    teacher = loopback_teacher(server.base_url.replace("/v1", "/nowhere"))
    with pytest.raises(PermanentTeacherError, match="HTTP 404"):
        annotate_once(teacher)


def test_repair_resends_the_conversation_with_the_answer_and_the_reason(
    server: FakeOpenAIServer,
) -> None:
    previous = MalformedReplyError("the reply is not valid JSON (oops)", "{segments: [", Usage())
    reply = annotate_once(loopback_teacher(server.base_url), repair=previous)
    (request,) = server.requests
    messages = request.body["messages"]
    assert request.repair and [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    assert messages[2]["content"] == "{segments: ["
    assert "the reply is not valid JSON (oops)" in messages[3]["content"]
    assert len(reply.rationale.segments) == 4


def test_json_schema_mode_sends_a_strict_schema(server: FakeOpenAIServer) -> None:
    annotate_once(loopback_teacher(server.base_url, json_schema=True))
    response_format = server.requests[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert spec["strict"] is True
    segment = spec["schema"]["$defs"]["SegmentRationale"]
    assert set(segment["required"]) == set(segment["properties"])
    assert segment["additionalProperties"] is False
    assert spec["schema"]["properties"]["schema_version"] == {
        "enum": ["1.0"],
        "title": "Schema Version",
        "type": "string",
    }
    assert "minLength" not in json.dumps(spec)


def test_optional_parameters_can_be_left_to_the_endpoint(server: FakeOpenAIServer) -> None:
    annotate_once(loopback_teacher(server.base_url, temperature=None, max_output_tokens=None))
    body = server.requests[0].body
    assert "temperature" not in body and "max_tokens" not in body
    annotate_once(loopback_teacher(server.base_url))
    assert server.requests[1].body["temperature"] == 0.0
    assert server.requests[1].body["max_tokens"] == 4096


def test_retry_after_reads_milliseconds_seconds_and_dates() -> None:
    now = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    in_30_s = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_s({"retry-after": "2"}, now) == 2.0
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}, now) == 1.5
    assert retry_after_s({"retry-after": in_30_s}, now) == 30.0
    assert retry_after_s({"retry-after": format_datetime(now - timedelta(seconds=5))}, now) == 0
    assert retry_after_s({"retry-after": "soon"}, now) is None
    assert retry_after_s({}, now) is None


def test_the_public_endpoint_needs_a_key_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TEST_KEY_ENV, raising=False)
    settings = OpenAITeacherSettings(model="gpt-4o-mini", api_key_env=TEST_KEY_ENV)
    with pytest.raises(HarnessError) as refused:
        OpenAITeacher(settings)
    assert TEST_KEY_ENV in refused.value.problem and TEST_KEY_ENV in refused.value.fix
    assert OpenAITeacher(settings, require_key=False).base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    "bad", [{"frames_per_episode": -1}, {"frame_max_side": 8}, {"timeout_s": 0.0}]
)
def test_impossible_settings_are_refused_with_a_fix(bad: dict[str, Any]) -> None:
    with pytest.raises(HarnessError) as refused:
        OpenAITeacherSettings(model="gpt-4o", **bad)
    assert refused.value.fix.startswith("pass --")


def test_a_local_server_is_asked_without_a_key(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TEST_KEY_ENV)
    annotate_once(loopback_teacher(server.base_url))
    assert server.requests[0].authorization == "Bearer no-key"


def test_manifest_fields_carry_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_KEY_ENV, TEST_KEY)
    teacher = loopback_teacher("https://user:hunter2@example.com:8443/v1?api-key=abc#x")
    fields = teacher.manifest_fields()
    assert fields["base_url"] == "https://example.com:8443/v1"
    encoded = json.dumps(fields)
    assert "hunter2" not in encoded and "abc" not in encoded and TEST_KEY not in encoded
    assert fields["api_key_env"] == TEST_KEY_ENV
    assert teacher.prompt_template() == prompt_template_text()
    assert f"({PROMPT_VERSION})" in prompt_template_text()


def test_a_fenced_answer_is_accepted_and_a_wrong_one_explained() -> None:
    spans = [SegmentSpan(segment=0, subtask="reach", start=0, end=5)]
    answer = {
        "segments": [
            {
                "segment": 0,
                "subtask": "reach",
                "observation": "o",
                "situation_analysis": "s",
                "spatial_reasoning": "r",
                "task_plan": ["reach"],
                "next_step": "n",
            }
        ]
    }
    fenced = "```json\n" + json.dumps(answer) + "\n```"
    assert parse_rationale(fenced, spans).segments[0].next_step == "n"
    answer["segments"][0]["observation"] = ""
    with pytest.raises(ValueError, match=r"segments\.0\.observation"):
        parse_rationale(json.dumps(answer), spans)


def test_prices_come_from_overrides_then_the_table() -> None:
    assert resolve_prices("gpt-4o-mini") == LIST_PRICES["gpt-4o-mini"]
    assert resolve_prices("gpt-4o-2024-08-06") == LIST_PRICES["gpt-4o"]
    assert resolve_prices("gpt-4o", price_output=1.0) == Prices(2.50, 1.0)
    assert resolve_prices("my-local-llama") is None
    assert resolve_prices("my-local-llama", price_input=0.0) is None
    assert resolve_prices("my-local-llama", 0.0, 0.0) == Prices(0.0, 0.0)
    assert Prices(2.0, 8.0).cost(1_000_000, 500_000) == pytest.approx(6.0)
    with pytest.raises(HarnessError, match="negative"):
        resolve_prices("gpt-4o", price_input=-1.0)
