"""The rationale schema (versioned): what a teacher must return for one episode.

ReFineVLA's rationales have four parts (observation, situation analysis, spatial reasoning, task
plan); we add the next step, and write them per segment: a span of steps with one subtask
(reach, grasp, lift, move, place, release), mapped back to every step of the span. One request
per episode covers all its segments, so the teacher sees the whole trajectory once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal["1.0"] = "1.0"

Subtask = Literal["reach", "grasp", "lift", "move", "place", "release"]
SUBTASKS: tuple[Subtask, ...] = ("reach", "grasp", "lift", "move", "place", "release")


class SegmentRationale(BaseModel):
    """The reasoning for one segment, as the teacher wrote it."""

    model_config = ConfigDict(extra="forbid")

    segment: int = Field(ge=0, description="index of the segment this rationale explains")
    subtask: Subtask
    observation: str = Field(min_length=1, description="what the camera shows now")
    situation_analysis: str = Field(min_length=1, description="task progress and what matters")
    spatial_reasoning: str = Field(min_length=1, description="where things are, relative to what")
    task_plan: list[str] = Field(min_length=1, description="the remaining subtasks, in order")
    next_step: str = Field(min_length=1, description="the immediate next motion")


class EpisodeRationale(BaseModel):
    """A teacher's answer for one episode: one rationale per segment, in segment order."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    segments: list[SegmentRationale] = Field(min_length=1)


class SegmentSpan(BaseModel):
    """Which steps a segment covers: [start, end)."""

    model_config = ConfigDict(extra="forbid")

    segment: int = Field(ge=0)
    subtask: Subtask
    start: int = Field(ge=0)
    end: int = Field(gt=0)


class Usage(BaseModel):
    """What one episode's annotation consumed."""

    model_config = ConfigDict(extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    cost_usd: float = 0.0


class AnnotationRecord(BaseModel):
    """One episode's outcome as written to disk (one file per episode, written atomically)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    episode_index: int = Field(ge=0)
    status: Literal["ok", "failed"]
    teacher: str
    model: str
    prompt_version: str
    request_key: str  # content hash of the request; equal keys are answered from the cache
    spans: list[SegmentSpan]
    rationale: EpisodeRationale | None = None
    error: str | None = None  # why it failed, after every retry
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False  # answered from the cache: nothing was sent
    consistency: float | None = None  # 0..1 agreement with the grounded facts (None: not scored)
    consistency_issues: list[str] = Field(default_factory=list)  # why the score is below 1
