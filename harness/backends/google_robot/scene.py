"""The smallest ManiSkill3 scene for the Google Robot: the robot on a flat floor, lit.

Task environments extend `GoogleRobotScene` with their stage, objects, overlay and success
rules. It runs upstream's timing (513 Hz simulation, 3 Hz control: 171 substeps per action)
and places the robot like upstream's `_initialize_agent`: initial qpos, base height, yaw pi.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mani_skill.envs.sapien_env import BaseEnv
from mani_skill.utils.building.ground import build_ground
from mani_skill.utils.registration import register_env
from mani_skill.utils.sapien_utils import set_articulation_render_material
from mani_skill.utils.structs.pose import Pose
from mani_skill.utils.structs.types import SimConfig

from refinevla_bench.harness.backends.google_robot import agent as robot
from refinevla_bench.harness.backends.google_robot_control import config

ENV_ID = "RefineVLAGoogleRobotScene-v0"
GROUND_ALTITUDE = 0.017  # upstream's default scenes put the floor 1.7 cm up


@register_env(ENV_ID)
class GoogleRobotScene(BaseEnv):  # type: ignore[misc]
    """The Google Robot at `robot_xy`; `urdf_version` picks the texture, `assets_root` the
    asset store (default: $REFINEVLA_ASSETS or the user cache)."""

    SUPPORTED_ROBOTS = (robot.AGENT_UID,)
    SUPPORTED_REWARD_MODES = ("none",)
    agent: robot.GoogleRobot

    def __init__(
        self,
        *args: Any,
        urdf_version: str | None = None,
        assets_root: Path | None = None,
        robot_xy: tuple[float, float] = (0.0, 0.0),
        robot_render_material: bool = True,
        **kwargs: Any,
    ) -> None:
        self.urdf = robot.urdf_path(urdf_version, assets_root)
        self.urdf_version = urdf_version
        self.robot_xy = robot_xy
        # upstream's `disable_bad_material=False`: specular 0.9, roughness 0.3 on the robot
        self.robot_render_material = robot_render_material
        kwargs.setdefault("reward_mode", "none")
        super().__init__(*args, robot_uids=robot.AGENT_UID, **kwargs)

    @property
    def _default_sim_config(self) -> SimConfig:
        return SimConfig(sim_freq=config.SIM_FREQ, control_freq=config.CONTROL_FREQ, spacing=20)

    def _load_agent(
        self, options: dict[str, Any], initial_agent_poses: Any = None, build_separate: bool = False
    ) -> None:
        self.agent = robot.GoogleRobot(
            self.scene,
            self._control_freq,
            self._control_mode,
            initial_pose=robot.initial_pose(),
            build_separate=build_separate,
            urdf=self.urdf,
        )

    def _load_scene(self, options: dict[str, Any]) -> None:
        build_ground(self.scene, altitude=GROUND_ALTITUDE)
        if self.robot_render_material:
            for articulation in self.agent.robot._objs:
                set_articulation_render_material(articulation, specular=0.9, roughness=0.3)

    def _load_lighting(self, options: dict[str, Any]) -> None:
        self.scene.set_ambient_light([0.3, 0.3, 0.3])
        self.scene.add_directional_light([0, 0, -1], [2.2, 2.2, 2.2])

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict[str, Any]) -> None:
        rows = len(env_idx)
        qpos = torch.tensor(
            self.agent.from_upstream_order(robot.INITIAL_QPOS), device=self.device
        ).expand(rows, -1)
        self.agent.reset(qpos)
        x, y = self.robot_xy
        position = torch.tensor([x, y, robot.BASE_HEIGHT], device=self.device).expand(rows, -1)
        quaternion = torch.tensor(robot.BASE_QUATERNION, device=self.device).expand(rows, -1)
        self.agent.robot.set_pose(Pose.create_from_pq(position, quaternion))

    def evaluate(self) -> dict[str, Any]:
        return {}

    def _get_obs_extra(self, info: dict[str, Any]) -> dict[str, Any]:
        return {}
