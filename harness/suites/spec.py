"""The shape of a suite: tasks, camera, control conventions and the assets it needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.protocol import PolicyConventions, Robot


@dataclass(frozen=True)
class CameraSpec:
    name: str
    width: int
    height: int


Quaternion = tuple[float, float, float, float]  # (w, x, y, z)


@dataclass(frozen=True)
class OrientationGrid:
    """Replaces a twin's object orientations so its episode grid matches upstream's.

    Episode `i` uses positions[(i % (P * Q)) // Q] and orientations[i % Q], as upstream does;
    each orientation row gives one quaternion per task object (source, then target).
    """

    orientations: tuple[tuple[Quaternion, ...], ...]
    reason: str


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite, with the episode grid that makes its results comparable."""

    name: str
    title: str
    env_id: str
    instruction: str
    max_steps: int
    episode_ids: tuple[int, ...]
    grasp_info_key: str = "is_src_obj_grasped"
    source_object: str = ""  # the object to move, as a person names it ("carrot")
    target_object: str = ""  # where it goes ("plate")
    orientation_grid: OrientationGrid | None = None


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    description: str
    backend: str
    asset_suite: str  # the asset group `refinevla-bench assets fetch --suite` installs
    camera: CameraSpec
    control_hz: float
    controller: PolicyConventions
    robot: Robot  # policies declared for another robot are refused, never run
    tasks: tuple[TaskSpec, ...]

    def select_tasks(self, names: Sequence[str] | None) -> tuple[TaskSpec, ...]:
        """The tasks named (in suite order), or all of them; unknown names are an error."""
        if not names:
            return self.tasks
        known = {task.name for task in self.tasks}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise HarnessError(
                f"suite '{self.name}' has no task {', '.join(unknown)}",
                f"use --tasks with names from: {', '.join(task.name for task in self.tasks)}",
            )
        return tuple(task for task in self.tasks if task.name in names)
