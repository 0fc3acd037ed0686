"""Synthetic but physically plausible pick-and-place recordings for the teacher's tests.

A hand moves at most 3 cm a step (the scripted expert's limit) through the expert's phases:
above the source, down, close, up, over the target, down, open, up, hold. The source follows
the hand while the recording says it is grasped and rests otherwise. Every step also carries
the phase that produced it, so tests can compare segment labels with the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.datasets.episode import PRIVILEGED_PREFIX, STATE_KEY, EpisodeView
from refinevla_bench.teacher.schema import Subtask

FloatArray = npt.NDArray[np.float64]

STEP_M = 0.03
HOVER_M = 0.06
GRIPPER_STEPS = 3
DOWN_QUATERNION = (0.0, 0.7071068, 0.0, 0.7071068)


@dataclass(frozen=True)
class Layout:
    """Where things start, in the robot-base frame (metres)."""

    hand: tuple[float, float, float] = (0.20, 0.0, 0.20)
    source: tuple[float, float, float] = (0.35, 0.08, 0.02)
    target: tuple[float, float, float] = (0.30, -0.10, 0.01)
    source_size: tuple[float, float, float] = (0.10, 0.03, 0.03)
    target_size: tuple[float, float, float] = (0.16, 0.16, 0.02)
    source_name: str = "carrot"
    target_name: str = "plate"
    instruction: str = "put carrot on plate"


@dataclass
class _Recorder:
    """Accumulates one step at a time while the scripted motion runs."""

    hand: FloatArray
    source: FloatArray
    target: FloatArray
    rng: np.random.Generator
    noise_m: float
    hands: list[FloatArray] = field(default_factory=list)
    sources: list[FloatArray] = field(default_factory=list)
    grasps: list[float] = field(default_factory=list)
    grippers: list[float] = field(default_factory=list)
    deltas: list[FloatArray] = field(default_factory=list)
    truth: list[Subtask] = field(default_factory=list)

    def record(self, phase: Subtask, goal: FloatArray, closed: bool, grasped: bool) -> None:
        delta = goal - self.hand
        norm = float(np.linalg.norm(delta))
        if norm > STEP_M:
            delta = delta * (STEP_M / norm)
        jitter = self.rng.normal(0.0, self.noise_m, size=(2, 3))
        self.hands.append(self.hand + jitter[0])
        self.sources.append(self.source + jitter[1])
        self.grasps.append(1.0 if grasped else 0.0)
        self.grippers.append(-1.0 if closed else 1.0)
        self.deltas.append(delta)
        self.truth.append(phase)
        self.hand = self.hand + delta
        if grasped:
            self.source = self.source + delta

    def move(self, phase: Subtask, goal: FloatArray, closed: bool, grasped: bool) -> None:
        """Steps towards the goal until the hand is there."""
        while float(np.linalg.norm(goal - self.hand)) > 1e-9:
            self.record(phase, goal, closed, grasped)

    def wait(self, phase: Subtask, steps: int, closed: bool, grasped_after: int | None) -> None:
        """Steps in place; the grasp flag turns on (or stays off) after `grasped_after` steps."""
        for step in range(steps):
            grasped = grasped_after is not None and step >= grasped_after
            self.record(phase, self.hand, closed, grasped)


def _grasp_attempt(recorder: _Recorder, holds: bool) -> None:
    above = recorder.source + np.array([0.0, 0.0, HOVER_M])
    recorder.move("reach", above, closed=False, grasped=False)
    recorder.move("reach", recorder.source.copy(), closed=False, grasped=False)
    recorder.wait("grasp", GRIPPER_STEPS, closed=True, grasped_after=1 if holds else None)


def pick_and_place(
    index: int = 0,
    layout: Layout | None = None,
    *,
    failed_first_grasp: bool = False,
    never_grasp: bool = False,
    noise_m: float = 0.0,
    length: int = 60,
) -> tuple[EpisodeView, list[Subtask]]:
    """One recorded episode and the phase of every step."""
    layout = layout or Layout()
    recorder = _Recorder(
        hand=np.array(layout.hand),
        source=np.array(layout.source),
        target=np.array(layout.target),
        rng=np.random.default_rng(index),
        noise_m=noise_m,
    )
    up = np.array([0.0, 0.0, HOVER_M])
    if failed_first_grasp or never_grasp:
        _grasp_attempt(recorder, holds=False)
        recorder.move("grasp", recorder.hand + up, closed=True, grasped=False)
    if never_grasp:
        recorder.move("reach", recorder.source + up, closed=False, grasped=False)
    else:
        _grasp_attempt(recorder, holds=True)
        recorder.move("lift", recorder.hand + up, closed=True, grasped=True)
        carry = np.array([layout.target[0], layout.target[1], recorder.hand[2]])
        recorder.move("move", carry, closed=True, grasped=True)
        recorder.move("place", recorder.hand - np.array([0.0, 0.0, 0.05]), True, True)
        recorder.wait("place", 1, closed=False, grasped_after=0)
        recorder.wait("release", GRIPPER_STEPS - 1, closed=False, grasped_after=None)
        recorder.move("release", recorder.hand + up, closed=False, grasped=False)
    while len(recorder.truth) < length:
        recorder.wait(recorder.truth[-1], 1, closed=recorder.grippers[-1] < 0, grasped_after=None)
    return _episode(index, layout, recorder, length), recorder.truth[:length]


def _episode(index: int, layout: Layout, recorder: _Recorder, length: int) -> EpisodeView:
    steps = length
    quaternion = np.tile(np.array(DOWN_QUATERNION), (steps, 1))
    hands = np.array(recorder.hands[:steps])
    sources = np.array(recorder.sources[:steps])
    identity = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (steps, 1))
    grippers = np.array(recorder.grippers[:steps])
    actions = np.zeros((steps, 7), dtype=np.float32)
    actions[:, :3] = np.array(recorder.deltas[:steps])
    actions[:, 6] = grippers
    state = {
        PRIVILEGED_PREFIX + "tcp_pose": np.hstack([hands, quaternion]),
        PRIVILEGED_PREFIX + "source_pose": np.hstack([sources, identity]),
        PRIVILEGED_PREFIX + "target_pose": np.hstack(
            [np.tile(np.array(layout.target), (steps, 1)), identity]
        ),
        PRIVILEGED_PREFIX + "source_size": np.tile(np.array(layout.source_size), (steps, 1)),
        PRIVILEGED_PREFIX + "target_size": np.tile(np.array(layout.target_size), (steps, 1)),
        PRIVILEGED_PREFIX + "source_grasped": np.array(recorder.grasps[:steps])[:, None],
        STATE_KEY: np.hstack([hands, quaternion, grippers[:, None]]),
    }
    return EpisodeView(
        dataset="synthetic",
        index=index,
        instruction=layout.instruction,
        fps=5.0,
        actions=actions,
        state=state,
        metadata={
            "suite": "widowx",
            "task": "carrot_on_plate",
            "episode_id": index,
            "seed": 0,
            "success": True,
            "source_object": layout.source_name,
            "target_object": layout.target_name,
            "policy": "scripted",
        },
    )


def without_privileged_state(episode: EpisodeView, instruction: str | None = None) -> EpisodeView:
    """The same episode as a dataset from elsewhere would hold it: actions and proprioception."""
    return EpisodeView(
        dataset="bridge-like",
        index=episode.index,
        instruction=instruction or episode.instruction,
        fps=episode.fps,
        actions=episode.actions,
        state={STATE_KEY: episode.state[STATE_KEY]},
    )
