"""Hand-built episodes and facts for the annotation engine's tests and benchmark.

Frames are synthetic but distinct per episode and step, so frame bytes (and thus request keys)
differ between episodes exactly as they would for real recordings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.datasets.episode import IMAGE_PREFIX, EpisodeView
from refinevla_bench.teacher.facts import EpisodeFacts, Relation, SegmentFacts
from refinevla_bench.teacher.openai_teacher import OpenAITeacher, OpenAITeacherSettings
from refinevla_bench.teacher.schema import SUBTASKS, SegmentSpan

CAMERA = IMAGE_PREFIX + "image"


def synthetic_frames(
    index: int, steps: Sequence[int], height: int, width: int
) -> npt.NDArray[np.uint8]:
    rows = np.arange(height, dtype=np.int64)[:, None]
    columns = np.arange(width, dtype=np.int64)[None, :]
    frames = np.empty((len(steps), height, width, 3), dtype=np.uint8)
    for slot, step in enumerate(steps):
        frames[slot, ..., 0] = (rows * 3 + step * 11 + index * 29) % 256
        frames[slot, ..., 1] = (columns * 2 + step * 5) % 256
        frames[slot, ..., 2] = (rows + columns + index * 7) % 256
    return frames


def episode_with_frames(
    index: int, length: int = 24, height: int = 48, width: int = 64, dataset: str = "synthetic"
) -> EpisodeView:
    def load_frames(camera: str, steps: Sequence[int]) -> npt.NDArray[np.uint8]:
        assert camera == CAMERA
        return synthetic_frames(index, steps, height, width)

    return EpisodeView(
        dataset=dataset,
        index=index,
        instruction="put carrot on plate",
        fps=5.0,
        actions=np.zeros((length, 7), dtype=np.float32),
        cameras=(CAMERA,),
        load_frames=load_frames,
    )


def facts_for(episode: EpisodeView, segments: int = 4) -> EpisodeFacts:
    """Equal spans over the episode, subtasks in pick-and-place order."""
    bounds = np.linspace(0, episode.length, segments + 1).round().astype(int)
    facts = []
    for number in range(segments):
        span = SegmentSpan(
            segment=number,
            subtask=SUBTASKS[number % len(SUBTASKS)],
            start=int(bounds[number]),
            end=int(bounds[number + 1]),
        )
        relation = Relation(
            subject="gripper",
            reference="carrot",
            directions=("above",),
            distance_m=0.05 + 0.01 * number,
            offset_m=(0.0, 0.0, 0.05 + 0.01 * number),
        )
        facts.append(SegmentFacts(span, "open", False, (relation,)))
    return EpisodeFacts(
        instruction=episode.instruction,
        objects=("carrot", "plate"),
        source_object="carrot",
        target_object="plate",
        segments=tuple(facts),
        grounded=True,
        preposition="on",
    )


def annotation_inputs(
    count: int, length: int = 24, height: int = 48, width: int = 64
) -> list[tuple[EpisodeView, EpisodeFacts]]:
    episodes = [episode_with_frames(index, length, height, width) for index in range(count)]
    return [(episode, facts_for(episode)) for episode in episodes]


TEST_KEY_ENV = "REFINEVLA_TEST_OPENAI_KEY"
TEST_KEY = "sk-test-Zq8v1c9X4pA7mN2b"  # what must never reach a file


def loopback_teacher(base_url: str, **settings: Any) -> OpenAITeacher:
    """An openai teacher for the loopback server; set TEST_KEY_ENV before calling."""
    options: dict[str, Any] = {"model": "test-model", "base_url": base_url, "timeout_s": 5.0}
    options.update(settings)
    return OpenAITeacher(OpenAITeacherSettings(api_key_env=TEST_KEY_ENV, **options))
