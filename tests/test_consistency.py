"""Scoring rationales against the facts: exact ones score 1.0, each kind of error is named."""

from __future__ import annotations

import asyncio

import pytest

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher.claims import EntityFinder, relation_claims
from refinevla_bench.teacher.consistency import ConsistencyScore, score_rationale
from refinevla_bench.teacher.facts import EpisodeFacts, extract_facts
from refinevla_bench.teacher.grounded import GroundedTeacher
from refinevla_bench.teacher.lexicon import object_nouns, scene_nouns
from refinevla_bench.teacher.plan_words import subtasks_named
from refinevla_bench.teacher.schema import EpisodeRationale, Subtask
from tests.teacher_episodes import Layout, pick_and_place, without_privileged_state

LAYOUTS = (
    Layout(),
    Layout(source=(0.30, -0.12, 0.02), target=(0.42, 0.10, 0.01)),
    Layout(
        hand=(0.25, 0.05, 0.15),
        source=(0.38, 0.0, 0.015),
        target=(0.28, 0.0, 0.02),
        source_size=(0.03, 0.03, 0.03),
        target_size=(0.03, 0.03, 0.03),
        source_name="green block",
        target_name="yellow block",
        instruction="stack the green block on the yellow block",
    ),
    Layout(
        source=(0.33, 0.12, 0.0),
        target=(0.36, -0.08, 0.02),
        target_size=(0.13, 0.08, 0.02),
        source_name="eggplant",
        target_name="yellow basket",
        instruction="put eggplant into yellow basket",
    ),
)


def grounded(episode: EpisodeView) -> tuple[EpisodeRationale, EpisodeFacts]:
    facts = extract_facts(episode)
    return asyncio.run(GroundedTeacher().annotate(episode, facts)).rationale, facts


def with_segment(rationale: EpisodeRationale, index: int, **changes: object) -> EpisodeRationale:
    segments = list(rationale.segments)
    segments[index] = segments[index].model_copy(update=changes)
    return rationale.model_copy(update={"segments": segments})


def check(score: ConsistencyScore, name: str) -> float:
    return score.check_scores()[name]


def test_grounded_rationales_score_one_on_many_episodes() -> None:
    for number in range(48):
        episode, _ = pick_and_place(
            number,
            LAYOUTS[number % len(LAYOUTS)],
            noise_m=0.001 * (number % 4),
            failed_first_grasp=number % 3 == 1,
            never_grasp=number % 7 == 6,
        )
        for candidate in (episode, without_privileged_state(episode)):
            score = score_rationale(*grounded(candidate))
            assert score.score == 1.0, (number, score.issues)
            assert score.issues == []


def test_object_missing_from_the_scene_is_named() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    observation = rationale.segments[1].observation.replace("carrot", "banana")
    score = score_rationale(with_segment(rationale, 1, observation=observation), facts)
    assert check(score, "objects") < 1.0
    assert score.score < 1.0
    assert any("banana" in issue and issue.startswith("objects:") for issue in score.issues)


def test_synonyms_and_plurals_of_scene_objects_are_not_deductions() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    observation = "The gripper hovers over the carrots; the dish waits beside them."
    score = score_rationale(with_segment(rationale, 0, observation=observation), facts)
    assert check(score, "objects") == 1.0


def test_flipped_direction_is_named() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    spatial = rationale.segments[0].spatial_reasoning
    flipped = spatial.replace("to the left of", "to the right of")
    assert flipped != spatial
    score = score_rationale(with_segment(rationale, 0, spatial_reasoning=flipped), facts)
    assert check(score, "relations") < 1.0
    assert score.score < 1.0
    assert any(
        "relations: segment 0" in issue and "carrot to the right of the plate" in issue
        for issue in score.issues
    )


def test_stated_direction_is_checked_against_its_own_segment() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    claim = "The gripper is above the carrot."  # true while reaching, false once lifted
    reach = score_rationale(with_segment(rationale, 0, observation=claim), facts)
    lift = score_rationale(with_segment(rationale, 2, observation=claim), facts)
    assert check(reach, "relations") == 1.0
    assert check(lift, "relations") == 1.0  # level within the dead zone: neither way
    below = "The gripper is below the carrot."
    assert (
        check(score_rationale(with_segment(rationale, 0, observation=below), facts), "relations")
        < 1.0
    )


def test_goals_are_not_read_as_positions() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    goal = "The gripper must move to the left of the carrot, toward the plate."
    score = score_rationale(with_segment(rationale, 0, observation=goal), facts)
    assert check(score, "relations") == 1.0


def test_swapped_plan_order_is_named() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    plan = rationale.segments[0].task_plan
    swapped = [plan[0], plan[3], plan[2], plan[1], *plan[4:]]
    score = score_rationale(with_segment(rationale, 0, task_plan=swapped), facts)
    assert check(score, "plan") < 1.0
    assert any("segment 0 plan goes" in issue for issue in score.issues)


def test_plan_of_subtasks_already_done_is_named() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    score = score_rationale(with_segment(rationale, 3, task_plan=["grasp the carrot"]), facts)
    assert any("segment 3 plan goes grasp" in issue for issue in score.issues)


def test_wrong_subtask_label_is_named() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    wrong: Subtask = "place"
    score = score_rationale(with_segment(rationale, 2, subtask=wrong), facts)
    assert any("segment 2 is labelled place" in issue for issue in score.issues)


def test_missing_segment_is_named() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    shortened = rationale.model_copy(update={"segments": rationale.segments[:-1]})
    score = score_rationale(shortened, facts)
    assert check(score, "plan") < 1.0
    assert any("rationale covers segments" in issue for issue in score.issues)


def test_copied_and_placeholder_text_is_named() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    copied = [
        segment.model_copy(update={"observation": "The robot is working."})
        for segment in rationale.segments
    ]
    copied[1] = copied[1].model_copy(update={"next_step": "N/A"})
    score = score_rationale(rationale.model_copy(update={"segments": copied}), facts)
    assert check(score, "text") < 1.0
    assert any("observation is the same in all" in issue for issue in score.issues)
    assert any("segment 1 next_step is empty or a placeholder" in issue for issue in score.issues)


def test_score_is_the_product_of_the_checks() -> None:
    rationale, facts = grounded(pick_and_place()[0])
    observation = "The gripper is open near the carrot, the plate and a banana."
    score = score_rationale(with_segment(rationale, 0, observation=observation), facts)
    assert check(score, "objects") == pytest.approx(2 / 3)
    assert score.score == pytest.approx(2 / 3)


def test_without_recorded_relations_directions_cannot_be_checked() -> None:
    rationale, facts = grounded(without_privileged_state(pick_and_place()[0]))
    claim = "The carrot is to the right of the plate."
    score = score_rationale(with_segment(rationale, 0, observation=claim), facts)
    assert check(score, "relations") == 1.0


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        ("The carrot is to the left of the plate.", [("carrot", "plate", "left")]),
        (
            "The gripper is above and to the right of the carrot, 5 cm away.",
            [("gripper", "carrot", "right"), ("gripper", "carrot", "above")],
        ),
        (
            "The end effector is farther from the robot than the plate; the basket is below it.",
            [("gripper", "plate", "farther")],
        ),
        (
            "The carrots sit closer to the robot than the yellow basket.",
            [("carrot", "yellow basket", "closer")],
        ),
        ("To its left lies the plate.", []),
        ("The gripper will move to the left of the carrot.", []),
    ],
)
def test_relation_claims_are_read_subject_first(
    text: str, claims: list[tuple[str, str, str]]
) -> None:
    finder = EntityFinder(("carrot", "plate", "yellow basket"))
    found = relation_claims(text, finder)
    assert sorted((claim.subject, claim.reference, claim.direction) for claim in found) == sorted(
        claims
    )


def test_shared_head_noun_names_no_object() -> None:
    finder = EntityFinder(("green block", "yellow block"))
    assert relation_claims("The block is above the yellow block.", finder) == []
    assert [
        (claim.subject, claim.reference)
        for claim in relation_claims("The green block is above the yellow block.", finder)
    ] == [("green block", "yellow block")]


def test_object_vocabulary_reads_plurals_and_synonyms() -> None:
    assert object_nouns("Two Tomatoes, three strawberries and the boxes.") == [
        "tomato",
        "strawberry",
        "box",
    ]
    assert {"towel", "cloth", "napkin"} <= scene_nouns(["towel"])
    assert "can" not in object_nouns("The gripper can reach the plate.")


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ("reach the carrot", ["reach"]),
        ("move the gripper above the carrot", ["reach"]),
        ("move to the carrot", ["reach"]),
        ("lower the gripper onto the carrot", ["reach"]),
        ("grasp and lift the carrot", ["grasp", "lift"]),
        ("pick up the carrot", ["lift"]),
        ("carry the carrot to the plate", ["move"]),
        ("move the carrot over the plate", ["move"]),
        ("lower the carrot onto the plate", ["place"]),
        ("set it down on the plate", ["place"]),
        ("open the gripper and move away", ["release"]),
        ("move closer to the carrot", ["reach"]),
        ("wait", []),
    ],
)
def test_plan_items_name_subtasks(item: str, named: list[Subtask]) -> None:
    assert subtasks_named(item, "carrot") == named
