"""A real OpenAI-compatible HTTP server on loopback, with faults injected on demand.

It answers POST /v1/chat/completions the way a chat model would: a valid rationale for exactly
the segments named in the request block of the user message, with usage numbers. Tests queue
faults per episode (consumed one request at a time) or for every request, and read back every
request it received with its arrival time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from refinevla_bench.teacher.prompts import REQUEST_CLOSE, REQUEST_OPEN

Fault = Literal[
    "rate_limit",  # 429 with Retry-After
    "server_error",  # 500
    "slow",  # a valid answer, but only after `slow_s`
    "malformed",  # 200 whose content is not JSON
    "wrong_segments",  # valid JSON for the wrong segments
    "truncated",  # finish_reason "length" and the JSON cut short
    "drop",  # the connection closes without a response
    "unauthorized",  # 401
]


@dataclass(frozen=True)
class RecordedRequest:
    at: float  # time.monotonic() on arrival
    episode: int | None
    repair: bool  # the conversation carries a previous answer to fix
    body: dict[str, Any]
    authorization: str | None


@dataclass
class ServerBehaviour:
    latency_s: float = 0.0
    retry_after_s: float = 1.0
    slow_s: float = 1.0
    prompt_tokens: int = 1000
    completion_tokens: int = 200
    always: Fault | None = None
    faults: dict[int, list[Fault]] = field(default_factory=dict)  # episode -> next faults


def requested_segments(body: dict[str, Any]) -> tuple[int | None, list[dict[str, Any]]]:
    """The episode index and segments from the request block of the first user message."""
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content]
        for text in parts:
            if REQUEST_OPEN in text and REQUEST_CLOSE in text:
                block = text.split(REQUEST_OPEN, 1)[1].split(REQUEST_CLOSE, 1)[0]
                request = json.loads(block)
                return int(request["episode"]), list(request["segments"])
    return None, []


def rationale_for(episode: int | None, segments: list[dict[str, Any]]) -> dict[str, Any]:
    subtasks = [segment["subtask"] for segment in segments]
    return {
        "schema_version": "1.0",
        "segments": [
            {
                "segment": segment["segment"],
                "subtask": segment["subtask"],
                "observation": f"Episode {episode}: the gripper is open above the table.",
                "situation_analysis": f"Starting {segment['subtask']} at step {segment['start']}.",
                "spatial_reasoning": "The carrot is below and in front of the gripper.",
                "task_plan": subtasks[number:],
                "next_step": f"Begin to {segment['subtask']}.",
            }
            for number, segment in enumerate(segments)
        ],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm the body would wait
    # for the client's delayed ACK (~40 ms), adding a fake latency to every request.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the tests read the recorded requests instead."""

    def do_POST(self) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length))
        episode, segments = requested_segments(body)
        repair = any(message.get("role") == "assistant" for message in body["messages"])
        fault = self.server.owner.record(
            RecordedRequest(arrived, episode, repair, body, self.headers.get("authorization"))
        )
        behaviour = self.server.owner.behaviour
        time.sleep(behaviour.latency_s)
        if self.path != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
        elif fault == "drop":
            self.close_connection = True
        elif fault == "rate_limit":
            headers = {"Retry-After": f"{behaviour.retry_after_s:g}"}
            self._send_json(429, {"error": {"message": "slow down", "type": "rate"}}, headers)
        elif fault == "server_error":
            self._send_json(500, {"error": {"message": "boom", "type": "server_error"}})
        elif fault == "unauthorized":
            error = {"message": "Incorrect API key provided", "code": "invalid_api_key"}
            self._send_json(401, {"error": error})
        else:
            if fault == "slow":
                time.sleep(behaviour.slow_s)
            self._answer(body, episode, segments, fault)

    def _answer(
        self,
        body: dict[str, Any],
        episode: int | None,
        segments: list[dict[str, Any]],
        fault: Fault | None,
    ) -> None:
        behaviour = self.server.owner.behaviour
        content = json.dumps(rationale_for(episode, segments))
        finish_reason = "stop"
        if fault == "malformed":
            content = "Sure! Here is the rationale: {segments: [oops"
        elif fault == "wrong_segments":
            content = json.dumps(rationale_for(episode, segments[:-1]))
        elif fault == "truncated":
            content, finish_reason = content[: len(content) // 2], "length"
        completion = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": behaviour.prompt_tokens,
                "completion_tokens": behaviour.completion_tokens,
                "total_tokens": behaviour.prompt_tokens + behaviour.completion_tokens,
            },
        }
        self._send_json(200, completion)

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a timeout test)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # benchmark concurrency connects all at once

    def __init__(self, owner: FakeOpenAIServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class FakeOpenAIServer:
    def __init__(self, behaviour: ServerBehaviour | None = None) -> None:
        self.behaviour = behaviour or ServerBehaviour()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def record(self, request: RecordedRequest) -> Fault | None:
        """Remember the request; the fault to answer it with, if any."""
        with self._lock:
            self.requests.append(request)
            queued = (
                self.behaviour.faults.get(request.episode, [])
                if request.episode is not None
                else []
            )
            if queued:
                return queued.pop(0)
            return self.behaviour.always

    def requests_for(self, episode: int) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.episode == episode]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextmanager
def running_server(behaviour: ServerBehaviour | None = None) -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(behaviour)
    server.start()
    try:
        yield server
    finally:
        server.stop()
