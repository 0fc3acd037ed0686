"""SimplerEnv's pick-coke-can task (GraspSingleOpenedCokeCanInScene-v0) as a ManiSkill3 twin.

Upstream facts (ManiSkill2_real2sim envs/custom_scenes/grasp_single_in_scene.py, base_env.py;
SimplerEnv scripts/rt1_pick_coke_can_visual_matching.sh):
- stage `hab2_bench_assets/stages/<scene>.glb` (default google_pick_coke_can_1_v4), y-up, so
  posed with wxyz (0.707, 0.707, 0, 0), nonconvex collision, the whole stage moved by
  -(-1.6616, -3.0337, 0); table top at 0.87;
- model `opened_coke_can` from `custom/info_pick_custom_v0.json` (scale 1, density 50),
  friction 0.5 / 0.5, restitution 0, linear and angular damping 0.1;
- orientations (transforms3d `euler2quat`, wxyz): upright = (pi/2, 0, 0), laid_vertically =
  (0, 0, pi/2), lr_switch = (0, 0, pi); the suite's names: standing, vertical, horizontal;
- the can is dropped from 0.5 m above the table with x/y rotation locked while the robot is
  away, settles 0.5 s, is released (zero velocity) for another 0.5 s, and 1.5 s more if still
  moving (> 1e-3 m/s or > 1e-2 rad/s); its height then is the lift reference;
- robot at (0.35, 0.20), wxyz (0, 0, 0, 1); lighting: ambient 0.3, lights (0, 0, -1) 2.2,
  (-1, -0.5, -1) 0.7, (1, 1, -1) 0.7; overlay real_inpainting/google_coke_can_real_eval_1.png
  on every pixel that is neither a robot link nor the can.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import sapien
import torch
from mani_skill.utils.registration import register_env
from mani_skill.utils.structs.actor import Actor
from mani_skill.utils.structs.pose import Pose

from refinevla_bench.harness import paths
from refinevla_bench.harness.backends.google_robot import agent as robot
from refinevla_bench.harness.backends.google_robot import lift_success
from refinevla_bench.harness.backends.google_robot.green_screen import composite, load_overlay
from refinevla_bench.harness.backends.google_robot.scene import GoogleRobotScene
from refinevla_bench.harness.errors import HarnessError

ENV_ID = "RefineVLAGooglePickCokeCan-v0"
MAX_EPISODE_STEPS = 80
REAL2SIM_DIR = Path("real2sim/data")
MODEL_DB = "custom/info_pick_custom_v0.json"
MODEL_ID = "opened_coke_can"
OVERLAY = "real_inpainting/google_coke_can_real_eval_1.png"
SCENE_NAME = "google_pick_coke_can_1_v4"
STAGE_QUATERNION = (0.707, 0.707, 0.0, 0.0)  # y-up Habitat stage to z-up
STAGE_OFFSET = (-1.6616, -3.0337, 0.0)
TABLE_HEIGHT = 0.87
DROP_HEIGHT = 0.5
FRICTION = 0.5
DAMPING = 0.1
ROBOT_XY = (0.35, 0.20)
ROBOT_AWAY = (-10.0, 0.0, 0.0)
OBJ_XY_LOW = (-0.35, -0.02)  # upstream's draw when no obj_init_xy is given
OBJ_XY_HIGH = (-0.12, 0.42)
_HALF = math.sqrt(0.5)
# wxyz; upstream's keys: lr_switch, laid_vertically, upright
ORIENTATIONS: dict[str, tuple[float, float, float, float]] = {
    "horizontal": (math.cos(math.pi / 2), 0.0, 0.0, math.sin(math.pi / 2)),
    "vertical": (_HALF, 0.0, 0.0, _HALF),
    "standing": (_HALF, _HALF, 0.0, 0.0),
}
SETTLE_SECONDS = (0.5, 0.5)
EXTRA_SETTLE_SECONDS = 1.5
STILL_LINEAR = 1e-3
STILL_ANGULAR = 1e-2


def orientation_quaternion(orientation: str) -> tuple[float, float, float, float]:
    if orientation not in ORIENTATIONS:
        raise HarnessError(
            f"unknown coke can orientation {orientation!r}", f"use one of {', '.join(ORIENTATIONS)}"
        )
    return ORIENTATIONS[orientation]


@register_env(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class GooglePickCokeCan(GoogleRobotScene):
    """Pick the opened coke can. Reset options (per env row where shaped (rows, k)):
    `obj_init_xy` (default: upstream's uniform draw over [-0.35, -0.12] x [-0.02, 0.42]),
    `robot_init_xy` (default (0.35, 0.20)), `robot_init_yaw` (added to upstream's yaw pi),
    `orientation` (default: the constructor's). With `green_screen`, the overhead camera's
    RGB observation is the composite (needs obs_mode with segmentation)."""

    def __init__(
        self,
        *args: Any,
        orientation: str = "horizontal",
        scene_name: str = SCENE_NAME,
        overlay: str | None = OVERLAY,
        green_screen: bool = True,
        assets_root: Path | None = None,
        **kwargs: Any,
    ) -> None:
        orientation_quaternion(orientation)  # a bad name fails here, not at the first reset
        self.orientation = orientation
        self.data_dir = paths.assets_root(assets_root) / REAL2SIM_DIR
        self.stage_path = self.data_dir / "hab2_bench_assets/stages" / f"{scene_name}.glb"
        self.model_dir = self.data_dir / "custom/models" / MODEL_ID
        for path in (self.stage_path, self.model_dir / "collision.obj"):
            if not path.is_file():
                raise HarnessError(
                    f"missing Google Robot task asset {path}",
                    "refinevla-bench assets fetch --suite google_robot",
                )
        model = json.loads((self.data_dir / MODEL_DB).read_text())[MODEL_ID]
        self.model_scale = float(model.get("scales", [1.0])[0])
        self.model_density = float(model.get("density", 1000.0))
        self.overlay_image = (
            load_overlay(self.data_dir / overlay, robot.CAMERA_WIDTH, robot.CAMERA_HEIGHT)
            if overlay is not None
            else None
        )
        self.green_screen = green_screen and overlay is not None
        kwargs.setdefault("robot_xy", ROBOT_XY)
        super().__init__(*args, assets_root=assets_root, **kwargs)

    # ---- building -------------------------------------------------------------------------

    def _load_scene(self, options: dict[str, Any]) -> None:
        super()._load_scene(options)
        stage = self.scene.create_actor_builder()
        stage_pose = sapien.Pose(q=list(STAGE_QUATERNION))
        stage.add_nonconvex_collision_from_file(str(self.stage_path), stage_pose)
        stage.add_visual_from_file(str(self.stage_path), stage_pose)
        stage.initial_pose = sapien.Pose(p=[-value for value in STAGE_OFFSET])
        self.arena: Actor = stage.build_static(name="arena")

        can = self.scene.create_actor_builder()
        scale = [self.model_scale] * 3
        material = sapien.physx.PhysxMaterial(FRICTION, FRICTION, 0.0)
        can.add_multiple_convex_collisions_from_file(
            str(self.model_dir / "collision.obj"),
            scale=scale,
            material=material,
            density=self.model_density,
        )
        can.add_visual_from_file(str(self._visual_file()), scale=scale)
        can.initial_pose = sapien.Pose(p=[0.0, 0.0, TABLE_HEIGHT + DROP_HEIGHT])
        self.can: Actor = can.build(name=MODEL_ID)
        self.can.set_linear_damping(DAMPING)
        self.can.set_angular_damping(DAMPING)

    def _visual_file(self) -> Path:
        """Upstream's preference: textured.obj, then .dae, then .glb."""
        for suffix in ("obj", "dae", "glb"):
            path = self.model_dir / f"textured.{suffix}"
            if path.is_file():
                return path
        return self.model_dir / "collision.obj"

    def _load_lighting(self, options: dict[str, Any]) -> None:
        self.scene.set_ambient_light([0.3, 0.3, 0.3])
        self.scene.add_directional_light([0, 0, -1], [2.2, 2.2, 2.2])
        self.scene.add_directional_light([-1, -0.5, -1], [0.7, 0.7, 0.7])
        self.scene.add_directional_light([1, 1, -1], [0.7, 0.7, 0.7])

    def _after_reconfigure(self, options: dict[str, Any]) -> None:
        super()._after_reconfigure(options)
        ids = [link.per_scene_id for link in self.agent.robot.links]
        self.kept_segmentation_ids = torch.unique(torch.cat([*ids, self.can.per_scene_id]))
        self.lift = lift_success.LiftState.zeros(self.num_envs, self.device)
        self.settled_height = torch.zeros(self.num_envs, device=self.device)

    # ---- episodes -------------------------------------------------------------------------

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict[str, Any]) -> None:
        rows = len(env_idx)
        self.agent.robot.set_pose(
            Pose.create_from_pq(torch.tensor(ROBOT_AWAY, device=self.device).expand(rows, -1))
        )
        self._drop_can(env_idx, options)
        super()._initialize_episode(env_idx, options)
        xy = _rows(options.get("robot_init_xy", self.robot_xy), rows, 2, self.device)
        yaw = math.pi + _rows(options.get("robot_init_yaw", 0.0), rows, 1, self.device)[:, 0]
        height = torch.full((rows, 1), robot.BASE_HEIGHT, device=self.device)
        zeros = torch.zeros_like(yaw)
        quaternion = torch.stack([torch.cos(yaw / 2), zeros, zeros, torch.sin(yaw / 2)], dim=-1)
        self.agent.robot.set_pose(Pose.create_from_pq(torch.cat([xy, height], -1), quaternion))
        self.settled_height[env_idx] = self.can.pose.p[env_idx, 2]
        self.lift.reset_rows(env_idx)

    def _drop_can(self, env_idx: torch.Tensor, options: dict[str, Any]) -> None:
        """Upstream's settling: drop with x/y rotation locked, release, wait until still."""
        rows = len(env_idx)
        if "obj_init_xy" in options:
            xy = _rows(options["obj_init_xy"], rows, 2, self.device)
        else:
            drawn = self._batched_episode_rng[env_idx].uniform(OBJ_XY_LOW, OBJ_XY_HIGH, size=(2,))
            xy = torch.as_tensor(np.asarray(drawn, np.float32), device=self.device)
        z = torch.full((rows, 1), TABLE_HEIGHT + DROP_HEIGHT, device=self.device)
        quaternion = torch.tensor(
            orientation_quaternion(options.get("orientation", self.orientation)),
            device=self.device,
        ).expand(rows, -1)
        self.can.set_pose(Pose.create_from_pq(torch.cat([xy, z], -1), quaternion))
        self.can.set_linear_velocity(torch.zeros(rows, 3, device=self.device))
        self.can.set_angular_velocity(torch.zeros(rows, 3, device=self.device))
        self.can.set_locked_motion_axes([False, False, False, True, True, False])
        self._settle(SETTLE_SECONDS[0])
        self.can.set_locked_motion_axes([False] * 6)
        self.can.set_pose(self.can.pose)
        self.can.set_linear_velocity(torch.zeros(rows, 3, device=self.device))
        self.can.set_angular_velocity(torch.zeros(rows, 3, device=self.device))
        self._settle(SETTLE_SECONDS[1])
        linear = self.can.linear_velocity.norm(dim=-1).max().item()
        angular = self.can.angular_velocity.norm(dim=-1).max().item()
        if linear > STILL_LINEAR or angular > STILL_ANGULAR:
            self._settle(EXTRA_SETTLE_SECONDS)

    def _settle(self, seconds: float) -> None:
        """Step physics alone for `seconds` (upstream: int(sim_freq * seconds) substeps)."""
        for _ in range(int(self.sim_freq * seconds)):
            if self.gpu_sim_enabled:
                self.scene._gpu_apply_all()
            self.scene.step()
            if self.gpu_sim_enabled:
                self.scene._gpu_fetch_all()

    # ---- success --------------------------------------------------------------------------

    def is_grasped(self) -> torch.Tensor:
        """Upstream's `check_grasp(obj, max_angle=80)`, per env row."""
        links = self.agent.robot.links_map
        holds = []
        for side in ("left", "right"):
            finger, tip = links[f"link_finger_{side}"], links[f"link_finger_tip_{side}"]
            holds.append(
                lift_success.side_holds(
                    _opening(finger),
                    self.scene.get_pairwise_contact_impulses(finger, self.can),
                    _opening(tip),
                    self.scene.get_pairwise_contact_impulses(tip, self.can),
                )
            )
        return (holds[0] & holds[1]).to(self.device)

    def touches_other_than_robot(self) -> torch.Tensor:
        """The can pushes on the stage or the floor (the scene's only non-robot actors)."""
        total = torch.zeros(self.num_envs, device=self.device)
        for other in (self.arena, self.scene.actors["ground"]):
            total = total + self.scene.get_pairwise_contact_impulses(self.can, other).norm(dim=-1)
        return total > lift_success.MIN_IMPULSE

    def evaluate(self) -> dict[str, Any]:
        gain = self.can.pose.p[:, 2] - self.settled_height
        return lift_success.evaluate_lift(
            self.lift, self.is_grasped(), self.touches_other_than_robot().to(self.device), gain
        )

    # ---- observations ---------------------------------------------------------------------

    def composited_rgb(self, sensor_data: dict[str, Any]) -> torch.Tensor:
        """The overhead camera's image per env row, background replaced by the photo."""
        if self.overlay_image is None:
            raise HarnessError("this coke can env has no overlay image", "pass overlay=<path>")
        camera = sensor_data[robot.CAMERA_UID]
        if "segmentation" not in camera:
            raise HarnessError(
                "the green screen needs segmentation",
                'make the env with obs_mode="rgb+segmentation"',
            )
        return composite(
            camera["rgb"],
            camera["segmentation"],
            self.kept_segmentation_ids,
            torch.from_numpy(self.overlay_image),
        )

    def _get_obs_sensor_data(self, apply_texture_transforms: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = super()._get_obs_sensor_data(apply_texture_transforms)
        camera = data.get(robot.CAMERA_UID, {})
        if self.green_screen and "rgb" in camera and "segmentation" in camera:
            camera["rgb"] = self.composited_rgb(data)
        return data


def _opening(link: Any) -> torch.Tensor:
    """The link's y axis in the world: upstream's direction that opens the gripper."""
    matrix: torch.Tensor = link.pose.to_transformation_matrix()
    return matrix[..., :3, 1]


def _rows(value: Any, rows: int, width: int, device: torch.device | str) -> torch.Tensor:
    """An option given once or per env row as a (rows, width) float tensor."""
    tensor = torch.as_tensor(np.asarray(value, dtype=np.float32), device=device)
    tensor = tensor.reshape(-1, width)
    if tensor.shape[0] == 1:
        tensor = tensor.expand(rows, -1)
    if tensor.shape[0] != rows:
        raise HarnessError(
            f"reset option has {tensor.shape[0]} rows for {rows} envs", "give one row per env"
        )
    return tensor
