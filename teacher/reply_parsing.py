"""Turning a model's text into a rationale, or a reason it is unusable.

A reply must be valid JSON, match the schema, and explain exactly the segments asked for:
a rationale with a missing, extra or relabelled segment would attach reasoning to the wrong
steps. The reason is phrased for the model, because it goes back to it in the repair prompt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import ValidationError

from refinevla_bench.teacher.schema import EpisodeRationale, SegmentSpan

MAX_LISTED_ERRORS = 5
_FENCE = "```"


def parse_rationale(text: str, spans: Sequence[SegmentSpan]) -> EpisodeRationale:
    """The rationale in `text`; ValueError with the reason when there is none."""
    try:
        payload = json.loads(_without_code_fence(text))
    except json.JSONDecodeError as error:
        raise ValueError(f"the reply is not valid JSON ({error})") from error
    try:
        rationale = EpisodeRationale.model_validate(payload)
    except ValidationError as error:
        raise ValueError(f"the reply does not match the schema: {_summary(error)}") from error
    asked = [(span.segment, span.subtask) for span in spans]
    answered = [(segment.segment, segment.subtask) for segment in rationale.segments]
    if answered != asked:
        raise ValueError(
            f"the reply explains segments {answered} but the request asked for {asked}"
        )
    return rationale


def _without_code_fence(text: str) -> str:
    """Local models often wrap JSON in a markdown fence despite being told not to."""
    stripped = text.strip()
    if not stripped.startswith(_FENCE):
        return stripped
    body = stripped.split("\n", 1)[1] if "\n" in stripped else ""
    return body.removesuffix(_FENCE).strip()


def _summary(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in problem['loc']) or 'answer'}: {problem['msg']}"
        for problem in error.errors()[:MAX_LISTED_ERRORS]
    ]
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
