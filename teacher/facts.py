"""Grounded facts of one episode: its segments and the spatial relations the recording proves.

The same facts feed three things: the `grounded` teacher writes its rationales from them, the
`openai` teacher sends them with the frames so the model reasons from ground truth, and the
consistency check scores an LLM's rationale against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher.instructions import parse_instruction
from refinevla_bench.teacher.relations import (
    OPPOSITE,
    Direction,
    directions_between,
    frame_definition,
)
from refinevla_bench.teacher.schema import SegmentSpan
from refinevla_bench.teacher.segments import (
    SceneSeries,
    debounce,
    gripper_closed,
    holding,
    label_gripper_only,
    label_privileged,
    spans_from_labels,
)

GRIPPER = "gripper"  # how the end effector is named in relations and rationales
DECIMALS = 3
_SCENE_KEYS = (
    "tcp_pose",
    "source_pose",
    "target_pose",
    "source_size",
    "target_size",
    "source_grasped",
)


@dataclass(frozen=True)
class Relation:
    """Where `subject` is relative to `reference`, in the robot's frame, at one step."""

    subject: str
    reference: str
    directions: tuple[Direction, ...]  # e.g. ("left", "farther", "above"); see relations.py
    distance_m: float
    offset_m: tuple[float, float, float]  # subject minus reference along x, y, z

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "reference": self.reference,
            "directions": list(self.directions),
            "distance_m": round(self.distance_m, DECIMALS),
            "offset_m": [round(value, DECIMALS) for value in self.offset_m],
        }


@dataclass(frozen=True)
class SegmentFacts:
    span: SegmentSpan
    gripper: Literal["open", "closed"]
    holding: bool | None  # None when the dataset records no grasp signal
    relations: tuple[Relation, ...]  # at the segment's first step

    def relation(self, subject: str, reference: str) -> Relation | None:
        """The recorded relation of subject to reference, either way round (flipped if needed)."""
        for relation in self.relations:
            if (relation.subject, relation.reference) == (subject, reference):
                return relation
            if (relation.reference, relation.subject) == (subject, reference):
                return _reversed(relation)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.span.segment,
            "subtask": self.span.subtask,
            "start": self.span.start,
            "end": self.span.end,
            "gripper": self.gripper,
            "holding": self.holding,
            "relations": [relation.to_dict() for relation in self.relations],
        }


@dataclass(frozen=True)
class EpisodeFacts:
    instruction: str
    objects: tuple[str, ...]  # objects known to be in the scene
    source_object: str | None
    target_object: str | None
    segments: tuple[SegmentFacts, ...]
    grounded: bool  # object poses were recorded (simulation); else segments come from the gripper
    preposition: str | None = None  # how the source ends up at the target: "on", "into", ...

    def spans(self) -> list[SegmentSpan]:
        return [segment.span for segment in self.segments]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for prompts and content hashes (stable key order, rounded numbers)."""
        return {
            "instruction": self.instruction,
            "objects": list(self.objects),
            "source_object": self.source_object,
            "target_object": self.target_object,
            "preposition": self.preposition,
            "grounded": self.grounded,
            "gripper_name": GRIPPER,
            "frame": frame_definition(),
            "segments": [segment.to_dict() for segment in self.segments],
        }


def _reversed(relation: Relation) -> Relation:
    x, y, z = relation.offset_m
    return Relation(
        subject=relation.reference,
        reference=relation.subject,
        directions=tuple(OPPOSITE[direction] for direction in relation.directions),
        distance_m=relation.distance_m,
        offset_m=(-x, -y, -z),
    )


def _relation(
    subject: str,
    reference: str,
    subject_xyz: npt.NDArray[np.float64],
    reference_xyz: npt.NDArray[np.float64],
) -> Relation:
    offset = subject_xyz - reference_xyz
    return Relation(
        subject=subject,
        reference=reference,
        directions=directions_between(subject_xyz, reference_xyz),
        distance_m=float(np.linalg.norm(offset)),
        offset_m=(float(offset[0]), float(offset[1]), float(offset[2])),
    )


def _series(episode: EpisodeView, key: str) -> npt.NDArray[np.float64]:
    values = episode.privileged(key)
    assert values is not None  # callers check every key first
    array = np.asarray(values, dtype=np.float64)
    if array.shape[0] != episode.length:
        raise ValueError(
            f"episode {episode.index}: {key} has {array.shape[0]} rows for {episode.length} steps"
        )
    return array


def _gripper_command(episode: EpisodeView) -> npt.NDArray[np.bool_]:
    command = np.asarray(episode.actions[:, -1], dtype=np.float64)
    convention = str(episode.metadata.get("gripper_convention", "absolute"))
    return debounce(gripper_closed(command, convention))


def _scene(episode: EpisodeView) -> SceneSeries | None:
    """The privileged series, or None when any of them was not recorded."""
    if any(episode.privileged(key) is None for key in _SCENE_KEYS):
        return None
    grasped = _series(episode, "source_grasped").reshape(episode.length, -1)[:, 0] > 0.5
    return SceneSeries(
        tcp=_series(episode, "tcp_pose")[:, :3],
        source=_series(episode, "source_pose")[:, :3],
        target=_series(episode, "target_pose")[:, :3],
        source_size=_series(episode, "source_size")[0],
        target_size=_series(episode, "target_size")[0],
        grasped=debounce(grasped),
        closed=_gripper_command(episode),
    )


def _grounded_segments(scene: SceneSeries, source: str, target: str) -> tuple[SegmentFacts, ...]:
    segments: list[SegmentFacts] = []
    held = holding(scene)
    for span in spans_from_labels(label_privileged(scene)):
        step = span.start
        relations = (
            _relation(GRIPPER, source, scene.tcp[step], scene.source[step]),
            _relation(source, target, scene.source[step], scene.target[step]),
            _relation(GRIPPER, target, scene.tcp[step], scene.target[step]),
        )
        segments.append(
            SegmentFacts(
                span=span,
                gripper="closed" if scene.closed[step] else "open",
                holding=bool(held[step]),
                relations=relations,
            )
        )
    return tuple(segments)


def _gripper_segments(closed: npt.NDArray[np.bool_]) -> tuple[SegmentFacts, ...]:
    return tuple(
        SegmentFacts(
            span=span,
            gripper="closed" if closed[span.start] else "open",
            holding=None,
            relations=(),
        )
        for span in spans_from_labels(label_gripper_only(closed))
    )


def extract_facts(episode: EpisodeView) -> EpisodeFacts:
    """Segments and relations of an episode, from privileged state when recorded."""
    parsed = parse_instruction(episode.instruction)
    scene = _scene(episode)
    if scene is None:
        return EpisodeFacts(
            instruction=episode.instruction,
            objects=parsed.objects,
            source_object=parsed.source,
            target_object=parsed.target,
            segments=_gripper_segments(_gripper_command(episode)),
            grounded=False,
            preposition=parsed.preposition,
        )
    source = str(episode.metadata.get("source_object") or parsed.source or "object")
    target = str(episode.metadata.get("target_object") or parsed.target or "target")
    return EpisodeFacts(
        instruction=episode.instruction,
        objects=(source, target),
        source_object=source,
        target_object=target,
        segments=_grounded_segments(scene, source, target),
        grounded=True,
        preposition=parsed.preposition or "on",
    )
