"""ManiSkill3 (SAPIEN 3) backend: makes a task variant's environment once for all its episodes.

Every reset rebuilds the physics scene (`reconfiguration_freq=1`; measured on the CPU, a reset
takes 0.21 s instead of 0.05 for WidowX carrot, 0.45 instead of 0.28 for the coke can with six
distractors). A PhysX scene keeps state that no pose or velocity reset clears (contact
caches, the order it found contact pairs in), so in a reused scene the same episode played
differently depending on what ran before it: coke-can distractors settled up to 1.9 m apart
and flipped successes, move near and the apple task drifted mid-episode. Rebuilt, an
episode's trajectory depends on its task, variant, id and seed alone: not on --episodes,
--tasks, the order or a resume.

ManiSkill reads its asset folder from MS_ASSET_DIR when it is first imported, and it asks on
stdin before downloading anything it misses. Both are settled here before the import: the
harness points it at its own asset store, checks every needed file itself, and switches the
prompt off so a missing file can only ever be a one-line error from the harness.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.assets.store import require_suite_assets
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.paths import maniskill_asset_dir
from refinevla_bench.harness.rendering import (
    NO_RENDER_DEVICE_FIX,
    is_vulkan_failure,
    render_devices_in_process,
)
from refinevla_bench.harness.suites.spec import EnvVariant, SuiteSpec, TaskSpec
from refinevla_bench.policies.protocol import EpisodeKey, ObservationBatch

Device = Literal["cpu", "cuda"]
DEVICE_CHOICES = ("auto", "cpu", "cuda")
RECONFIGURE_EVERY_RESET = 1  # a fresh physics scene per reset: see the module docstring


def resolve_device(requested: str) -> Device:
    """`auto` takes CUDA simulation when torch sees a GPU, else the CPU."""
    if requested not in DEVICE_CHOICES:
        raise HarnessError(f"unknown device '{requested}'", "use --device auto, cpu or cuda")
    import torch

    has_cuda = bool(torch.cuda.is_available())
    if requested == "cuda" and not has_cuda:
        raise HarnessError("--device cuda but torch sees no CUDA GPU", "use --device cpu (or auto)")
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return "cuda" if requested == "cuda" else "cpu"


def import_maniskill(asset_dir: Path, verbose: bool = False) -> None:
    """Import ManiSkill with our asset folder and no stdin prompts, exactly once per process.

    Unless `verbose`, ManiSkill's per-environment warnings (missing initial poses, mimic joints,
    slow tensor construction) are silenced: they repeat for every task and bury the results.
    """
    already = sys.modules.get("mani_skill")
    if already is not None:
        current = Path(str(already.ASSET_DIR)).resolve().parent  # ASSET_DIR is MS_ASSET_DIR/data
        if current != asset_dir.resolve():
            raise HarnessError(
                f"ManiSkill was already imported with assets at {current}, not {asset_dir}",
                "run each asset root in its own process",
            )
        return
    os.environ["MS_ASSET_DIR"] = str(asset_dir)
    os.environ["MS_SKIP_ASSET_DOWNLOAD_PROMPT"] = "1"
    import mani_skill.envs  # noqa: F401  (registers the environments)
    from mani_skill.utils.logging_utils import logger

    if not verbose:
        logger.setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"mani_skill(\.|$)")


@dataclass(frozen=True)
class StepOutcome:
    observation: ObservationBatch
    success: npt.NDArray[np.bool_]
    grasped: npt.NDArray[np.bool_]


class TaskEnvironment:
    """One task variant's live environment; reset with episode ids, step with controller
    actions. Environments of this project's own twins answer `proprio`, `privileged_state` and
    the subtask questions themselves; ManiSkill's built-in ones are read from outside."""

    def __init__(
        self,
        env: Any,
        suite: SuiteSpec,
        task: TaskSpec,
        privileged: bool,
        variant: EnvVariant | None = None,
    ) -> None:
        self._env = env
        self._suite = suite
        self.task = task
        self.variant = variant or task.variants[0]
        self._privileged = privileged
        self._instructions: tuple[str, ...] = ()
        self._episodes: tuple[EpisodeKey, ...] = ()

    @property
    def num_envs(self) -> int:
        return int(self._env.unwrapped.num_envs)

    def reset(self, episode_ids: Sequence[int], seed: int) -> ObservationBatch:
        import torch

        if len(episode_ids) != self.num_envs:
            raise ValueError(f"{len(episode_ids)} episode ids for {self.num_envs} environments")
        foreign = [i for i in episode_ids if self.task.variant_of(int(i)) != self.variant]
        if foreign:
            raise ValueError(f"episodes {foreign} are not of variant {self.variant.name}")
        observation, _ = self._env.reset(
            seed=[seed] * self.num_envs,  # never depends on the batch slot an episode lands in
            options={
                "episode_id": torch.tensor([self.task.env_episode(int(i)) for i in episode_ids])
            },
        )
        self._instructions = tuple(self._env.unwrapped.get_language_instruction())
        self._episodes = tuple(
            EpisodeKey(self.task.name, int(episode_id), seed) for episode_id in episode_ids
        )
        return self._observation(observation)

    def step(self, actions: npt.NDArray[np.float32]) -> StepOutcome:
        observation, _reward, _terminated, _truncated, info = self._env.step(actions)
        self._instructions = tuple(self._env.unwrapped.get_language_instruction())
        return StepOutcome(
            observation=self._observation(observation),
            success=_as_bool_array(info["success"]),
            grasped=_as_bool_array(info[self.task.grasp_info_key]),
        )

    def _observation(self, observation: dict[str, Any]) -> ObservationBatch:
        rgb = observation["sensor_data"][self._suite.camera.name]["rgb"]
        images = rgb.cpu().numpy() if hasattr(rgb, "cpu") else np.asarray(rgb)
        camera = self._suite.camera
        if images.shape[1:] != (camera.height, camera.width, 3):
            # a different resolution changes what policies see: never let it pass silently
            raise RuntimeError(
                f"{self.task.env_id} renders {images.shape[1:]} but the suite specifies "
                f"{(camera.height, camera.width, 3)}"
            )
        return ObservationBatch(
            images=images.astype(np.uint8, copy=False),
            instructions=self._instructions,
            episodes=self._episodes,
            state=self._privileged_state() if self._privileged else {},
            proprio=self._proprio(),
        )

    def is_final_subtask(self) -> npt.NDArray[np.bool_]:
        """Per row: does a policy's terminate end the episode (else it starts the next
        subtask, as SimplerEnv's evaluator does)."""
        env = self._env.unwrapped
        if not hasattr(env, "is_final_subtask"):
            return np.ones(self.num_envs, dtype=bool)
        return _as_bool_array(env.is_final_subtask())

    def advance_to_next_subtask(self, rows: npt.NDArray[np.bool_]) -> None:
        import torch

        self._env.unwrapped.advance_to_next_subtask(torch.as_tensor(rows))

    def _proprio(self) -> dict[str, npt.NDArray[np.float64]]:
        """The robot's own state, as its encoders report it: end-effector pose in the base
        frame and how far the fingers are open (0 closed .. 1 open, from the joint limits)."""
        if hasattr(self._env.unwrapped, "proprio"):
            return _numpy_dict(self._env.unwrapped.proprio())
        agent = self._env.unwrapped.agent
        robot = agent.robot
        relative = robot.pose.inv() * agent.controller.controllers["arm"].ee_pose
        tcp_pose = np.concatenate([_numpy(relative.p), _numpy(relative.q)], axis=-1)
        names = [joint.name for joint in robot.get_active_joints()]
        fingers = [names.index(name) for name in agent.gripper_joint_names]
        qpos = _numpy(robot.get_qpos())[:, fingers]
        limits = _numpy(robot.get_qlimits())[:, fingers]
        span = np.maximum(limits[..., 1] - limits[..., 0], 1e-9)
        opening = np.clip((qpos - limits[..., 0]) / span, 0.0, 1.0).mean(axis=1)
        return {"tcp_pose": tcp_pose.reshape(self.num_envs, 7), "gripper_opening": opening}

    def _privileged_state(self) -> dict[str, npt.NDArray[np.float64]]:
        """Ground truth for scripted experts, in the robot-base frame actions are given in."""
        env = self._env.unwrapped
        if hasattr(env, "privileged_state"):
            return _numpy_dict(env.privileged_state())
        base_inverse = env.agent.robot.pose.inv()
        source = env.objs[env.source_obj_name]
        target = env.objs[env.target_obj_name]

        def in_base(pose: Any) -> npt.NDArray[np.float64]:
            relative = base_inverse * pose
            return np.concatenate([_numpy(relative.p), _numpy(relative.q)], axis=-1)

        batch = self.num_envs
        return {
            "tcp_pose": in_base(env.agent.controller.controllers["arm"].ee_pose),
            "source_pose": in_base(source.pose),
            "target_pose": in_base(target.pose),
            # ManiSkill rotates the model's box into world axes, which can flip signs
            "source_size": np.broadcast_to(
                np.abs(_numpy(env.episode_source_obj_bbox_world)), (batch, 3)
            ),
            "target_size": np.broadcast_to(
                np.abs(_numpy(env.episode_target_obj_bbox_world)), (batch, 3)
            ),
            "source_grasped": _numpy(env.agent.is_grasping(source)).reshape(batch),
        }

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> TaskEnvironment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _numpy(value: Any) -> npt.NDArray[np.float64]:
    array = value.cpu().numpy() if hasattr(value, "cpu") else np.asarray(value)
    return np.asarray(array, dtype=np.float64)


def _numpy_dict(values: dict[str, Any]) -> dict[str, npt.NDArray[np.float64]]:
    return {key: _numpy(value) for key, value in values.items()}


def _as_bool_array(value: Any) -> npt.NDArray[np.bool_]:
    return _numpy(value).astype(bool).reshape(-1)


class ManiSkillBackend:
    """Builds ManiSkill3 environments for one suite from one asset root."""

    def __init__(
        self, suite: SuiteSpec, assets_root: Path, device: Device, verbose: bool = False
    ) -> None:
        require_suite_assets(assets_root, suite.asset_suite)
        self.suite = suite
        self.device = device
        import_maniskill(maniskill_asset_dir(assets_root), verbose)
        self.assets_root = assets_root
        if suite.twins_module is not None:
            importlib.import_module(suite.twins_module)  # registers the suite's own twins
        self.render_devices = render_devices_in_process()

    def open_task(
        self,
        task: TaskSpec,
        num_envs: int = 1,
        privileged: bool = False,
        variant: EnvVariant | None = None,
    ) -> TaskEnvironment:
        """One variant's environment (default: the task's first) for `num_envs` episodes."""
        import gymnasium as gym

        variant = variant or task.variants[0]
        own: dict[str, Any] = (
            {"assets_root": self.assets_root} if self.suite.twins_module is not None else {}
        )
        try:
            env = gym.make(
                task.env_id,
                obs_mode="rgb+segmentation",
                num_envs=num_envs,
                sim_backend="physx_cuda" if self.device == "cuda" else "physx_cpu",
                render_backend="gpu" if self.device == "cuda" else "cpu",
                max_episode_steps=task.max_steps,
                reconfiguration_freq=RECONFIGURE_EVERY_RESET,
                **own,
                **variant.kwargs,
            )
        except RuntimeError as error:
            if is_vulkan_failure(error):
                raise HarnessError(
                    f"rendering failed while building {task.env_id} ({error})", NO_RENDER_DEVICE_FIX
                ) from error
            raise
        if task.orientation_grid is not None:
            _apply_orientation_grid(env.unwrapped, task)
        return TaskEnvironment(env, self.suite, task, privileged, variant)


def _apply_orientation_grid(env: Any, task: TaskSpec) -> None:
    """Swap the twin's orientation table (read at every reset) for the suite's grid."""
    import torch

    grid = task.orientation_grid
    assert grid is not None
    current = env.quat_configs
    replacement = torch.tensor(grid.orientations, dtype=current.dtype, device=current.device)
    if replacement.shape[1:] != current.shape[1:]:
        raise RuntimeError(
            f"{task.env_id} orients {current.shape[1]} objects, the grid {replacement.shape[1]}"
        )
    positions = len(env.xyz_configs)
    if positions * len(replacement) != len(task.episode_ids):
        raise RuntimeError(
            f"{task.env_id}: {positions} positions x {len(replacement)} orientations "
            f"!= {len(task.episode_ids)} episodes"
        )
    env.quat_configs = replacement
