"""What serving a policy costs: the wire protocol vs in-process calls, batched vs unbatched.

1. Per-step latency of the `zero` policy on one full-resolution WidowX frame (480x640), called
   in process vs through `RemotePolicy` and a server in another process on loopback.
2. Throughput of 8 concurrent clients against a stand-in model whose call costs a fixed
   `--call-ms` plus `--row-ms` per row (sleeping, like waiting on a GPU): a server with
   `max_batch 1` (one instance per client, calls serialised as on one accelerator) vs
   `max_batch 8` (rows of all clients in one call).

    python benchmarks/serving_overhead.py --steps 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.manifest import package_versions
from refinevla_bench.harness.serving.client import ClientSettings, remote_policy
from refinevla_bench.harness.serving.server import PolicyServer
from refinevla_bench.policies.protocol import (
    EpisodeKey,
    ObservationBatch,
    Policy,
    PolicyConventions,
)
from refinevla_bench.policies.zero import ZeroPolicy

CLIENTS = 8
DEVICE_LOCK = threading.Lock()  # one accelerator: calls of separate instances queue up


class StandInModel:
    """Costs `call_s + row_s * rows` per act(), one call at a time, like a model on a GPU."""

    conventions: ClassVar[PolicyConventions] = PolicyConventions()
    stateless: ClassVar[bool] = True
    call_s = 0.02
    row_s = 0.001

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        with DEVICE_LOCK:
            time.sleep(self.call_s + self.row_s * observation.batch_size)
        return np.zeros((observation.batch_size, 7))


def frame_batch(rows: int, height: int = 480, width: int = 640) -> ObservationBatch:
    images = np.random.default_rng(0).integers(0, 255, (rows, height, width, 3), dtype=np.uint8)
    return ObservationBatch(
        images, ("put carrot on plate",) * rows, (EpisodeKey("carrot_on_plate", 0, 0),) * rows
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_forever(kind: str, port: int, max_batch: int, call_ms: float, row_ms: float) -> None:
    """The server process's body."""
    StandInModel.call_s, StandInModel.row_s = call_ms / 1000, row_ms / 1000
    make = ZeroPolicy if kind == "zero" else StandInModel
    server = PolicyServer(make, kind, max_batch=max_batch, max_wait_ms=5.0)
    asyncio.run(server.serve("127.0.0.1", port))


class ServerProcess:
    def __init__(self, kind: str, max_batch: int, args: argparse.Namespace) -> None:
        self.port = free_port()
        command = [sys.executable, __file__, "--serve", kind, "--port", str(self.port)]
        command += ["--max-batch", str(max_batch), "--call-ms", str(args.call_ms)]
        self.process = subprocess.Popen([*command, "--row-ms", str(args.row_ms)])
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def per_step_seconds(policy: Policy, steps: int) -> float:
    batch = frame_batch(1)
    policy.reset(list(batch.instructions))
    for _ in range(5):  # warm-up
        policy.act(batch)
    started = time.perf_counter()
    for _ in range(steps):
        policy.act(batch)
    return (time.perf_counter() - started) / steps


def throughput(url: str, steps: int) -> float:
    """Steps per second summed over CLIENTS concurrent clients (one row each, small frames)."""
    batch = frame_batch(1, 224, 224)

    def client(_: int) -> None:
        policy = remote_policy(url, ClientSettings(timeout_s=60))
        policy.reset(list(batch.instructions))
        for _ in range(steps):
            policy.act(batch)

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    return CLIENTS * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--call-ms", type=float, default=20.0)
    parser.add_argument("--row-ms", type=float, default=1.0)
    parser.add_argument("--serve", choices=["zero", "stand-in"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if args.serve:
        serve_forever(args.serve, args.port, args.max_batch, args.call_ms, args.row_ms)
        return
    local = per_step_seconds(ZeroPolicy(), args.steps)
    zero_server = ServerProcess("zero", 1, args)
    try:
        remote = per_step_seconds(remote_policy(zero_server.url), args.steps)
    finally:
        zero_server.stop()
    rates: dict[str, float] = {}
    for name, max_batch in (("unbatched", 1), ("batched", CLIENTS)):
        server = ServerProcess("stand-in", max_batch, args)
        try:
            rates[name] = throughput(server.url, max(args.steps // 10, 10))
        finally:
            server.stop()
    report: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/serving_overhead.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": package_versions(("numpy", "websockets", "msgpack")),
        "per_step_zero_policy_480x640": {
            "in_process_ms": local * 1000,
            "served_loopback_ms": remote * 1000,
            "overhead_ms": (remote - local) * 1000,
            "served_over_in_process": remote / local,
        },
        "throughput_8_clients_224x224": {
            "stand_in_call_ms": args.call_ms,
            "stand_in_row_ms": args.row_ms,
            "unbatched_steps_per_s": rates["unbatched"],
            "batched_steps_per_s": rates["batched"],
            "batched_over_unbatched": rates["batched"] / rates["unbatched"],
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["per_step_zero_policy_480x640"], indent=2))
    print(json.dumps(report["throughput_8_clients_224x224"], indent=2))


if __name__ == "__main__":
    main()
