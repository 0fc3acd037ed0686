"""The `openai` teacher: any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM,
llama.cpp, Ollama), asked once per episode with the grounded facts and a few frames.

Chat Completions rather than the newer Responses API because local servers implement it.
The client never retries (`max_retries=0`): the engine owns retries, backoff and the budget,
so every attempt is counted once. The API key is read from an environment variable and kept
only in memory; it is not part of the request key, the manifest or any message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import (
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
    completion_create_params,
)

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.teacher import prompts
from refinevla_bench.teacher.endpoint_defaults import DEFAULT_API_KEY_ENV, DEFAULT_BASE_URL
from refinevla_bench.teacher.facts import EpisodeFacts
from refinevla_bench.teacher.frame_sampling import PromptFrame, sample_frames
from refinevla_bench.teacher.openai_errors import classify, scrub
from refinevla_bench.teacher.protocol import MalformedReplyError, TeacherReply
from refinevla_bench.teacher.reply_parsing import parse_rationale
from refinevla_bench.teacher.schema import Usage
from refinevla_bench.teacher.token_estimate import (
    MESSAGE_OVERHEAD_TOKENS,
    ImageDetail,
    answer_tokens,
    image_tokens,
    text_tokens,
)

TEACHER_NAME = "openai"
# Sent where no key is needed (a local server); the public endpoint refuses to start without one.
NO_KEY = "no-key"
# Requests prepared for request_key() and reused by annotate() moments later.
PREPARED_REQUESTS_KEPT = 256
MIN_FRAME_SIDE = 32


@dataclass(frozen=True)
class OpenAITeacherSettings:
    model: str
    base_url: str | None = None  # None: OpenAI's public endpoint
    api_key_env: str = DEFAULT_API_KEY_ENV
    timeout_s: float = 120.0
    frames_per_episode: int = 8
    frame_max_side: int = 320
    image_detail: ImageDetail = "low"  # low sees a 512 px image: all of a 320 px frame
    json_schema: bool = False  # strict structured output instead of plain JSON mode
    temperature: float | None = 0.0  # None: the endpoint's default (reasoning models need it)
    max_output_tokens: int | None = 4096
    camera: str | None = None  # None: the episode's first camera

    def __post_init__(self) -> None:
        if self.frames_per_episode < 0:
            raise HarnessError(
                f"frames per episode is {self.frames_per_episode}",
                "pass --frames-per-episode 0 (text only) or more",
            )
        if self.frame_max_side < MIN_FRAME_SIDE:
            raise HarnessError(
                f"a frame side of {self.frame_max_side} px is too small to show anything",
                f"pass --frame-max-side {MIN_FRAME_SIDE} or more",
            )
        if self.timeout_s <= 0:
            raise HarnessError(f"timeout is {self.timeout_s} s", "pass --timeout > 0")


@dataclass(frozen=True)
class _PreparedRequest:
    messages: list[ChatCompletionMessageParam]
    frames: list[PromptFrame]
    texts: list[str]
    key: str


def public_url(url: str) -> str:
    """The URL without user info, query or fragment: safe for a manifest."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class OpenAITeacher:
    name = TEACHER_NAME

    def __init__(self, settings: OpenAITeacherSettings, require_key: bool = True) -> None:
        """`require_key=False` for dry runs, which send nothing."""
        self.settings = settings
        self.model = settings.model
        self.prompt_version = prompts.PROMPT_VERSION
        self.base_url = settings.base_url or DEFAULT_BASE_URL
        self._api_key = os.environ.get(settings.api_key_env) or None
        if self._api_key is None and settings.base_url is None and require_key:
            raise HarnessError(
                f"no API key: the environment variable {settings.api_key_env} is not set",
                f"export {settings.api_key_env}=<your key>, or pass --base-url for a local server",
            )
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._prepared: OrderedDict[tuple[str, int, str], _PreparedRequest] = OrderedDict()
        self._prepared_lock = threading.Lock()

    def prompt_template(self) -> str:
        return prompts.prompt_template_text()

    def manifest_fields(self) -> dict[str, Any]:
        fields = asdict(self.settings)
        fields["base_url"] = public_url(self.base_url)
        return fields

    def request_key(self, episode: EpisodeView, facts: EpisodeFacts) -> str:
        return self._prepare(episode, facts).key

    def estimate_usage(self, episode: EpisodeView, facts: EpisodeFacts) -> Usage:
        prepared = self._prepare(episode, facts)
        text = sum(text_tokens(part) for part in prepared.texts)
        images = sum(
            image_tokens(frame.width, frame.height, self.settings.image_detail)
            for frame in prepared.frames
        )
        return Usage(
            input_tokens=text + images + MESSAGE_OVERHEAD_TOKENS * len(prepared.messages),
            output_tokens=answer_tokens(len(facts.segments)),
            requests=1,
        )

    async def annotate(
        self, episode: EpisodeView, facts: EpisodeFacts, repair: MalformedReplyError | None = None
    ) -> TeacherReply:
        messages = list(self._prepare(episode, facts).messages)
        if repair is not None:
            messages.append({"role": "assistant", "content": repair.text})
            messages.append({"role": "user", "content": prompts.repair_prompt(str(repair))})
        try:
            completion = await self._client_for_this_loop().chat.completions.create(
                model=self.model,
                messages=messages,
                response_format=self._response_format(),
                temperature=openai.omit
                if self.settings.temperature is None
                else self.settings.temperature,
                max_tokens=openai.omit
                if self.settings.max_output_tokens is None
                else self.settings.max_output_tokens,
                timeout=self.settings.timeout_s,
            )
        except openai.APIError as error:
            raise classify(error, self.settings.api_key_env, self._api_key) from None
        reported = completion.usage
        usage = Usage(
            input_tokens=reported.prompt_tokens if reported else 0,
            output_tokens=reported.completion_tokens if reported else 0,
            requests=1,
        )
        if not completion.choices:
            raise MalformedReplyError("the reply has no choices", "", usage)
        choice = completion.choices[0]
        text = choice.message.content or ""
        if choice.finish_reason == "length":
            raise MalformedReplyError(
                "the reply was cut off at the output token limit; answer more briefly",
                text,
                usage,
            )
        try:
            rationale = parse_rationale(text, facts.spans())
        except ValueError as error:
            raise MalformedReplyError(scrub(str(error), self._api_key), text, usage) from None
        return TeacherReply(rationale=rationale, usage=usage)

    async def aclose(self) -> None:
        """Close the pooled connections (they belong to the running event loop)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _client_for_this_loop(self) -> openai.AsyncOpenAI:
        """One client per event loop: pooled connections cannot outlive the loop they serve."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or NO_KEY,
                base_url=self.base_url,
                max_retries=0,
                timeout=self.settings.timeout_s,
            )
            self._client_loop = loop
        return self._client

    def _response_format(self) -> completion_create_params.ResponseFormat:
        if not self.settings.json_schema:
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {
                "name": "episode_rationale",
                "schema": prompts.strict_answer_schema(),
                "strict": True,
            },
        }

    def _prepare(self, episode: EpisodeView, facts: EpisodeFacts) -> _PreparedRequest:
        """Build once, reuse while recent; callable from worker threads and the event loop."""
        facts_json = json.dumps(facts.to_dict(), sort_keys=True)
        cache_key = (episode.dataset, episode.index, facts_json)
        with self._prepared_lock:
            prepared = self._prepared.get(cache_key)
            if prepared is not None:
                self._prepared.move_to_end(cache_key)
                return prepared
        prepared = self._build(episode, facts)
        with self._prepared_lock:
            self._prepared[cache_key] = prepared
            if len(self._prepared) > PREPARED_REQUESTS_KEPT:
                self._prepared.popitem(last=False)
        return prepared

    def _build(self, episode: EpisodeView, facts: EpisodeFacts) -> _PreparedRequest:
        spans = facts.spans()
        frames = sample_frames(
            episode,
            spans,
            self.settings.frames_per_episode,
            self.settings.frame_max_side,
            self.settings.camera,
        )
        system = prompts.system_prompt()
        user = prompts.user_prompt(episode, facts)
        parts: list[ChatCompletionContentPartParam] = [{"type": "text", "text": user}]
        texts = [system, user]
        hashed: list[object] = [system, user]
        for frame in frames:
            caption = prompts.frame_caption(
                frame.choice.step, frame.choice.position, frame.choice.span
            )
            parts.append({"type": "text", "text": caption})
            parts.append(
                {
                    "type": "image_url",
                    "image_url": {"url": frame.data_url(), "detail": self.settings.image_detail},
                }
            )
            texts.append(caption)
            hashed.extend([caption, hashlib.sha256(frame.jpeg).hexdigest()])
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": parts},
        ]
        return _PreparedRequest(messages, frames, texts, self._key(hashed))

    def _key(self, hashed_content: list[object]) -> str:
        identity = {
            "teacher": self.name,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "content": hashed_content,
            "params": {
                "json_schema": self.settings.json_schema,
                "temperature": self.settings.temperature,
                "max_output_tokens": self.settings.max_output_tokens,
                "image_detail": self.settings.image_detail,
            },
        }
        encoded = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()
