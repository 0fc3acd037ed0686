"""The order a pick-and-place goes through, and what a segment's plan should list.

A segment's plan lists what remains. What remains is known in hindsight from the spans; an
episode that ends early still had the rest of the canonical order ahead of it, so that order
extends the spans. A plan is consistent when the subtasks it names appear in that order.
"""

from __future__ import annotations

from collections.abc import Sequence

from refinevla_bench.teacher.schema import SUBTASKS, SegmentSpan, Subtask


def fold_repeats(subtasks: Sequence[Subtask]) -> list[Subtask]:
    folded: list[Subtask] = []
    for subtask in subtasks:
        if not folded or folded[-1] != subtask:
            folded.append(subtask)
    return folded


def _without_lift(subtasks: Sequence[Subtask], grounded: bool) -> list[Subtask]:
    """Without privileged state nothing tells a lift from a carry, so there is no lift."""
    return [subtask for subtask in subtasks if grounded or subtask != "lift"]


def expected_order(spans: Sequence[SegmentSpan], segment: int, grounded: bool) -> list[Subtask]:
    """The subtasks from this segment on, then the canonical ones after the last of them."""
    remaining = fold_repeats([span.subtask for span in spans[segment:]])
    tail = SUBTASKS[SUBTASKS.index(remaining[-1]) + 1 :]
    return remaining + _without_lift(tail, grounded)


def is_in_order(named: Sequence[Subtask], expected: Sequence[Subtask]) -> bool:
    """Whether `named` appears within `expected` in the same order (gaps allowed)."""
    remaining = list(expected)
    for subtask in named:
        if subtask not in remaining:
            return False
        remaining = remaining[remaining.index(subtask) + 1 :]
    return True


def planned_subtasks(spans: Sequence[SegmentSpan], segment: int, grounded: bool) -> list[Subtask]:
    """What a plan at this segment should list: the current subtask and the canonical ones
    after it, each found later in the expected order (a failed attempt is not planned)."""
    expected = expected_order(spans, segment, grounded)
    current = spans[segment].subtask
    plan: list[Subtask] = []
    position = 0
    for subtask in _without_lift(SUBTASKS[SUBTASKS.index(current) :], grounded):
        if subtask in expected[position:]:
            position = expected.index(subtask, position) + 1
            plan.append(subtask)
    return plan
