"""How far a rationale agrees with what the recording proves, and why not fully.

Four checks, each scored as the share of what it could check that holds up:
  objects    every object the text names is in the scene (no banana beside a carrot and a plate)
  relations  every "X is left of / above / farther from the robot than Y" matches the poses
  plan       segment labels match the spans, and each plan names subtasks in the order left
  text       no empty, placeholder or copy-pasted fields
The score is their product: one check failing outright sinks the rationale, however good the
rest. A check with nothing to judge (no scene objects, no recorded relations) scores 1.0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from refinevla_bench.teacher.claims import EntityFinder, relation_claims
from refinevla_bench.teacher.facts import EpisodeFacts
from refinevla_bench.teacher.lexicon import object_nouns, scene_nouns
from refinevla_bench.teacher.plan_words import subtasks_named
from refinevla_bench.teacher.plans import expected_order, is_in_order
from refinevla_bench.teacher.relations import OPPOSITE, PHRASES, describe_directions
from refinevla_bench.teacher.schema import EpisodeRationale, SegmentRationale, Subtask

TEXT_FIELDS = ("observation", "situation_analysis", "spatial_reasoning", "next_step")
STATEMENT_FIELDS = ("observation", "spatial_reasoning")  # where current positions are stated
_PLACEHOLDER = re.compile(r"^(?:n/?a|none|null|todo|tbd|same as (?:above|before)|\W*)$")
_MIN_WORDS = 2


@dataclass(frozen=True)
class CheckResult:
    name: str
    score: float  # share of the checked items that hold up, 1.0 when nothing could be checked
    issues: tuple[str, ...]


@dataclass(frozen=True)
class ConsistencyScore:
    score: float  # product of the checks' scores
    checks: tuple[CheckResult, ...]

    @property
    def issues(self) -> list[str]:
        """Every deduction, prefixed with the check that made it."""
        return [f"{check.name}: {issue}" for check in self.checks for issue in check.issues]

    def check_scores(self) -> dict[str, float]:
        return {check.name: check.score for check in self.checks}


def _result(name: str, checked: int, issues: list[str]) -> CheckResult:
    score = 1.0 if checked == 0 else 1.0 - len(issues) / checked
    return CheckResult(name, score, tuple(issues))


def _texts(segment: SegmentRationale) -> Iterator[tuple[str, str]]:
    for field in TEXT_FIELDS:
        yield field, str(getattr(segment, field))
    for item in segment.task_plan:
        yield "task_plan", item


def check_objects(rationale: EpisodeRationale, facts: EpisodeFacts) -> CheckResult:
    """Objects the text names that are not in the scene; nothing to judge without scene objects."""
    if not facts.objects:
        return _result("objects", 0, [])
    known = scene_nouns([*facts.objects, facts.instruction])
    first_mention: dict[str, str] = {}
    for segment in rationale.segments:
        for field, text in _texts(segment):
            for noun in object_nouns(text):
                first_mention.setdefault(noun, f"segment {segment.segment} {field}")
    scene = ", ".join(facts.objects)
    issues = [
        f"{where} names a {noun}, which is not in the scene ({scene})"
        for noun, where in first_mention.items()
        if noun not in known
    ]
    return _result("objects", len(first_mention), issues)


def check_relations(rationale: EpisodeRationale, facts: EpisodeFacts) -> CheckResult:
    """Stated directions against the recorded ones at the segment's first step; a direction
    inside the dead zone is neither confirmed nor contradicted."""
    finder = EntityFinder(facts.objects)
    checked = 0
    issues: list[str] = []
    for segment in rationale.segments:
        if not 0 <= segment.segment < len(facts.segments):
            continue
        recorded_segment = facts.segments[segment.segment]
        for field in STATEMENT_FIELDS:
            for claim in relation_claims(str(getattr(segment, field)), finder):
                recorded = recorded_segment.relation(claim.subject, claim.reference)
                if recorded is None:
                    continue
                checked += 1
                if OPPOSITE[claim.direction] in recorded.directions:
                    issues.append(
                        f"segment {segment.segment} {field}: '{claim.clause}' puts the "
                        f"{claim.subject} {PHRASES[claim.direction]} the {claim.reference}; "
                        f"recorded: {describe_directions(recorded.directions)} it, "
                        f"{recorded.distance_m:.3f} m apart"
                    )
    return _result("relations", checked, issues)


def _named_in_plan(segment: SegmentRationale, source: str | None) -> list[Subtask]:
    named: list[Subtask] = []
    for item in segment.task_plan:
        for subtask in subtasks_named(item, source):
            if not named or named[-1] != subtask:
                named.append(subtask)
    return named


def check_plan(rationale: EpisodeRationale, facts: EpisodeFacts) -> CheckResult:
    """One rationale per span in order, each with the span's subtask and a plan whose subtasks
    follow the phases still to come."""
    spans = facts.spans()
    numbers = [segment.segment for segment in rationale.segments]
    issues: list[str] = []
    if numbers != list(range(len(spans))):
        issues.append(f"rationale covers segments {numbers}; the spans are 0..{len(spans) - 1}")
    checked = 1
    for segment in rationale.segments:
        if not 0 <= segment.segment < len(spans):
            continue
        span = spans[segment.segment]
        checked += 2
        if segment.subtask != span.subtask:
            issues.append(
                f"segment {segment.segment} is labelled {segment.subtask}; steps "
                f"{span.start}-{span.end - 1} are a {span.subtask}"
            )
        expected = expected_order(spans, segment.segment, facts.grounded)
        named = _named_in_plan(segment, facts.source_object)
        if not named:
            issues.append(f"segment {segment.segment} plan names no subtask: {segment.task_plan}")
        elif not is_in_order(named, expected):
            issues.append(
                f"segment {segment.segment} plan goes {' > '.join(named)}; the phases left "
                f"are {' > '.join(expected)}"
            )
    return _result("plan", checked, issues)


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


def _degenerate(text: str, min_words: int) -> bool:
    return bool(_PLACEHOLDER.match(_normalised(text))) or len(text.split()) < min_words


def check_text(rationale: EpisodeRationale) -> CheckResult:
    """Empty, placeholder or one-word fields, and fields copied unchanged into every segment."""
    issues: list[str] = []
    checked = 0
    values: dict[str, list[str]] = {field: [] for field in (*TEXT_FIELDS, "task_plan")}
    for segment in rationale.segments:
        for field in TEXT_FIELDS:
            text = str(getattr(segment, field))
            values[field].append(_normalised(text))
            checked += 1
            if _degenerate(text, _MIN_WORDS):
                issues.append(
                    f"segment {segment.segment} {field} is empty or a placeholder: {text!r}"
                )
        values["task_plan"].append(_normalised("; ".join(segment.task_plan)))
        checked += 1
        if any(_degenerate(item, 1) for item in segment.task_plan):
            issues.append(
                f"segment {segment.segment} task_plan has an empty or placeholder step: "
                f"{segment.task_plan}"
            )
    if len(rationale.segments) > 1:
        for field, texts in values.items():
            checked += 1
            if len(set(texts)) == 1:
                issues.append(f"{field} is the same in all {len(texts)} segments: {texts[0]!r}")
    return _result("text", checked, issues)


def score_rationale(rationale: EpisodeRationale, facts: EpisodeFacts) -> ConsistencyScore:
    """All four checks and their product."""
    checks = (
        check_objects(rationale, facts),
        check_relations(rationale, facts),
        check_plan(rationale, facts),
        check_text(rationale),
    )
    return ConsistencyScore(math.prod(check.score for check in checks), checks)
