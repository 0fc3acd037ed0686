"""The offline `grounded` teacher: deterministic, free, and faithful to the facts."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher.facts import EpisodeFacts, extract_facts
from refinevla_bench.teacher.grounded import TEMPLATE_VERSION, GroundedTeacher
from refinevla_bench.teacher.plan_words import subtasks_named
from refinevla_bench.teacher.protocol import PermanentTeacherError, Teacher
from refinevla_bench.teacher.schema import EpisodeRationale, Usage
from tests.teacher_episodes import Layout, pick_and_place, without_privileged_state


def annotate(teacher: Teacher, episode: EpisodeView) -> tuple[EpisodeRationale, Usage]:
    reply = asyncio.run(teacher.annotate(episode, extract_facts(episode)))
    return reply.rationale, reply.usage


def test_identifies_itself() -> None:
    teacher: Teacher = GroundedTeacher()
    assert (teacher.name, teacher.prompt_version) == ("grounded", TEMPLATE_VERSION)
    assert teacher.model.startswith("grounded")


def test_same_input_gives_identical_output_and_key() -> None:
    episode, _ = pick_and_place(7, noise_m=0.003, failed_first_grasp=True)
    first, second = GroundedTeacher(), GroundedTeacher()
    assert annotate(first, episode)[0] == annotate(second, episode)[0]
    facts = extract_facts(episode)
    key = first.request_key(episode, facts)
    assert key == second.request_key(episode, extract_facts(episode))
    assert len(key) == 64
    assert int(key, 16) >= 0


def test_key_changes_with_the_facts_and_the_instruction() -> None:
    teacher = GroundedTeacher()
    episode, _ = pick_and_place()
    moved, _ = pick_and_place(layout=Layout(source=(0.40, 0.10, 0.02)))
    reworded = replace(episode, instruction="place the carrot onto the plate")
    keys = {
        teacher.request_key(candidate, extract_facts(candidate))
        for candidate in (episode, moved, reworded)
    }
    assert len(keys) == 3


def test_a_copy_of_an_episode_reads_the_same_whatever_its_index() -> None:
    """Phrasing follows the content, so a cached answer matches what a fresh one would be."""
    episode, _ = pick_and_place(1)
    assert (
        annotate(GroundedTeacher(), episode)[0]
        == annotate(GroundedTeacher(), replace(episode, index=99))[0]
    )


def test_phrasing_varies_between_episodes() -> None:
    teacher = GroundedTeacher()
    openings = {
        annotate(teacher, pick_and_place(index, noise_m=0.002)[0])[0]
        .segments[0]
        .observation.split()[0]
        for index in range(12)
    }
    assert len(openings) > 1


def test_costs_nothing() -> None:
    teacher = GroundedTeacher()
    episode, _ = pick_and_place()
    assert teacher.estimate_usage(episode, extract_facts(episode)) == Usage()
    assert annotate(teacher, episode)[1] == Usage()


@pytest.mark.parametrize("grounded", [True, False])
def test_one_rationale_per_span_with_its_subtask(grounded: bool) -> None:
    episode, _ = pick_and_place(2, failed_first_grasp=True)
    if not grounded:
        episode = without_privileged_state(episode)
    facts = extract_facts(episode)
    rationale, _ = annotate(GroundedTeacher(), episode)
    assert [(item.segment, item.subtask) for item in rationale.segments] == [
        (span.segment, span.subtask) for span in facts.spans()
    ]
    for item in rationale.segments:
        assert subtasks_named(item.task_plan[0], facts.source_object) == [item.subtask]


def test_spatial_reasoning_states_the_recorded_relations() -> None:
    episode, _ = pick_and_place(layout=Layout(hand=(0.20, 0.0, 0.20)))
    facts: EpisodeFacts = extract_facts(episode)
    reach = annotate(GroundedTeacher(), episode)[0].segments[0]
    text = reach.spatial_reasoning
    assert "the gripper is to the right of, closer to the robot than and above the carrot" in (
        text.lower()
    )
    assert "the carrot is to the left of and farther from the robot than the plate" in text.lower()
    relation = facts.segments[0].relation("gripper", "carrot")
    assert relation is not None
    assert f"{relation.distance_m * 100:.0f} cm" in text
    assert "15 cm farther from the robot" in reach.next_step
    assert reach.task_plan[-1] == "release the carrot and retreat"


def test_episode_without_steps_fails_for_good() -> None:
    empty = EpisodeView("synthetic", 0, "put carrot on plate", 5.0, np.zeros((0, 7), np.float32))
    with pytest.raises(PermanentTeacherError, match="no steps"):
        annotate(GroundedTeacher(), empty)
