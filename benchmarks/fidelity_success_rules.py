"""How often ManiSkill3's "on target" rule disagrees with upstream SimplerEnv's (carrot, stack).

Both rules start from the same geometric test (source xy within the target's half diagonal
+ 3 mm, 0 < dz - half heights <= 2 cm). ManiSkill3 then asks for a source-target contact
force above 0.05 N; upstream asks that the source touch nothing but the robot and the target.
This script plays a policy through the harness and scores the last step of every episode
both ways, then writes the counts and every disagreement.

    python benchmarks/fidelity_success_rules.py --policy scripted
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.backends.maniskill import (
    ManiSkillBackend,
    TaskEnvironment,
    resolve_device,
)
from refinevla_bench.harness.paths import assets_root
from refinevla_bench.harness.records import EpisodeRecord
from refinevla_bench.harness.runner import run_task
from refinevla_bench.harness.suites import get_suite
from refinevla_bench.policies.protocol import EpisodeKey, ObservationBatch, wants_privileged_state
from refinevla_bench.policies.registry import create_policy

MANISKILL_MIN_FORCE = 0.05  # N, ManiSkill3's threshold for "source rests on target"
UPSTREAM_MAX_FORCE = 1e-6  # N, upstream counts any non-zero contact with another object


def _norm(value: Any) -> float:
    return float(np.linalg.norm(value.cpu().numpy().reshape(-1, 3), axis=1).max())


def score_last_step(env: TaskEnvironment) -> dict[str, Any]:
    """Both rules on the twin's current state (batch row 0)."""
    twin: Any = env._env.unwrapped  # the measurement needs the simulator's own objects
    source = twin.objs[twin.source_obj_name]
    target = twin.objs[twin.target_obj_name]
    offset = (source.pose.p - target.pose.p)[0].cpu().numpy()
    target_half = np.abs(twin.episode_target_obj_bbox_world.cpu().numpy().reshape(-1)) / 2
    source_half = np.abs(twin.episode_source_obj_bbox_world.cpu().numpy().reshape(-1)) / 2
    xy_ok = np.linalg.norm(offset[:2]) <= np.linalg.norm(target_half[:2]) + 0.003
    gap = offset[2] - target_half[2] - source_half[2]
    geometric = bool(xy_ok and offset[2] > 0 and gap <= 0.02)
    on_target_force = _norm(twin.scene.get_pairwise_contact_forces(source, target))
    other_forces = {
        name: _norm(twin.scene.get_pairwise_contact_forces(source, actor))
        for name, actor in twin.scene.actors.items()
        if actor is not source and actor is not target
    }
    touches_other = any(force > UPSTREAM_MAX_FORCE for force in other_forces.values())
    return {
        "geometric": geometric,
        "maniskill3": geometric and on_target_force > MANISKILL_MIN_FORCE,
        "upstream": geometric and not touches_other,
        "target_force": round(on_target_force, 4),
        "other_forces": {name: round(force, 4) for name, force in other_forces.items()},
    }


class LastStepScorer:
    """Runner observer that scores the environment once an episode's last step is done."""

    def __init__(self, env: TaskEnvironment) -> None:
        self.env = env
        self.steps = 0
        self.scores: list[dict[str, Any]] = []

    def observed(self, observation: ObservationBatch) -> None:
        del observation

    def actions(self, episodes: Sequence[EpisodeKey], actions: npt.NDArray[np.float64]) -> None:
        del episodes, actions

    def step_done(self, active: int) -> None:
        self.steps += 1
        if self.steps == self.env.task.max_steps:
            self.scores.append(score_last_step(self.env))

    def episode_done(self, record: EpisodeRecord) -> None:
        self.scores[-1].update(episode_id=record.episode_id, harness_success=record.success)
        self.steps = 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--policy", default="scripted")
    parser.add_argument("--tasks", default="carrot_on_plate,stack_block")
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    suite = get_suite("widowx")
    backend = ManiSkillBackend(suite, assets_root(), resolve_device("cpu"))
    policy = create_policy(args.policy)
    report: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/fidelity_success_rules.py", *sys.argv[1:]]),
        "policy": args.policy,
        "tasks": {},
    }
    for task in suite.select_tasks(args.tasks.split(",")):
        with backend.open_task(task, privileged=wants_privileged_state(policy)) as env:
            scorer = LastStepScorer(env)
            ids = task.episode_ids[: args.episodes]
            for _ in run_task(env, suite, policy, ids, seed=0, observer=scorer):
                pass
        scores = scorer.scores
        report["tasks"][task.name] = {
            "episodes": len(scores),
            "maniskill3_success": sum(s["maniskill3"] for s in scores),
            "upstream_success": sum(s["upstream"] for s in scores),
            "geometric_only": sum(s["geometric"] for s in scores),
            "disagreements": [s for s in scores if s["maniskill3"] != s["upstream"]],
        }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"fidelity_success_rules-{args.policy}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for name, counts in report["tasks"].items():
        print(
            f"{name}: ManiSkill3 rule {counts['maniskill3_success']}/{counts['episodes']}, "
            f"upstream rule {counts['upstream_success']}/{counts['episodes']}, "
            f"{len(counts['disagreements'])} disagreement(s)"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
