"""Google Robot planner per control step: our batched torch planner vs ruckig in a Python loop.

Upstream plans every control step, one environment at a time, a ruckig trajectory for the arm
(9 joints) and one for the gripper (2 joints), and samples each at the 172 substep times. The
harness plans all environments at once (`control_step.plan_substeps`, sampling included).
Both get the same random feasible problems, built like tests/test_google_robot_control.py.
Reported per number of environments N: milliseconds per control step (arm + gripper) and per
environment for each, and the ratio ours / ruckig (below 1: ours is faster).

    python -m benchmarks.google_robot_planner --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from refinevla_bench.harness.backends.google_robot_control import config, control_step
from refinevla_bench.harness.backends.google_robot_control.trajectory import MotionLimits
from refinevla_bench.harness.manifest import git_state, package_versions

PARTS = (
    ("arm", config.ARM_LIMITS, len(config.ARM_JOINTS)),
    ("gripper", config.GRIPPER_LIMITS, len(config.GRIPPER_JOINTS)),
)
Problem = tuple[np.ndarray, np.ndarray, np.ndarray]  # start, start velocity, target: (N, D)


def random_problems(rng: np.random.Generator, n: int, dof: int, limits: MotionLimits) -> Problem:
    """Start positions, velocities within the limit (half at rest) and targets, as in the tests:
    a quarter of the joints stay put, a quarter move a little."""
    start = rng.uniform(-1.0, 1.0, (n, dof))
    distance = rng.normal(0.0, 0.3, (n, dof)) * rng.choice([0.0, 0.1, 1.0, 1.0], (n, dof))
    velocity = rng.uniform(-1.0, 1.0, (n, dof)) * limits.velocity * rng.choice([0, 1], (n, dof))
    return start, velocity, start + distance


def median_seconds(
    fn: Callable[[], object], repeats: int, synchronize: Callable[[], None] = lambda: None
) -> float:
    """Median wall time of `fn` over `repeats` calls, after one warm-up call."""
    fn()
    synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ours(problem: Problem, limits: MotionLimits, device: torch.device) -> Callable[[], object]:
    """One batched plan and sampling of all environments (what a control step runs)."""
    start, velocity, target = (torch.tensor(x, device=device) for x in problem)
    timing = config.UPSTREAM_TIMING
    return lambda: control_step.plan_substeps(start, velocity, target, limits, timing)


def ruckig_loop(problem: Problem, limits: MotionLimits) -> Callable[[], object]:
    """Upstream's way: per environment, a ruckig plan sampled at the 172 substep times."""
    import ruckig  # upstream's planner (dev extra)

    dof = problem[0].shape[1]
    times = [k / config.SIM_FREQ for k in range(config.UPSTREAM_TIMING.substeps + 1)]
    rows = [tuple(x[i].tolist() for x in problem) for i in range(problem[0].shape[0])]
    planner = ruckig.Ruckig(dof)

    def run() -> list[list[Any]]:
        samples = []
        for start, velocity, target in rows:
            inp = ruckig.InputParameter(dof)
            inp.current_position, inp.current_velocity = start, velocity
            inp.current_acceleration = [0.0] * dof
            inp.target_position = target
            inp.target_velocity, inp.target_acceleration = [0.0] * dof, [0.0] * dof
            inp.max_velocity, inp.min_velocity = [limits.velocity] * dof, [-limits.velocity] * dof
            inp.max_acceleration = [limits.acceleration] * dof
            inp.min_acceleration = [-limits.acceleration] * dof
            inp.max_jerk = [limits.jerk] * dof
            trajectory = ruckig.Trajectory(dof)
            planner.calculate(inp, trajectory)
            end = trajectory.duration
            samples.append([trajectory.at_time(min(t, end))[0] for t in times])
        return samples

    return run


def measure(envs: int, repeats: int, device: torch.device, seed: int) -> dict[str, Any]:
    """Seconds per control step (arm, gripper) for both planners on the same N problems."""
    rng = np.random.default_rng(seed + envs)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    row: dict[str, Any] = {"envs": envs}
    for part, limits, dof in PARTS:
        problem = random_problems(rng, envs, dof, limits)
        row[f"ours_{part}_s"] = median_seconds(ours(problem, limits, device), repeats, synchronize)
        row[f"ruckig_{part}_s"] = median_seconds(ruckig_loop(problem, limits), repeats)
    for name in ("ours", "ruckig"):
        row[f"{name}_s"] = row[f"{name}_arm_s"] + row[f"{name}_gripper_s"]
    row["ratio"] = row["ours_s"] / row["ruckig_s"]
    return row


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Google Robot planner per control step: batched torch vs ruckig per env",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']['cpus']} CPU cores, {report['machine']['platform']}, "
        f"device {report['device']}, torch threads {report['torch_threads']}, "
        f"median of {report['repeats']} control steps after one warm-up.",
        "Ours: `control_step.plan_substeps` (plan + 172 samples, float64, all N at once); "
        "ruckig: one `Ruckig.calculate` + 172 `at_time` per env in a Python loop (upstream).",
        "",
        "| N envs | ours ms/step (arm + gripper) | ours ms/env | ruckig ms/step (arm + gripper) "
        "| ruckig ms/env | ours / ruckig |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        n = row["envs"]
        lines.append(
            f"| {n} | {1e3 * row['ours_s']:.2f} ({1e3 * row['ours_arm_s']:.2f} + "
            f"{1e3 * row['ours_gripper_s']:.2f}) | {1e3 * row['ours_s'] / n:.3f} "
            f"| {1e3 * row['ruckig_s']:.2f} ({1e3 * row['ruckig_arm_s']:.2f} + "
            f"{1e3 * row['ruckig_gripper_s']:.2f}) | {1e3 * row['ruckig_s'] / n:.3f} "
            f"| {row['ratio']:.2f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--envs", default="1,8,64,512", help="comma-separated numbers of envs")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    rows = [measure(int(n), args.repeats, device, args.seed) for n in args.envs.split(",")]
    report = {
        "command": " ".join(["python -m benchmarks.google_robot_planner", *sys.argv[1:]]),
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {**package_versions(), "ruckig": package_versions(["ruckig"])["ruckig"]},
        "git": git_state(),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"google_robot_planner-{device.type}"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
