"""Which subtasks the words of a plan step name ("grasp and lift the carrot": grasp, lift).

Motion verbs are ambiguous: "move to the carrot" is a reach, "move the carrot to the plate" a
carry. A motion of the gripper itself, or one that ends at the object to pick, is read as a
reach; any other motion as a carry, or as a placing when it goes down.
"""

from __future__ import annotations

import re

from refinevla_bench.teacher.lexicon import GRIPPER_WORDS
from refinevla_bench.teacher.plans import fold_repeats
from refinevla_bench.teacher.schema import Subtask

_CARRY_VERBS = (
    r"mov(?:e|es|ed|ing)|go(?:es|ing)?|head(?:s|ing)?|carr(?:y|ies|ied|ying)|transport\w*"
    r"|bring(?:s|ing)?|brought|position\w*|hover\w*"
)
_LOWER_VERBS = r"lower\w*|descend\w*"
_PLACE_VERBS = r"plac\w*|put\w*|set\w* (?:it )?down|deposit\w*|drop\w*"
_GRASP_VERBS = r"grasp\w*|grab\w*|grip\b|gripping|clos(?:e|es|ing)\b(?!\s+to\b)"
_RELEASE_VERBS = r"let go|move away|back away|open\w*|releas\w*|retreat\w*|withdraw\w*"
_KEYWORDS: tuple[tuple[re.Pattern[str], Subtask], ...] = (
    (re.compile(rf"\b(?:{_RELEASE_VERBS})"), "release"),
    (re.compile(r"\b(?:reach\w*|approach\w*)"), "reach"),
    (re.compile(r"\bpick\w*\s+(?:\w+\s+){0,3}?up\b"), "lift"),
    (re.compile(rf"\b(?:{_GRASP_VERBS})"), "grasp"),
    (re.compile(r"\b(?:lift\w*|rais\w*)"), "lift"),
    (re.compile(rf"\b(?:{_CARRY_VERBS})\b"), "move"),
    (re.compile(rf"\b(?:{_PLACE_VERBS}|{_LOWER_VERBS})"), "place"),
)


def _empty_hand_motion(source: str | None) -> re.Pattern[str]:
    """A motion of the gripper itself, or one that ends at the source: a reach."""
    gripper = "|".join(re.escape(word) for word in GRIPPER_WORDS)
    ends = rf"(?:the\s+)?(?:{gripper})\b"
    if source:
        destination = r"(?:to|toward|towards|onto|over|above|near|down to)"
        ends += rf"|{destination}\s+(?:the\s+)?{re.escape(source)}"
    return re.compile(rf"\b(?:{_CARRY_VERBS}|{_LOWER_VERBS})\s+(?:\w+\s+){{0,2}}?(?:{ends})")


def subtasks_named(item: str, source: str | None) -> list[Subtask]:
    """The subtasks a plan item names, in the order it names them ("grasp and lift the carrot"
    names grasp, lift). A motion of the gripper itself, or to the source, is a reach; a motion
    of anything else is a carry, or a placing when it goes down."""
    text = " ".join(item.lower().split())
    found: list[tuple[int, int, Subtask]] = []
    keywords = ((_empty_hand_motion(source.lower() if source else None), "reach"), *_KEYWORDS)
    for pattern, subtask in keywords:
        for match in pattern.finditer(text):
            found.append((match.start(), -(match.end() - match.start()), subtask))
    named: list[Subtask] = []
    covered_until = -1
    for start, negative_length, subtask in sorted(found):
        if start < covered_until:
            continue  # inside a longer phrase already read ("move away" is not a carry)
        covered_until = start - negative_length
        named.append(subtask)
    return fold_repeats(named)
