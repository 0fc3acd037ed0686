"""The ManiSkill3 base scene of every Google Robot task: robot, floor, stage, green screen.

Task environments extend `GoogleRobotScene` with their objects, episode grid, instruction and
success rule. The base runs upstream's timing (513 Hz simulation, 3 Hz control: 171 substeps
per action), places the robot like upstream's `_initialize_agent` (initial qpos, base height,
yaw pi plus the episode's yaw), loads the task's stage, composites the overlay photo
("green screen") per env row, and answers the harness's questions every task shares:
`proprio`, `privileged_state`, `get_language_instruction`, the subtask hooks.

Episode ids: `reset(options={"episode_id": ids})` gives each row the options of
`episode_options(id)` (the task's own upstream grid); explicit options override them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sapien
import torch
from mani_skill.envs.sapien_env import BaseEnv
from mani_skill.utils.building.ground import build_ground
from mani_skill.utils.registration import register_env
from mani_skill.utils.sapien_utils import set_articulation_render_material
from mani_skill.utils.structs.actor import Actor
from mani_skill.utils.structs.pose import Pose
from mani_skill.utils.structs.types import DefaultMaterialsConfig, SceneConfig, SimConfig

from refinevla_bench.harness import paths
from refinevla_bench.harness.backends.google_robot import agent as robot
from refinevla_bench.harness.backends.google_robot.green_screen import composite, load_overlay
from refinevla_bench.harness.backends.google_robot_control import config
from refinevla_bench.harness.errors import HarnessError

ENV_ID = "RefineVLAGoogleRobotScene-v0"
GROUND_ALTITUDE = 0.017  # upstream's default scenes put the floor 1.7 cm up
REAL2SIM_DIR = Path("real2sim/data")
STAGES_DIR = Path("hab2_bench_assets/stages")
STAGE_QUATERNION = (0.707, 0.707, 0.0, 0.0)  # y-up Habitat stages to z-up
ROBOT_AWAY = (-10.0, 0.0, 0.0)  # where the robot waits while objects settle
ASSET_FIX = "refinevla-bench assets fetch --suite google_robot"


def yaw_quaternion(yaw: torch.Tensor) -> torch.Tensor:
    """wxyz quaternions (N, 4) of turns about the vertical by `yaw` (N,)."""
    zeros = torch.zeros_like(yaw)
    return torch.stack([torch.cos(yaw / 2), zeros, zeros, torch.sin(yaw / 2)], dim=-1)


def finger_closure(finger_angles: torch.Tensor) -> torch.Tensor:
    """Finger joint angles in closure units: 0 open .. 1 closed (unclamped)."""
    span = config.GRIPPER_JOINT_UPPER - config.GRIPPER_JOINT_LOWER
    return (finger_angles - config.GRIPPER_JOINT_LOWER) / span


@register_env(ENV_ID)
class GoogleRobotScene(BaseEnv):  # type: ignore[misc]
    """The Google Robot at `robot_xy` (yaw pi + `robot_yaw`); `urdf_version` picks the arm's
    texture, `assets_root` the asset store (default: $REFINEVLA_ASSETS or the user cache),
    `scene_name` a stage under hab2_bench_assets/stages (None: floor only), `stage_offset`
    the stage's translation, `overlay` the photo under real2sim/data shown behind the robot and
    the task objects when `green_screen` (needs an obs_mode with segmentation)."""

    SUPPORTED_ROBOTS = (robot.AGENT_UID,)
    SUPPORTED_REWARD_MODES = ("none",)
    agent: robot.GoogleRobot

    def __init__(
        self,
        *args: Any,
        urdf_version: str | None = None,
        assets_root: Path | None = None,
        robot_xy: tuple[float, float] = (0.0, 0.0),
        robot_yaw: float = 0.0,
        robot_render_material: bool = True,
        scene_name: str | None = None,
        stage_offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
        overlay: str | None = None,
        green_screen: bool = True,
        **kwargs: Any,
    ) -> None:
        self.urdf = robot.urdf_path(urdf_version, assets_root)
        self.urdf_version = urdf_version
        self.data_dir = paths.assets_root(assets_root) / REAL2SIM_DIR
        self.robot_xy = robot_xy
        self.robot_yaw = robot_yaw
        # upstream's `disable_bad_material=False`: specular 0.9, roughness 0.3 on the robot
        self.robot_render_material = robot_render_material
        self.scene_name = scene_name
        self.stage_offset = stage_offset
        self.stage_path = (
            self.require_file(STAGES_DIR / f"{scene_name}.glb") if scene_name else None
        )
        self.default_overlay = overlay
        self.green_screen = green_screen and overlay is not None
        self._overlay_cache: dict[str, npt.NDArray[np.uint8]] = {}
        kwargs.setdefault("reward_mode", "none")
        super().__init__(*args, robot_uids=robot.AGENT_UID, **kwargs)

    # ---- assets ---------------------------------------------------------------------------

    def require_file(self, relative: Path | str) -> Path:
        """A file under real2sim/data, or a one-line error naming the fetch command."""
        path = self.data_dir / relative
        if not path.is_file():
            raise HarnessError(f"missing Google Robot task asset {path}", ASSET_FIX)
        return path

    def overlay_image(self, relative: str) -> npt.NDArray[np.uint8]:
        """The overlay photo at the camera's size (read once per env)."""
        if relative not in self._overlay_cache:
            self._overlay_cache[relative] = load_overlay(
                self.require_file(relative), robot.CAMERA_WIDTH, robot.CAMERA_HEIGHT
            )
        return self._overlay_cache[relative]

    # ---- building -------------------------------------------------------------------------

    @property
    def _default_sim_config(self) -> SimConfig:
        """Upstream's `_get_default_scene_config`: friction 1.0 and restitution 0 by default,
        PCM off, 25 TGS position iterations, 1 velocity iteration, contact offset 0.02
        (ManiSkill3's defaults are friction 0.3, PCM on, 15 iterations)."""
        return SimConfig(
            sim_freq=config.SIM_FREQ,
            control_freq=config.CONTROL_FREQ,
            spacing=20,
            scene_config=SceneConfig(
                contact_offset=0.02,
                solver_position_iterations=25,
                solver_velocity_iterations=1,
                enable_pcm=False,
                enable_tgs=True,
            ),
            default_materials_config=DefaultMaterialsConfig(
                static_friction=1.0, dynamic_friction=1.0, restitution=0.0
            ),
        )

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
        self.arena: Actor | None = None
        if self.stage_path is not None:
            stage = self.scene.create_actor_builder()
            stage_pose = sapien.Pose(q=list(STAGE_QUATERNION))
            stage.add_nonconvex_collision_from_file(str(self.stage_path), stage_pose)
            stage.add_visual_from_file(str(self.stage_path), stage_pose)
            stage.initial_pose = sapien.Pose(p=list(self.stage_offset))
            self.arena = stage.build_static(name="arena")

    def _load_lighting(self, options: dict[str, Any]) -> None:
        self.scene.set_ambient_light([0.3, 0.3, 0.3])
        self.scene.add_directional_light([0, 0, -1], [2.2, 2.2, 2.2])

    def task_actors(self) -> Sequence[Actor | Any]:
        """Objects the green screen keeps visible besides the robot (actors, articulations'
        links); tasks override."""
        return ()

    def _after_reconfigure(self, options: dict[str, Any]) -> None:
        super()._after_reconfigure(options)
        ids = [link.per_scene_id for link in self.agent.robot.links]
        ids += [part.per_scene_id for part in self.task_actors()]
        self.kept_segmentation_ids = torch.unique(torch.cat(ids))
        blank = torch.zeros(
            (self.num_envs, robot.CAMERA_HEIGHT, robot.CAMERA_WIDTH, 3), dtype=torch.uint8
        )
        if self.default_overlay is not None:
            blank[:] = torch.from_numpy(self.overlay_image(self.default_overlay))
        self.row_overlays = blank.to(self.device)

    # ---- episodes -------------------------------------------------------------------------

    def episode_options(self, episode_id: int) -> dict[str, Any]:
        """The reset options of one entry of the task's episode grid (tasks override)."""
        raise HarnessError(
            f"{type(self).__name__} has no episode grid", "reset with explicit options instead"
        )

    def row_options(self, options: dict[str, Any], rows: int) -> list[dict[str, Any]]:
        """Each reset row's options: its episode's grid entry, overridden by explicit options."""
        explicit = {key: value for key, value in options.items() if key != "episode_id"}
        if "episode_id" not in options:
            return [dict(explicit) for _ in range(rows)]
        ids = np.asarray(
            options["episode_id"].cpu()
            if hasattr(options["episode_id"], "cpu")
            else options["episode_id"]
        ).reshape(-1)
        if len(ids) == 1:
            ids = np.repeat(ids, rows)
        if len(ids) != rows:
            raise HarnessError(f"{len(ids)} episode ids for {rows} envs", "give one id per env")
        return [{**self.episode_options(int(i)), **explicit} for i in ids]

    def stacked(
        self, row_options: Sequence[dict[str, Any]], key: str, default: Any, width: int
    ) -> torch.Tensor:
        """One option of every row as a (rows, width) float tensor."""
        values = [
            np.asarray(entry.get(key, default), np.float32).reshape(width) for entry in row_options
        ]
        return torch.as_tensor(np.stack(values), device=self.device)

    def set_row_overlays(
        self, env_idx: torch.Tensor, row_options: Sequence[dict[str, Any]]
    ) -> None:
        """Rows whose options name an `overlay` show that photo instead of the default."""
        for row, entry in zip(env_idx.tolist(), row_options, strict=True):
            name = entry.get("overlay", self.default_overlay)
            if name is not None:
                self.row_overlays[row] = torch.from_numpy(self.overlay_image(name)).to(self.device)

    def park_robot(self, env_idx: torch.Tensor) -> None:
        """Move the robot far away so objects settle without touching it."""
        away = torch.tensor(ROBOT_AWAY, device=self.device).expand(len(env_idx), -1)
        self.agent.robot.set_pose(Pose.create_from_pq(away))

    def place_robot(self, env_idx: torch.Tensor, row_options: Sequence[dict[str, Any]]) -> None:
        """Upstream's `_initialize_agent`: initial qpos, then the base at `robot_init_xy`,
        height 0.079 and yaw pi + `robot_init_yaw` (defaults: the constructor's)."""
        rows = len(env_idx)
        qpos = torch.tensor(
            self.agent.from_upstream_order(robot.INITIAL_QPOS), device=self.device
        ).expand(rows, -1)
        self.agent.reset(qpos)
        xy = self.stacked(row_options, "robot_init_xy", self.robot_xy, 2)
        yaw = torch.pi + self.stacked(row_options, "robot_init_yaw", self.robot_yaw, 1)[:, 0]
        height = torch.full((rows, 1), robot.BASE_HEIGHT, device=self.device)
        self.agent.robot.set_pose(
            Pose.create_from_pq(torch.cat([xy, height], -1), yaw_quaternion(yaw))
        )

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict[str, Any]) -> None:
        row_options = self.row_options(options, len(env_idx))
        self.set_row_overlays(env_idx, row_options)
        self.place_robot(env_idx, row_options)

    def settle(self, seconds: float) -> None:
        """Step physics alone for `seconds` (upstream: int(sim_freq * seconds) substeps)."""
        for _ in range(int(self.sim_freq * seconds)):
            if self.gpu_sim_enabled:
                self.scene._gpu_apply_all()
            self.scene.step()
            if self.gpu_sim_enabled:
                self.scene._gpu_fetch_all()

    # ---- what the harness reads -----------------------------------------------------------

    def get_language_instruction(self) -> list[str]:
        """The instruction of every env row (it may change between steps: subtasks)."""
        raise NotImplementedError

    def is_final_subtask(self) -> torch.Tensor:
        """(N,) bool: whether a policy's terminate ends the episode (single-task: always)."""
        return torch.ones(self.num_envs, dtype=torch.bool, device=self.device)

    def advance_to_next_subtask(self, rows: torch.Tensor) -> None:
        """Move the rows in the (N,) bool mask to their next subtask (single-task: nothing)."""

    def in_base_frame(self, pose: Pose) -> Pose:
        return self.agent.robot.pose.inv() * pose

    def proprio(self) -> dict[str, torch.Tensor]:
        """What the robot's encoders report: the TCP pose in the base frame (N, 7: xyz, wxyz)
        and how open the fingers are (N,: 1 open .. 0 closed; the fingers close towards 1.3)."""
        tcp = self.agent.robot_controller.ee_pose_at_base
        names = [joint.name for joint in self.agent.robot.get_active_joints()]
        fingers = [names.index(name) for name in config.GRIPPER_JOINTS]
        qpos = self.agent.robot.get_qpos()[:, fingers]
        closed = finger_closure(qpos).clamp(0.0, 1.0).mean(dim=1)
        return {"tcp_pose": torch.cat([tcp.p, tcp.q], dim=-1), "gripper_opening": 1.0 - closed}

    def privileged_state(self) -> dict[str, torch.Tensor]:
        """Ground truth for scripted experts, in the robot-base frame (tasks add theirs).

        `gripper_drive` is the fingers' last drive target (mean of the two, in the closure units
        of `gripper_opening`: 0 open .. 1 closed, unclamped): the next relative gripper action
        is added to it, so an expert that knows it can set the finger target it wants."""
        closure = finger_closure(self.agent.robot_controller.state.gripper_drive).mean(dim=1)
        return {
            "tcp_pose": self.proprio()["tcp_pose"],
            "gripper_drive": closure.to(device=self.device, dtype=torch.float32),
        }

    def evaluate(self) -> dict[str, Any]:
        return {}

    def _get_obs_extra(self, info: dict[str, Any]) -> dict[str, Any]:
        return {}

    # ---- observations ---------------------------------------------------------------------

    def composited_rgb(self, sensor_data: dict[str, Any]) -> torch.Tensor:
        """The overhead camera's image per env row, background replaced by the row's photo."""
        camera = sensor_data[robot.CAMERA_UID]
        if "segmentation" not in camera:
            raise HarnessError(
                "the green screen needs segmentation",
                'make the env with obs_mode="rgb+segmentation"',
            )
        return composite(
            camera["rgb"], camera["segmentation"], self.kept_segmentation_ids, self.row_overlays
        )

    def _get_obs_sensor_data(self, apply_texture_transforms: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = super()._get_obs_sensor_data(apply_texture_transforms)
        camera = data.get(robot.CAMERA_UID, {})
        if self.green_screen and "rgb" in camera and "segmentation" in camera:
            camera["rgb"] = self.composited_rgb(data)
        return data
