"""Object names from a language instruction, for datasets that record no scene objects.

Bridge and Fractal episodes carry only the instruction; its few common shapes ("put X on Y",
"pick up X", "open the drawer") name the objects well enough to write and check rationales.
Anything else yields no objects rather than a wrong guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ARTICLES = re.compile(r"^(?:the|a|an|some)\s+")
_RELATIVE_PLACE = re.compile(r"^(?:the\s+)?(?:left|right|front|back|top)\s+(?:side\s+)?of\s+")
_PLACE = re.compile(
    r"^(?:put|place|move|set|stack|drop|lay|slide|push|bring|transfer)\s+(?P<source>.+?)\s+"
    r"(?P<preposition>on top of|onto|on|into|inside|in|to|next to|near|beside|towards?)\s+"
    r"(?P<target>.+)$"
)
_PICK = re.compile(
    r"^(?:pick up|pick|grab|grasp|lift|take)\s+(?P<source>.+?)(?:\s+up)?"
    r"(?:\s+from\s+(?P<origin>.+))?$"
)
_ARTICULATE = re.compile(r"^(?:open|close)\s+(?P<source>.+)$")


@dataclass(frozen=True)
class ParsedInstruction:
    """What an instruction names: the object to move, where it goes, and how it relates there."""

    source: str | None
    target: str | None
    preposition: str | None  # "on", "into", ... as the instruction says it
    others: tuple[str, ...] = ()  # further objects named, e.g. where the source comes from

    @property
    def objects(self) -> tuple[str, ...]:
        named = (self.source, self.target, *self.others)
        return tuple(name for name in named if name)


def _normalise(instruction: str) -> str:
    """Lower case, no punctuation, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9\s-]", " ", instruction.lower()).split())


def _noun_phrase(text: str) -> str:
    return _ARTICLES.sub("", _RELATIVE_PLACE.sub("", text.strip())).strip()


def _split_origin(source: str) -> tuple[str, tuple[str, ...]]:
    """ "the eggplant from the sink" -> ("eggplant", ("sink",))."""
    head, separator, origin = source.partition(" from ")
    if not separator:
        return _noun_phrase(head), ()
    return _noun_phrase(head), (_noun_phrase(origin),)


def parse_instruction(instruction: str) -> ParsedInstruction:
    """The objects an instruction names, or none when its shape is not a known one."""
    text = _normalise(instruction)
    place = _PLACE.match(text)
    if place:
        source, others = _split_origin(place["source"])
        preposition = "on" if place["preposition"] == "on top of" else place["preposition"]
        return ParsedInstruction(source, _noun_phrase(place["target"]), preposition, others)
    pick = _PICK.match(text)
    if pick:
        origin = (_noun_phrase(pick["origin"]),) if pick["origin"] else ()
        return ParsedInstruction(_noun_phrase(pick["source"]), None, None, origin)
    articulate = _ARTICULATE.match(text)
    if articulate:
        return ParsedInstruction(_noun_phrase(articulate["source"]), None, None)
    return ParsedInstruction(None, None, None)
