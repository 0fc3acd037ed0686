"""The reasoning text a trainer learns to generate for a step: one rationale, rendered.

The layout is fixed and labelled so a fine-tuned model's output can be parsed back into parts;
changing it changes what models learn, so it is versioned with the output.
"""

from __future__ import annotations

from refinevla_bench.teacher.schema import SegmentRationale

REASONING_FORMAT_VERSION = "1"


def render_reasoning(rationale: SegmentRationale) -> str:
    plan = " ".join(f"{number}. {item}" for number, item in enumerate(rationale.task_plan, 1))
    return (
        f"Observation: {rationale.observation}\n"
        f"Situation: {rationale.situation_analysis}\n"
        f"Spatial: {rationale.spatial_reasoning}\n"
        f"Plan: {plan}\n"
        f"Subtask: {rationale.subtask}\n"
        f"Next: {rationale.next_step}"
    )
