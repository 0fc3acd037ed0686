"""The shape of a suite: tasks, camera, control conventions and the assets it needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
class EnvVariant:
    """One build of a task's environment: constructor options that need an environment of
    their own (a robot texture, a background, a lighting). Results are averaged per variant."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()  # keyword arguments of gym.make

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)


DEFAULT_VARIANT = EnvVariant("default")


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite, with the episode grid that makes its results comparable.

    With several variants, episode `i` runs in variants[i % V] as that environment's own
    episode `i // V`: the first episodes of a task already cover every variant.
    """

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
    variants: tuple[EnvVariant, ...] = (DEFAULT_VARIANT,)
    in_default_run: bool = True  # False: runs only when named with --tasks
    family: str = ""  # the table column the task is averaged into (coke can orientations)

    def __post_init__(self) -> None:
        if not self.variants or len(self.episode_ids) % len(self.variants):
            raise ValueError(
                f"task {self.name}: {len(self.episode_ids)} episodes do not split evenly over "
                f"{len(self.variants)} variants"
            )

    def variant_index(self, episode_id: int) -> int:
        return episode_id % len(self.variants)

    def variant_of(self, episode_id: int) -> EnvVariant:
        return self.variants[self.variant_index(episode_id)]

    def env_episode(self, episode_id: int) -> int:
        """The episode's id in its variant's environment (the task's own grid)."""
        return episode_id // len(self.variants)


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
    # a module registering this project's own twins (imported after ManiSkill; they take
    # `assets_root`); None for ManiSkill's built-in environments
    twins_module: str | None = None
    # seeds a run repeats the grid with unless told: the WidowX maintainers advise 3 repeats;
    # upstream's Google Robot scripts run each grid entry once
    default_seeds: tuple[int, ...] = (0, 1, 2)

    def select_tasks(self, names: Sequence[str] | None) -> tuple[TaskSpec, ...]:
        """The tasks named (in suite order), or those of a default run; unknown names are an
        error."""
        if not names:
            return tuple(task for task in self.tasks if task.in_default_run)
        known = {task.name for task in self.tasks}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise HarnessError(
                f"suite '{self.name}' has no task {', '.join(unknown)}",
                f"use --tasks with names from: {', '.join(task.name for task in self.tasks)}",
            )
        return tuple(task for task in self.tasks if task.name in names)
