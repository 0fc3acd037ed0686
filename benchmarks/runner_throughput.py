"""Harness runner vs an upstream-style loop, same machine, same episodes, same policy.

Upstream SimplerEnv makes a new environment for every episode and runs episodes one after
another. The harness makes each task variant's environment once and rebuilds only its physics
scene at each reset (as both loops here do: an episode then plays the same in either). Both
loops go through the same backend, policy and action conversion; only `gym.make` per episode
differs. Reported:
episodes per minute for each, their ratio, and the share of wall time spent outside
`env.step` and the policy (building, resetting, bookkeeping). With `--num-envs N` (GPU
simulation) the harness also runs N episodes at once, against its own one-at-a-time loop.
Episodes come from the task's first variant (one environment build).

    python benchmarks/runner_throughput.py --task carrot_on_plate --episodes 8 --policy random
    python benchmarks/runner_throughput.py --suite google_robot_vm \
        --task pick_coke_can_horizontal --episodes 8 --policy scripted
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from refinevla_bench.harness.backends.maniskill import ManiSkillBackend, resolve_device
from refinevla_bench.harness.manifest import package_versions
from refinevla_bench.harness.paths import assets_root
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.runner import run_task
from refinevla_bench.harness.suites import get_suite
from refinevla_bench.harness.suites.spec import SuiteSpec, TaskSpec
from refinevla_bench.policies.protocol import Policy, wants_privileged_state
from refinevla_bench.policies.registry import create_policy


class Clock:
    """Accumulates the seconds spent inside the methods it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner: object, method: str) -> None:
        inner: Callable[..., Any] = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        setattr(owner, method, timed)


@dataclass(frozen=True)
class LoopResult:
    name: str
    episodes: int
    wall_seconds: float
    step_seconds: float
    policy_seconds: float
    outcomes: tuple[tuple[int, bool, bool, int], ...]  # (episode id, success, grasped, steps)

    @property
    def episodes_per_minute(self) -> float:
        return 60.0 * self.episodes / self.wall_seconds

    @property
    def overhead_share(self) -> float:
        return 1.0 - (self.step_seconds + self.policy_seconds) / self.wall_seconds


def _outcome(record: EpisodeRecord) -> tuple[int, bool, bool, int]:
    return (record.episode_id, record.success, record.grasped, record.steps)


def harness_loop(
    backend: ManiSkillBackend,
    suite: SuiteSpec,
    task: TaskSpec,
    policy: Policy,
    ids: list[int],
    num_envs: int = 1,
) -> LoopResult:
    steps, acting = Clock(), Clock()
    acting.wrap(policy, "act")
    started = time.perf_counter()
    privileged = wants_privileged_state(policy)
    with backend.open_task(task, num_envs=num_envs, privileged=privileged) as env:
        steps.wrap(env, "step")
        records = list(run_task(env, suite, policy, ids, seed=0))
    wall = time.perf_counter() - started
    outcomes = tuple(_outcome(record) for record in records)
    name = "harness (env made once)" if num_envs == 1 else f"harness, {num_envs} envs at once"
    return LoopResult(name, len(ids), wall, steps.seconds, acting.seconds, outcomes)


def upstream_style_loop(
    backend: ManiSkillBackend, suite: SuiteSpec, task: TaskSpec, policy: Policy, ids: list[int]
) -> LoopResult:
    steps, acting = Clock(), Clock()
    acting.wrap(policy, "act")
    records: list[EpisodeRecord] = []
    started = time.perf_counter()
    for episode_id in ids:
        with backend.open_task(task, privileged=wants_privileged_state(policy)) as env:
            steps.wrap(env, "step")
            records.extend(run_task(env, suite, policy, [episode_id], seed=0))
    wall = time.perf_counter() - started
    outcomes = tuple(_outcome(record) for record in records)
    name = "upstream-style (env made per episode)"
    return LoopResult(name, len(ids), wall, steps.seconds, acting.seconds, outcomes)


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Runner throughput: harness vs upstream-style loop",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']['cpus']} CPU cores, {report['machine']['platform']}, "
        f"device {report['device']}, render device: {report['render_devices']}",
        f"Task {report['task']}, policy {report['policy']}, {report['episodes']} episodes each.",
        "",
        "| loop | episodes/min | wall s | env.step s | policy s | share outside step+policy |",
        "|---|---|---|---|---|---|",
    ]
    for loop in report["loops"]:
        lines.append(
            f"| {loop['name']} | {loop['episodes_per_minute']:.1f} | {loop['wall_seconds']:.1f} "
            f"| {loop['step_seconds']:.1f} | {loop['policy_seconds']:.2f} "
            f"| {100 * loop['overhead_share']:.1f}% |"
        )
    lines += [
        "",
        f"Speed-up of the harness loop: **{report['speedup']:.2f}x** (same episodes and policy; "
        f"per-episode success, grasp and steps identical: {report['same_results']})",
        "",
    ]
    if "parallel_speedup" in report:
        lines += [
            f"{report['num_envs']} envs at once vs one at a time: "
            f"**{report['parallel_speedup']:.2f}x**",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--suite", default="widowx")
    parser.add_argument("--task", default="carrot_on_plate")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--policy", default="random")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-envs", type=int, default=1, help="also run N at once (GPU)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    suite = get_suite(args.suite)
    task = suite.select_tasks([args.task])[0]
    backend = ManiSkillBackend(suite, assets_root(), resolve_device(args.device))
    ids = [i for i in task.episode_ids if task.variant_index(i) == 0][: args.episodes]

    def policy() -> Policy:
        return create_policy(args.policy, robot=suite.robot)

    # upstream-style first: any one-off warm-up cost lands on the baseline, not on the harness
    upstream = upstream_style_loop(backend, suite, task, policy(), ids)
    harness = harness_loop(backend, suite, task, policy(), ids)
    parallel = (
        harness_loop(backend, suite, task, policy(), ids, args.num_envs)
        if args.num_envs > 1
        else None
    )
    report = {
        "command": " ".join(["python", "benchmarks/runner_throughput.py", *sys.argv[1:]]),
        "suite": suite.name,
        "task": task.name,
        "policy": args.policy,
        "episodes": len(ids),
        "device": backend.device,
        "render_devices": ", ".join(device.name for device in backend.render_devices),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": package_versions(),
        "loops": [
            {
                **asdict(loop),
                "episodes_per_minute": loop.episodes_per_minute,
                "overhead_share": loop.overhead_share,
            }
            for loop in (harness, upstream, *([parallel] if parallel else []))
        ],
        "speedup": harness.episodes_per_minute / upstream.episodes_per_minute,
        "same_results": harness.outcomes == upstream.outcomes,
    }
    if parallel is not None:
        report["num_envs"] = args.num_envs
        report["parallel_speedup"] = parallel.episodes_per_minute / harness.episodes_per_minute
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"runner_throughput-{suite.name}-{backend.device}"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
