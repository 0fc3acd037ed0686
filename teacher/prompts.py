"""The prompt an LLM teacher is asked with, versioned because the text shapes every rationale.

Changing any template changes what models learn from the annotations, so it must come with a
new PROMPT_VERSION: the version is part of every request key (old answers are not reused for
a new prompt) and the full template text is stored beside the output.

The segments to explain are also written as one machine-readable JSON block between
REQUEST_OPEN and REQUEST_CLOSE, so any server or log reader can tell what was asked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from string import Template
from typing import Any

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher.facts import EpisodeFacts
from refinevla_bench.teacher.schema import EpisodeRationale, SegmentSpan

PROMPT_VERSION = "v1"
REQUEST_OPEN = "<request>"
REQUEST_CLOSE = "</request>"

SYSTEM_TEMPLATE = Template(
    """\
You explain robot manipulation trajectories. A robot arm carried out a language instruction; \
its trajectory is cut into segments, each with one subtask (reach, grasp, lift, move, place, \
release). For every segment, write the reasoning the robot should have at the first step of \
that segment, as if it were thinking before it acts:
- observation: what the camera shows at that moment;
- situation_analysis: how far the task has come and what matters now;
- spatial_reasoning: where the gripper and the objects are relative to each other, using the \
directions and distances given in the facts;
- task_plan: the subtasks still to do, in order, starting with the current one;
- next_step: the immediate motion of the arm or the gripper.
The facts were measured from the recording and are correct: where an image seems to disagree, \
trust the facts. Call objects by the names the facts use. Keep every text field to one or two \
sentences. Answer with a single JSON object matching the schema in the request, with one entry \
per segment in the order given, and nothing else."""
)

USER_TEMPLATE = Template(
    """\
Instruction: $instruction
Dataset $dataset, episode $episode_index: $length steps at $fps frames per second.

Facts measured from the recording (JSON):
$facts

The segments to explain (JSON between the markers):
$request_open
$request
$request_close

JSON schema of the answer:
$schema

Camera frames follow, each captioned with its step and segment."""
)

FRAME_CAPTION_TEMPLATE = Template("Step $step: the $position of segment $segment ($subtask).")

REPAIR_TEMPLATE = Template(
    """\
Your answer could not be used: $reason
Reply again with only the corrected JSON object: one entry per segment of the request, in the \
same order, with the same segment numbers and subtasks, matching the schema."""
)


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def prompt_template_text() -> str:
    """Every template of this version, for the copy stored with the output."""
    parts = {
        "system": SYSTEM_TEMPLATE,
        "user": USER_TEMPLATE,
        "frame caption": FRAME_CAPTION_TEMPLATE,
        "repair": REPAIR_TEMPLATE,
    }
    sections = [
        f"### {name} ({PROMPT_VERSION})\n{template.template}" for name, template in parts.items()
    ]
    return "\n\n".join(sections) + "\n"


def system_prompt() -> str:
    return SYSTEM_TEMPLATE.substitute()


def answer_schema() -> dict[str, Any]:
    return EpisodeRationale.model_json_schema()


@cache
def _answer_schema_json() -> str:
    """Built once: generating the schema costs more than the rest of a prompt."""
    return _compact_json(answer_schema())


def request_block(episode_index: int, spans: Sequence[SegmentSpan]) -> str:
    return _compact_json(
        {"episode": episode_index, "segments": [span.model_dump(mode="json") for span in spans]}
    )


def user_prompt(episode: EpisodeView, facts: EpisodeFacts) -> str:
    return USER_TEMPLATE.substitute(
        instruction=facts.instruction,
        dataset=episode.dataset,
        episode_index=episode.index,
        length=episode.length,
        fps=f"{episode.fps:g}",
        facts=_compact_json(facts.to_dict()),
        request_open=REQUEST_OPEN,
        request=request_block(episode.index, facts.spans()),
        request_close=REQUEST_CLOSE,
        schema=_answer_schema_json(),
    )


def frame_caption(step: int, position: str, span: SegmentSpan) -> str:
    return FRAME_CAPTION_TEMPLATE.substitute(
        step=step, position=position, segment=span.segment, subtask=span.subtask
    )


def repair_prompt(reason: str) -> str:
    return REPAIR_TEMPLATE.substitute(reason=reason)


# Keywords strict structured-output endpoints reject; validation still enforces them after.
_UNSUPPORTED_IN_STRICT = frozenset({"default", "minLength", "maxLength"})


def strict_answer_schema() -> dict[str, Any]:
    """The answer schema in the subset strict JSON-schema mode accepts: every property
    required, no extra properties, constants as one-value enums."""
    return _strict_object(answer_schema())


def _strict_object(node: dict[str, Any]) -> dict[str, Any]:
    strict = {
        key: _strict_value(value)
        for key, value in node.items()
        if key not in _UNSUPPORTED_IN_STRICT
    }
    if "const" in strict:
        strict["enum"] = [strict.pop("const")]
    if isinstance(strict.get("properties"), dict):
        strict["required"] = sorted(strict["properties"])
        strict["additionalProperties"] = False
    return strict


def _strict_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _strict_object(value)
    if isinstance(value, list):
        return [_strict_value(item) for item in value]
    return value
