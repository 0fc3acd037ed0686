"""Annotation throughput: the engine sending one request at a time vs several in flight.

A teacher request spends almost all its time waiting for the model, so throughput should grow
with concurrency until something local (frame encoding, writes, the event loop) or the server
limits it. The server here is the tests' loopback OpenAI-compatible server with a fixed latency
per request, so only the engine and the openai teacher's own work are measured: frames are
sampled and JPEG-encoded, requests go over real HTTP, records and cache entries are written.

    python -m benchmarks.annotation_throughput --episodes 64 --latency 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from refinevla_bench.teacher.engine import annotate_episodes
from refinevla_bench.teacher.engine_types import AnnotationSettings
from tests.annotation_fixtures import annotation_inputs, loopback_teacher
from tests.openai_server import ServerBehaviour, running_server

SEQUENTIAL = 1
# Frames of Bridge-like size, shrunk to 320 px and JPEG-encoded: the first and last of each of
# the 4 segments the fixtures cut an episode into.
FRAME_HEIGHT, FRAME_WIDTH = 256, 320
FRAMES_PER_REQUEST = 8


def serve(latency_s: float, connection: Connection) -> None:
    """The loopback server, in its own process so it takes no CPU from the engine's."""
    with running_server(ServerBehaviour(latency_s=latency_s)) as server:
        connection.send(server.base_url)
        connection.recv()  # until the benchmark is done with it


@contextmanager
def server_process(latency_s: float) -> Iterator[str]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(latency_s, theirs))
    process.start()
    try:
        yield str(ours.recv())
    finally:
        ours.send("stop")
        process.join()


def measure(base_url: str, episodes: int, concurrency: int, work_dir: Path) -> dict[str, Any]:
    inputs = annotation_inputs(episodes, length=60, height=FRAME_HEIGHT, width=FRAME_WIDTH)
    teacher = loopback_teacher(base_url, frames_per_episode=FRAMES_PER_REQUEST)
    settings = AnnotationSettings(concurrency=concurrency)
    started = time.perf_counter()
    summary = asyncio.run(annotate_episodes(inputs, teacher, work_dir, settings))
    wall_s = time.perf_counter() - started
    if summary.ok != episodes or summary.requests != episodes:
        raise RuntimeError(
            f"concurrency {concurrency} did not annotate every episode once: {summary}"
        )
    return {
        "concurrency": concurrency,
        "wall_s": round(wall_s, 3),
        "episodes_per_s": round(episodes / wall_s, 2),
    }


def to_markdown(report: dict[str, Any]) -> str:
    rows = [
        f"| {result['concurrency']} | {result['episodes_per_s']} | {result['wall_s']} | "
        f"{result['ratio_to_sequential']}x | {result['ideal_episodes_per_s']} |"
        for result in report["results"]
    ]
    environment = report["environment"]
    return "\n".join(
        [
            "# Annotation throughput: sequential vs concurrent requests",
            "",
            f"Command: `{report['command']}`",
            "",
            f"Machine: {environment['cpus']} CPU cores, {environment['platform']}, "
            f"Python {environment['python']}, openai {environment['openai']}.",
            f"{report['episodes']} episodes, loopback server (its own process) with "
            f"{report['latency_s']} s latency per request, {report['frames_per_request']} "
            f"frames of {report['frame_size']} per request.",
            "",
            "| concurrency | episodes/s | wall s | vs sequential | ideal episodes/s |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument("--concurrency", default="8,16,32", help="compared with 1")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    levels = [SEQUENTIAL, *(int(level) for level in args.concurrency.split(","))]
    results = []
    with server_process(args.latency) as base_url:
        for concurrency in levels:
            with tempfile.TemporaryDirectory() as work_dir:
                results.append(measure(base_url, args.episodes, concurrency, Path(work_dir)))
    sequential = results[0]["episodes_per_s"]
    for result in results:
        result["ratio_to_sequential"] = round(result["episodes_per_s"] / sequential, 2)
        # The best any engine could do: requests in waves of `concurrency`, each `latency` long.
        result["ideal_episodes_per_s"] = round(result["concurrency"] / args.latency, 2)
    report = {
        "command": " ".join(["python -m benchmarks.annotation_throughput", *sys.argv[1:]]),
        "episodes": args.episodes,
        "latency_s": args.latency,
        "frames_per_request": FRAMES_PER_REQUEST,
        "frame_size": f"{FRAME_WIDTH}x{FRAME_HEIGHT}",
        "environment": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "openai": version("openai"),
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "annotation_throughput"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
