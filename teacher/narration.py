"""Rationales written from facts alone: every sentence states something the recording proves.

The text never guesses. Positions come from the recorded relations, progress from the spans
before the segment, the plan from the spans after it. Where a sentence has more than one
phrasing, the variant is picked by a seed the caller derives from the content, so the same
facts always read the same way and different episodes do not all read alike.
"""

from __future__ import annotations

from refinevla_bench.teacher.facts import GRIPPER, EpisodeFacts, Relation, SegmentFacts
from refinevla_bench.teacher.plans import planned_subtasks
from refinevla_bench.teacher.relations import DEAD_ZONE_M, describe_directions
from refinevla_bench.teacher.schema import EpisodeRationale, SegmentRationale, Subtask

_HELD_BEFORE: frozenset[Subtask] = frozenset({"lift", "move", "place"})
_MOTION_PREPOSITIONS = {"on": "onto", "in": "into", "inside": "into"}


def _length(metres: float) -> str:
    centimetres = metres * 100
    if centimetres < 1:
        return "under 1 cm"
    return f"{centimetres:.0f} cm" if centimetres >= 10 else f"{centimetres:.1f} cm"


class _Names:
    """How the objects are called in sentences, with fallbacks when the facts name none."""

    def __init__(self, facts: EpisodeFacts) -> None:
        self.source = f"the {facts.source_object}" if facts.source_object else "the object"
        self.target = f"the {facts.target_object}" if facts.target_object else "its goal"
        preposition = facts.preposition or "on"
        self.destination = f"{preposition} {self.target}" if facts.target_object else "at its goal"
        motion = _MOTION_PREPOSITIONS.get(preposition, preposition)
        self.landing = f"{motion} {self.target}" if facts.target_object else "at its goal"
        shown = [f"the {name}" for name in facts.objects]
        self.scene = " and ".join(shown) if shown else ""


def _entity(name: str) -> str:
    return "the gripper" if name == GRIPPER else f"the {name}"


def _relation_sentence(relation: Relation, variant: int) -> str:
    subject, reference = _entity(relation.subject), _entity(relation.reference)
    distance = _length(relation.distance_m)
    if not relation.directions:
        within = _length(DEAD_ZONE_M)
        return (
            f"{subject.capitalize()} and {reference} are {distance} apart, within {within} of "
            "each other along every axis."
        )
    where = describe_directions(relation.directions)
    if variant % 2:
        return f"At {distance}, {subject} is {where} {reference}."
    return f"{subject.capitalize()} is {where} {reference}, {distance} away."


def _motion(offset: tuple[float, float, float], horizontal_only: bool) -> str:
    """A displacement in words: "8.0 cm left, 3.0 cm closer to the robot and 10 cm down"."""
    x, y, z = offset
    parts: list[str] = []
    if abs(y) > DEAD_ZONE_M:
        parts.append(f"{_length(abs(y))} {'left' if y > 0 else 'right'}")
    if abs(x) > DEAD_ZONE_M:
        side = "farther from the robot" if x > 0 else "closer to the robot"
        parts.append(f"{_length(abs(x))} {side}")
    if abs(z) > DEAD_ZONE_M and not horizontal_only:
        parts.append(f"{_length(abs(z))} {'up' if z > 0 else 'down'}")
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    return parts[0] if parts else ""


def _observation(facts: EpisodeFacts, segment: SegmentFacts, names: _Names, variant: int) -> str:
    source_target = segment.relation(facts.source_object or "", facts.target_object or "")
    gripper_source = segment.relation(GRIPPER, facts.source_object or "")
    if source_target is None or gripper_source is None:
        shown = f"; {names.scene} are in view" if names.scene else ""
        return f"The gripper is {segment.gripper}{shown}."
    apart = _length(source_target.distance_m)
    if segment.holding:
        return (
            f"The gripper is closed around {names.source}, which is {apart} from {names.target}."
            if variant % 2 == 0
            else f"{names.source.capitalize()} hangs in the closed gripper, {apart} from "
            f"{names.target}."
        )
    reach = _length(gripper_source.distance_m)
    if segment.span.subtask == "grasp":
        return (
            f"The gripper is {reach} from {names.source} with its fingers closing; "
            f"{names.target} is {apart} away from {names.source}."
        )
    empty = "closed on nothing" if segment.gripper == "closed" else "open and empty"
    if variant % 2 == 0:
        return (
            f"The gripper is {empty}, {reach} from {names.source}; {names.target} is {apart} "
            f"from {names.source}."
        )
    return (
        f"In view: the gripper, {empty}; {names.source} {reach} from it; {names.target} "
        f"{apart} from {names.source}."
    )


# what has been achieved and what matters now, by subtask; variants read the same facts
_SITUATIONS: dict[Subtask, tuple[str, ...]] = {
    "reach": (
        "Nothing is held yet: to {instruction}, the gripper first has to get to {source}.",
        "The task is to {instruction}; nothing is held yet, so the first stop is {source}.",
    ),
    "grasp": ("The gripper is at {source}; closing on it secures it for the rest of the task.",),
    "lift": ("{Source} is held; raising it clear of the table comes before carrying it.",),
    "move": (
        "{Source} is held off the table; it still has to reach {target} and be set down.",
        "With {source} held, what remains is the way to {target} and setting it down.",
    ),
    "place": ("{Source} has arrived over {target}; it has to come down {landing} and be let go.",),
    "release": ("{Source} has been let go; the gripper only has to open fully and clear away.",),
}
# without poses only the gripper's closing is known, not that the object rose or arrived
_GRIPPER_ONLY_SITUATIONS: dict[Subtask, str] = {
    "move": "The gripper has closed on {source}; what remains is the way to {target} and setting "
    "it down.",
    "place": "The gripper is still closed on {source}; it has to come down {landing} and be let "
    "go.",
}
_RETRIES: dict[str, str] = {
    "slipped": "{Source} got away from the gripper, so it has to be picked up again.",
    "missed": "The last grasp did not hold {source}; the gripper has to go back to it.",
    "regrasp": "The gripper is back at {source}; closing on it again should hold it this time.",
}


def _situation(facts: EpisodeFacts, index: int, names: _Names, variant: int) -> str:
    subtask = facts.segments[index].span.subtask
    before = {segment.span.subtask for segment in facts.segments[:index]}
    if subtask == "reach" and before & _HELD_BEFORE:
        template = _RETRIES["slipped"]
    elif subtask == "reach" and "grasp" in before:
        template = _RETRIES["missed"]
    elif subtask == "grasp" and "grasp" in before:
        template = _RETRIES["regrasp"]
    elif not facts.grounded and subtask in _GRIPPER_ONLY_SITUATIONS:
        template = _GRIPPER_ONLY_SITUATIONS[subtask]
    else:
        variants = _SITUATIONS[subtask]
        template = variants[variant % len(variants)]
    return template.format(
        Source=names.source.capitalize(),
        source=names.source,
        target=names.target,
        landing=names.landing,
        instruction=facts.instruction.strip().rstrip("."),
    )


def _spatial(segment: SegmentFacts, variant: int) -> str:
    if not segment.relations:
        return (
            f"No object positions were recorded, so the gripper channel tells the story: it is "
            f"{segment.gripper} for steps {segment.span.start} to {segment.span.end - 1} of this "
            f"{segment.span.subtask}."
        )
    holding = bool(segment.holding)
    shown = [
        relation
        for relation in segment.relations
        if not (holding and GRIPPER in (relation.subject, relation.reference))
    ]
    return " ".join(_relation_sentence(relation, variant + n) for n, relation in enumerate(shown))


def _plan(facts: EpisodeFacts, index: int, names: _Names) -> list[str]:
    phrases: dict[Subtask, str] = {
        "reach": f"reach {names.source}",
        "grasp": f"grasp {names.source}",
        "lift": f"lift {names.source}",
        "move": f"carry {names.source} to {names.target}",
        "place": f"place {names.source} {names.destination}",
        "release": f"release {names.source} and retreat",
    }
    return [phrases[subtask] for subtask in planned_subtasks(facts.spans(), index, facts.grounded)]


def _next_step(facts: EpisodeFacts, segment: SegmentFacts, names: _Names) -> str:
    subtask = segment.span.subtask
    source, target = names.source, names.target
    if subtask == "reach":
        relation = segment.relation(facts.source_object or "", GRIPPER)
        motion = _motion(relation.offset_m, horizontal_only=False) if relation else ""
        opening = (
            "Open the gripper and move it"
            if segment.gripper == "closed"
            else "Move the open gripper"
        )
        return f"{opening} {motion + ' ' if motion else ''}to {source}."
    if subtask == "grasp":
        return f"Close the gripper on {source}."
    if subtask == "lift":
        return f"Raise {source} straight up, clear of the table."
    if subtask == "move":
        relation = segment.relation(facts.target_object or "", facts.source_object or "")
        motion = _motion(relation.offset_m, horizontal_only=True) if relation else ""
        return f"Carry {source} {motion + ' ' if motion else ''}until it is over {target}."
    if subtask == "place":
        return f"Lower {source} {names.landing} and open the gripper."
    return f"Open the gripper fully and raise it away from {source}."


def write_rationale(facts: EpisodeFacts, seed: int) -> EpisodeRationale:
    """One rationale per segment of the facts; `seed` picks among equivalent phrasings."""
    names = _Names(facts)
    segments = []
    for index, segment in enumerate(facts.segments):
        variant = seed + index
        segments.append(
            SegmentRationale(
                segment=segment.span.segment,
                subtask=segment.span.subtask,
                observation=_observation(facts, segment, names, variant),
                situation_analysis=_situation(facts, index, names, variant),
                spatial_reasoning=_spatial(segment, variant),
                task_plan=_plan(facts, index, names),
                next_step=_next_step(facts, segment, names),
            )
        )
    return EpisodeRationale(segments=segments)
