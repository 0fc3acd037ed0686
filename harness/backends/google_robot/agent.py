"""SimplerEnv's static-base Google Robot as a ManiSkill3 agent, with upstream's controllers.

Facts from upstream ManiSkill2_real2sim (agents/configs/google_robot/defaults.py,
agents/robots/googlerobot.py, envs/custom_scenes/base_env.py):
- the static base loads `google_robot_meta_sim_fix_wheel_fix_fingertip.urdf` (wheels fixed);
  visual matching swaps it for `..._<urdf_version>.urdf`, same kinematics, other textures;
- 11 active joints, upstream (SAPIEN 2) ordering them 7 arm, 2 fingers, head pan, head tilt;
  SAPIEN 3 orders them otherwise, so joint values are matched by name;
- the overhead camera on `link_camera`, 640x512, fx = fy = 425, cx = 320, cy = 256;
- the initial qpos and base height below (`_initialize_agent`, yaw pi: wxyz (0, 0, 0, 1));
- per-link friction materials (`urdf_config`), PD gains in `GOOGLE_ROBOT_CONTROL`.

ManiSkill3's own `googlerobot` agent loads the mobile-base URDF from its global ASSET_DIR and
has the "manual tuned" intrinsics (fx 425, fy 413.1, cx 305, cy 233), which SimplerEnv does
not use; this agent reads the URDF from the project's asset root instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import sapien
from mani_skill.agents.base_agent import BaseAgent
from mani_skill.agents.registration import register_agent
from mani_skill.sensors.camera import CameraConfig

from refinevla_bench.harness.backends.google_robot.controller import (
    CONTROL_MODE,
    GOOGLE_ROBOT_CONTROL,
    GoogleRobotController,
)
from refinevla_bench.harness.backends.google_robot_control import config
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.paths import assets_root, maniskill_asset_dir

AGENT_UID = "refinevla_google_robot"
ROBOT_DIR = Path("data/robots/googlerobot")
BASE_URDF_STEM = "google_robot_meta_sim_fix_wheel_fix_fingertip"
# None is upstream's default texture; the other three complete visual matching's average
VISUAL_MATCHING_URDF_VERSIONS: tuple[str | None, ...] = (
    None,
    "recolor_tabletop_visual_matching_1",
    "recolor_tabletop_visual_matching_2",
    "recolor_cabinet_visual_matching_1",
)
# other recolourings upstream ships (same kinematics), accepted but not part of the average
OTHER_URDF_VERSIONS = ("recolor_sim", "recolor_cabinet_visual_matching_gripper_only")

INITIAL_QPOS = (
    -0.2639457174606611,
    0.0831913360274175,
    0.5017611504652179,
    1.156859026208673,
    0.028583671314766423,
    1.592598203487462,
    -1.080652960128774,
    0.0,
    0.0,
    -0.00285961,
    0.7851361,
)
# upstream's (SAPIEN 2) joint order of INITIAL_QPOS; SAPIEN 3 orders active joints otherwise
UPSTREAM_JOINT_ORDER = (
    *config.ARM_JOINTS[:7],
    *config.GRIPPER_JOINTS,
    *config.ARM_JOINTS[7:],
)
BASE_HEIGHT = 0.06205 + 0.017  # base height + ground offset of upstream's default scene
BASE_QUATERNION = (0.0, 0.0, 0.0, 1.0)  # wxyz: the robot faces -x

CAMERA_UID = "overhead_camera"
CAMERA_WIDTH = 640
CAMERA_HEIGHT = 512
CAMERA_INTRINSIC = ((425.0, 0.0, 320.0), (0.0, 425.0, 256.0), (0.0, 0.0, 1.0))
# SAPIEN cameras look along +x; link_camera's frame follows the OpenCV convention
CAMERA_MOUNT_QUATERNION = (0.5, 0.5, -0.5, 0.5)
CAMERA_NEAR = 0.1
CAMERA_FAR = 10.0

_FINGER_PATCH = 0.1
_NAIL_PATCH = 0.01
URDF_CONFIG: dict[str, Any] = {
    "_materials": {
        "finger_mat": {"static_friction": 2.0, "dynamic_friction": 2.0, "restitution": 0.0},
        "finger_tip_mat": {"static_friction": 2.0, "dynamic_friction": 2.0, "restitution": 0.0},
        "finger_nail_mat": {"static_friction": 0.1, "dynamic_friction": 0.1, "restitution": 0.0},
        "base_mat": {"static_friction": 0.1, "dynamic_friction": 0.0, "restitution": 0.0},
        "wheel_mat": {"static_friction": 1.0, "dynamic_friction": 0.0, "restitution": 0.0},
    },
    "link": {
        "link_base": {"material": "base_mat", "patch_radius": 0.1, "min_patch_radius": 0.1},
        **{
            f"link_wheel_{side}": {
                "material": "wheel_mat",
                "patch_radius": 0.1,
                "min_patch_radius": 0.1,
            }
            for side in ("left", "right")
        },
        **{
            f"link_{part}_{side}": {
                "material": f"{part}_mat",
                "patch_radius": _NAIL_PATCH if part == "finger_nail" else _FINGER_PATCH,
                "min_patch_radius": _NAIL_PATCH if part == "finger_nail" else _FINGER_PATCH,
            }
            for part in ("finger", "finger_tip", "finger_nail")
            for side in ("left", "right")
        },
    },
}


def urdf_file_name(urdf_version: str | None) -> str:
    """Upstream's naming: the base URDF, or `<stem>_<urdf_version>.urdf`."""
    known = (*VISUAL_MATCHING_URDF_VERSIONS, *OTHER_URDF_VERSIONS)
    if urdf_version not in known:
        names = ", ".join(str(version) for version in known)
        raise HarnessError(f"unknown Google Robot urdf_version {urdf_version!r}", f"use {names}")
    suffix = "" if urdf_version is None else f"_{urdf_version}"
    return f"{BASE_URDF_STEM}{suffix}.urdf"


def urdf_path(urdf_version: str | None = None, root: Path | None = None) -> Path:
    """The URDF under the project's asset root (`root`, else $REFINEVLA_ASSETS or the cache)."""
    return maniskill_asset_dir(assets_root(root)) / ROBOT_DIR / urdf_file_name(urdf_version)


def initial_pose() -> sapien.Pose:
    """Upstream's base height and yaw, at xy (0, 0)."""
    return sapien.Pose([0.0, 0.0, BASE_HEIGHT], list(BASE_QUATERNION))


@register_agent()
class GoogleRobot(BaseAgent):  # type: ignore[misc]
    """The static-base Google Robot; pass `urdf` to pick a texture version or asset root."""

    uid = AGENT_UID
    urdf_config = URDF_CONFIG
    fix_root_link = True

    def __init__(self, *args: Any, urdf: Path | None = None, **kwargs: Any) -> None:
        path = urdf if urdf is not None else urdf_path()
        if not path.is_file():
            raise HarnessError(
                f"no Google Robot description at {path}",
                "refinevla-bench assets fetch --suite google_robot",
            )
        self.urdf_path = str(path)
        super().__init__(*args, **kwargs)

    @property
    def _controller_configs(self) -> dict[str, Any]:
        return {CONTROL_MODE: replace(GOOGLE_ROBOT_CONTROL, urdf=Path(self.urdf_path))}

    @property
    def _sensor_configs(self) -> list[CameraConfig]:
        return [
            CameraConfig(
                uid=CAMERA_UID,
                pose=sapien.Pose([0.0, 0.0, 0.0], list(CAMERA_MOUNT_QUATERNION)),
                width=CAMERA_WIDTH,
                height=CAMERA_HEIGHT,
                intrinsic=np.array(CAMERA_INTRINSIC),
                near=CAMERA_NEAR,
                far=CAMERA_FAR,
                entity_uid="link_camera",
            )
        ]

    def _after_init(self) -> None:
        names = tuple(joint.name for joint in self.robot.get_active_joints())
        if sorted(names) != sorted(UPSTREAM_JOINT_ORDER):
            raise RuntimeError(f"{self.urdf_path} has active joints {names}")
        self.active_joint_names = names
        self.tcp = self.robot.links_map[config.EE_LINK]

    def from_upstream_order(self, qpos: Sequence[float]) -> list[float]:
        """Upstream's qpos (UPSTREAM_JOINT_ORDER) in this articulation's active-joint order."""
        by_name = dict(zip(UPSTREAM_JOINT_ORDER, qpos, strict=True))
        return [by_name[name] for name in self.active_joint_names]

    @property
    def robot_controller(self) -> GoogleRobotController:
        controller = self.controller
        assert isinstance(controller, GoogleRobotController)
        return controller

    def reset(self, init_qpos: Any = None) -> None:
        """ManiSkill resets the agent while the scene's reset mask names the rows being reset,
        but resets controllers after clearing it: remember the rows for the controller."""
        super().reset(init_qpos)
        self.robot_controller.mark_reset(self.scene._reset_mask)
