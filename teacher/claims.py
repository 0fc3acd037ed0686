"""Spatial claims read back out of a rationale: "<subject> is <direction> <reference>".

Only statements of where things are now count. A clause that speaks of a goal or a motion
("the gripper must move to the left of the carrot") says where something should go, not where
it is, so it is not read. The subject is the first scene entity named before a direction phrase,
the reference the first other entity after it; clauses shaped otherwise ("to its left lies the
plate") yield nothing rather than a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from refinevla_bench.teacher.facts import GRIPPER
from refinevla_bench.teacher.lexicon import GRIPPER_WORDS, singular, synonyms
from refinevla_bench.teacher.relations import Direction

_ROBOT = r"the robot(?:'s)?(?: base)?(?: than)?"
_DIRECTION_PATTERNS: tuple[tuple[Direction, re.Pattern[str]], ...] = (
    ("left", re.compile(r"\b(?:(?:to|on) the )?left (?:side )?of\b")),
    ("right", re.compile(r"\b(?:(?:to|on) the )?right (?:side )?of\b")),
    ("farther", re.compile(rf"\b(?:farther|further) (?:away )?from {_ROBOT}")),
    ("closer", re.compile(rf"\b(?:closer|nearer) to {_ROBOT}")),
    ("above", re.compile(r"\b(?:above|higher than|on top of)\b")),
    ("below", re.compile(r"\b(?:below|beneath|underneath|under|lower than)\b")),
)

# a clause with one of these speaks of a goal or a motion, not of where things are
_NOT_A_STATEMENT = re.compile(
    r"\b(?:must|needs?|should|has to|have to|will|would|could|can|toward|towards|until|next|then"
    r"|mov(?:e|es|ing)|go(?:es|ing)?|bring(?:s|ing)?|carr(?:y|ies|ying)"
    r"|lower(?:s|ing)?(?!\s+than)|lift(?:s|ing)?|rais(?:e|es|ing)|reach(?:es|ing)?|plac(?:e|es|ing)"
    r"|put(?:s|ting)?)\b"
)
# sentence ends (not decimal points) and joints between independent clauses
_CLAUSE_BREAK = re.compile(r"(?<!\d)[.;:!?](?!\d)|\n|,\s*(?:and|but|while|whereas)\s|\bwhile\b")


@dataclass(frozen=True)
class Claim:
    """One stated relation: `subject` is `direction` of `reference`."""

    subject: str
    reference: str
    direction: Direction
    clause: str


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    entity: str


class EntityFinder:
    """Finds the gripper and the scene's objects in text, by full name or an unambiguous word."""

    def __init__(self, objects: Sequence[str]) -> None:
        names: dict[str, str] = {word: GRIPPER for word in GRIPPER_WORDS}
        heads: dict[str, set[str]] = {}
        for name in objects:
            names[name.lower()] = name
            for word in synonyms(singular(name.lower().split()[-1])):
                heads.setdefault(word, set()).add(name)
        for word, owners in heads.items():
            if len(owners) == 1 and word not in names:
                names[word] = next(iter(owners))
        alternatives = sorted(names, key=len, reverse=True)
        self._names = names
        self._pattern = re.compile(
            r"\b(" + "|".join(re.escape(name) for name in alternatives) + r")(?:e?s)?\b"
        )

    def mentions(self, text: str) -> list[_Mention]:
        return [
            _Mention(match.start(), match.end(), self._names[match.group(1)])
            for match in self._pattern.finditer(text)
        ]


def _clause_claims(clause: str, finder: EntityFinder) -> list[Claim]:
    mentions = finder.mentions(clause)
    if not mentions or _NOT_A_STATEMENT.search(clause):
        return []
    claims: list[Claim] = []
    for direction, pattern in _DIRECTION_PATTERNS:
        for match in pattern.finditer(clause):
            before = [mention for mention in mentions if mention.end <= match.start()]
            if not before:
                continue
            subject = before[0].entity
            after = [
                mention
                for mention in mentions
                if mention.start >= match.end() and mention.entity != subject
            ]
            if after:
                claims.append(Claim(subject, after[0].entity, direction, clause.strip()))
    return claims


def relation_claims(text: str, finder: EntityFinder) -> list[Claim]:
    """Every "<subject> is <direction> <reference>" statement in the text, in clause order."""
    claims: list[Claim] = []
    for clause in _CLAUSE_BREAK.split(text.lower()):
        claims.extend(_clause_claims(clause, finder))
    return claims
