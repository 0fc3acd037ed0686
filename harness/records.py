"""Per-episode results: the unit every summary and table is computed from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Termination = Literal["max_steps", "success", "error", "policy"]


@dataclass(frozen=True)
class EpisodeRecord:
    suite: str
    task: str
    episode_id: int
    seed: int
    instruction: str
    success: bool
    grasped: bool
    steps: int
    termination: Termination
    seconds: float
    error: str | None = None
    rationales: tuple[str, ...] | None = None  # per step, from policies that reason aloud
    variant: str | None = None  # the environment variant, for tasks averaged over several

    def to_json(self) -> dict[str, object]:
        payload = asdict(self)
        if self.rationales is None:
            del payload["rationales"]  # lines of non-reasoning policies stay as they were
        else:
            payload["rationales"] = list(self.rationales)
        if self.variant is None:
            del payload["variant"]
        return payload


@dataclass(frozen=True)
class TaskSummary:
    task: str
    episodes: int
    successes: int
    grasps: int
    errors: int
    seconds: float

    @classmethod
    def of(cls, task: str, records: list[EpisodeRecord]) -> TaskSummary:
        return cls(
            task=task,
            episodes=len(records),
            successes=sum(record.success for record in records),
            grasps=sum(record.grasped for record in records),
            errors=sum(record.termination == "error" for record in records),
            seconds=sum(record.seconds for record in records),
        )

    @property
    def success_rate(self) -> float:
        """Errors count as failed trials (a policy that crashes did not solve the task)."""
        return self.successes / self.episodes if self.episodes else 0.0
