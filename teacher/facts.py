"""Grounded facts of one episode: its segments and the spatial relations the recording proves.

The same facts feed three things: the `grounded` teacher writes its rationales from them, the
`openai` teacher sends them with the frames so the model reasons from ground truth, and the
consistency check scores an LLM's rationale against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher.schema import SegmentSpan


@dataclass(frozen=True)
class Relation:
    """Where `subject` is relative to `reference`, in the robot's frame, at one step."""

    subject: str
    reference: str
    directions: tuple[str, ...]  # e.g. ("left", "in front of", "above")
    distance_m: float


@dataclass(frozen=True)
class SegmentFacts:
    span: SegmentSpan
    gripper: Literal["open", "closed"]
    holding: bool | None  # None when the dataset records no grasp signal
    relations: tuple[Relation, ...]  # at the segment's first step


@dataclass(frozen=True)
class EpisodeFacts:
    instruction: str
    objects: tuple[str, ...]  # objects known to be in the scene
    source_object: str | None
    target_object: str | None
    segments: tuple[SegmentFacts, ...]
    grounded: bool  # object poses were recorded (simulation); else segments come from the gripper

    def spans(self) -> list[SegmentSpan]:
        return [segment.span for segment in self.segments]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for prompts and content hashes (stable key order, rounded numbers)."""
        raise NotImplementedError


def extract_facts(episode: EpisodeView) -> EpisodeFacts:
    """Segments and relations of an episode, from privileged state when recorded."""
    raise NotImplementedError
