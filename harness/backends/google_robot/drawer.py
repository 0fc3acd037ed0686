"""SimplerEnv's open / close drawer tasks as ManiSkill3 twins, and the cabinet scene they share
with the apple-in-drawer task.

Upstream facts (ManiSkill2_real2sim envs/custom_scenes/open_drawer_in_scene.py and base_env.py;
SimplerEnv scripts/drawer_visual_matching.sh, drawer_variant_agg.sh):
- the cabinet `custom/<station>.urdf`, root fixed at (-0.295, 0, 0.017), identity rotation;
  every drawer joint gets friction 0.05 and a drive with stiffness 0 and damping 1; drawer
  `<d>` is link `<d>_drawer` on prismatic joint `<d>_drawer_joint` (d: top, middle, bottom);
- the drawer starts closed (all joints 0); the close task sets its drawer's joint to 0.2;
  success: open qpos >= 0.15, close qpos <= 0.05; instruction "open|close <d> drawer";
  113 steps;
- the scene's stage is visual only (`_load_arena_helper(add_collision=False)`) and there is no
  floor: "dummy_drawer" is a white 20 x 20 m box of half height 0.017; a Habitat stage is
  posed with wxyz (0.707, 0.707, 0, 0), modern_bedroom* / modern_office* first moved by their
  own pose; the arena sits at minus the offset (-1.6616, -3.0337, 0);
- visual matching (prepackaged config): scene dummy_drawer, station mk_station_recolor,
  light mode "simple" (ambient 1, one light along (-cos 75deg, 0, -sin 75deg) of colour 1),
  disable_bad_material (no robot material override), 9 robot poses each with its own photo
  real_inpainting/open_drawer_<pose>.png; the photo replaces every pixel that is neither the
  robot nor a cabinet link;
- variant aggregation: station mk_station, legacy lights (ambient 0.3; (-0.2, 0, -1) of colour
  1, 0.5 (darker) or 2 (brighter) with a shadow of scale 5 and map size 2048; (-1, 1, -0.05)
  and (-1, -1, -0.05) of colour 0.5), robot x in linspace(0.65, 0.85, 3) (outer loop) x y in
  linspace(-0.2, 0.2, 3), yaw 0, no photo.
Known difference: upstream renders the drawer scenes with ray tracing (shader_dir "rt"); this
twin uses the camera's default shader (the CPU renderer cannot run "rt": no denoiser).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sapien
import torch
from mani_skill.utils.registration import register_env
from mani_skill.utils.sapien_utils import set_articulation_render_material
from mani_skill.utils.structs.articulation import Articulation
from mani_skill.utils.structs.link import Link
from mani_skill.utils.structs.pose import Pose

from refinevla_bench.harness.backends.google_robot.scene import (
    ASSET_FIX,
    STAGE_QUATERNION,
    STAGES_DIR,
    GoogleRobotScene,
)
from refinevla_bench.harness.errors import HarnessError

OPEN_ENV_ID = "RefineVLAGoogleOpenDrawer-v0"
CLOSE_ENV_ID = "RefineVLAGoogleCloseDrawer-v0"
MAX_EPISODE_STEPS = 113
DRAWERS = ("top", "middle", "bottom")
CABINET_POSITION = (-0.295, 0.0, 0.017)
JOINT_FRICTION = 0.05
JOINT_DAMPING = 1.0
OPEN_SUCCESS = 0.15
CLOSE_SUCCESS = 0.05
CLOSE_INITIAL_QPOS = 0.2

DUMMY_SCENE = "dummy_drawer"
DUMMY_FLOOR_HALF_SIZE = (10.0, 10.0, 0.017)
STAGE_OFFSET = (-1.6616, -3.0337, 0.0)  # the arena sits at minus this
# (substring of the scene name, position, wxyz) applied before the y-up turn
ROOM_POSES: tuple[
    tuple[str, tuple[float, float, float], tuple[float, float, float, float]], ...
] = (
    ("modern_bedroom", (0.178, -2.235, 1.669), (0.007, 0.0, 0.0, -1.0)),
    ("modern_office", (-0.192, -1.728, 1.48), (0.709, 0.0, 0.0, -0.705)),
)

OVERLAY_POSES: dict[str, tuple[float, float, float]] = {  # x, y, yaw added to pi
    "a0": (0.644, -0.179, -0.03),
    "a1": (0.765, -0.182, -0.02),
    "a2": (0.889, -0.203, -0.06),
    "b0": (0.652, 0.009, 0.0),
    "b1": (0.752, 0.009, 0.0),
    "b2": (0.851, 0.035, 0.0),
    "c0": (0.665, 0.224, 0.0),
    "c1": (0.765, 0.222, -0.025),
    "c2": (0.865, 0.222, -0.025),
}
VA_ROBOT_X = (0.65, 0.85)
VA_ROBOT_Y = (-0.2, 0.2)
GRID_STEPS = 3
SIMPLE_LIGHT_ANGLE = math.radians(75.0)
LEGACY_LIGHT_COLOURS = {"default": 1.0, "darker": 0.5, "brighter": 2.0}
LIGHTINGS = ("simple", *LEGACY_LIGHT_COLOURS)


def overlay_path(pose: str) -> str:
    return f"real_inpainting/open_drawer_{pose}.png"


@dataclass(frozen=True)
class Setting:
    """What a robot grid implies unless the constructor says otherwise: upstream's
    visual-matching config for the photo poses, its defaults for variant aggregation."""

    station: str
    lighting: str
    scene_name: str
    overlay: str | None
    robot_render_material: bool


SETTINGS = {
    "overlay_poses": Setting(
        "mk_station_recolor", "simple", DUMMY_SCENE, overlay_path("a0"), False
    ),
    "va_grid": Setting("mk_station", "default", "frl_apartment_stage_simple", None, True),
}


def setting(robot_grid: str) -> Setting:
    if robot_grid not in SETTINGS:
        raise HarnessError(
            f"unknown robot grid {robot_grid!r}", f"use one of {', '.join(SETTINGS)}"
        )
    return SETTINGS[robot_grid]


def pose_options(pose: str) -> dict[str, Any]:
    """The reset options of one visual-matching robot pose: place, yaw and photo."""
    x, y, yaw = OVERLAY_POSES[pose]
    return {"robot_init_xy": (x, y), "robot_init_yaw": yaw, "overlay": overlay_path(pose)}


def robot_options(x: float, y: float) -> dict[str, Any]:
    return {"robot_init_xy": (x, y), "robot_init_yaw": 0.0}


def linspace(bounds: tuple[float, float]) -> list[float]:
    return [float(value) for value in np.linspace(bounds[0], bounds[1], GRID_STEPS)]


def check_episode(episode_id: int, size: int, task: str) -> None:
    if not 0 <= episode_id < size:
        raise HarnessError(
            f"{task} has episodes 0..{size - 1}, not {episode_id}", "use an episode id of the grid"
        )


def drawer_grid(robot_grid: str, episode_id: int) -> dict[str, Any]:
    """Robot pose of an episode: the 9 photo poses a0..c2, or the 3 x 3 variant-aggregation
    grid (x outer, y inner, as upstream's evaluator loops)."""
    setting(robot_grid)
    check_episode(episode_id, len(OVERLAY_POSES), "the drawer tasks")
    if robot_grid == "overlay_poses":
        return pose_options(list(OVERLAY_POSES)[episode_id])
    xs, ys = linspace(VA_ROBOT_X), linspace(VA_ROBOT_Y)
    return robot_options(xs[episode_id // GRID_STEPS], ys[episode_id % GRID_STEPS])


def add_lights(scene: Any, lighting: str) -> None:
    """Upstream's drawer lighting: "simple" (visual matching) or the legacy setup."""
    if lighting == "simple":
        scene.set_ambient_light([1.0, 1.0, 1.0])
        direction = [-math.cos(SIMPLE_LIGHT_ANGLE), 0.0, -math.sin(SIMPLE_LIGHT_ANGLE)]
        scene.add_directional_light(direction, [1.0, 1.0, 1.0])
        return
    colour = LEGACY_LIGHT_COLOURS[lighting]
    scene.set_ambient_light([0.3, 0.3, 0.3])
    scene.add_directional_light(
        [-0.2, 0.0, -1.0], [colour] * 3, shadow=True, shadow_scale=5, shadow_map_size=2048
    )
    scene.add_directional_light([-1.0, 1.0, -0.05], [0.5] * 3)
    scene.add_directional_light([-1.0, -1.0, -0.05], [0.5] * 3)


def stage_pose(scene_name: str) -> sapien.Pose:
    """The stage mesh's pose in the arena: the y-up turn, after the room's own pose."""
    turn = sapien.Pose(q=list(STAGE_QUATERNION))
    for key, position, quaternion in ROOM_POSES:
        if key in scene_name:
            return sapien.Pose(list(position), list(quaternion)) * turn
    return turn


def require_meshes(builder: Any) -> None:
    """Every mesh the cabinet URDF names, or a one-line error (a copy lacking upstream's gets
    a flagged box from `assets fetch --from`)."""
    for link in builder.link_builders:
        for record in link.visual_records:
            if record.type == "file" and not Path(record.filename).is_file():
                raise HarnessError(f"missing cabinet mesh {record.filename}", ASSET_FIX)


def handle_offset(link: Link) -> list[float]:
    """The handle's grip point in the drawer link's frame: the centre of the handle visual
    that sticks out farthest along the opening axis (the link's x: the bar, not its stems)."""
    body = link._objs[0].entity.find_component_by_type(sapien.render.RenderBodyComponent)
    handles = [shape for shape in body.render_shapes if shape.name.startswith("handle")]
    if not handles:
        raise HarnessError(
            f"drawer link {link.name} has no handle visual", "use one of upstream's mk_station*"
        )
    return [float(v) for v in max(handles, key=lambda shape: shape.local_pose.p[0]).local_pose.p]


class CabinetScene(GoogleRobotScene):
    """The Google Robot before upstream's cabinet. `drawer` picks the task's drawer,
    `robot_grid` the episode grid ("overlay_poses": visual matching, "va_grid": variant
    aggregation) and with it the defaults of `station`, `lighting`, `scene_name`, `overlay`
    and `robot_render_material` (see `SETTINGS`)."""

    def __init__(
        self,
        *args: Any,
        drawer: str = "top",
        robot_grid: str = "overlay_poses",
        station: str | None = None,
        lighting: str | None = None,
        scene_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if drawer not in DRAWERS:
            raise HarnessError(f"unknown drawer {drawer!r}", f"use one of {', '.join(DRAWERS)}")
        defaults = setting(robot_grid)
        self.drawer = drawer
        self.robot_grid = robot_grid
        self.lighting = lighting or defaults.lighting
        if self.lighting not in LIGHTINGS:
            raise HarnessError(
                f"unknown drawer lighting {self.lighting!r}", f"use one of {', '.join(LIGHTINGS)}"
            )
        self.station = station or defaults.station
        self.stage_name = scene_name or defaults.scene_name
        kwargs.setdefault("overlay", defaults.overlay)
        kwargs.setdefault("robot_render_material", defaults.robot_render_material)
        first = self.episode_options(0)
        kwargs.setdefault("robot_xy", first["robot_init_xy"])
        kwargs.setdefault("robot_yaw", first["robot_init_yaw"])
        super().__init__(*args, **kwargs)  # the base loads no stage: this scene's has no collision

    # ---- building -------------------------------------------------------------------------

    def _load_scene(self, options: dict[str, Any]) -> None:
        if self.robot_render_material:
            for articulation in self.agent.robot._objs:
                set_articulation_render_material(articulation, specular=0.9, roughness=0.3)
        self.arena = self._build_arena()
        self.cabinet = self._build_cabinet()

    def _build_arena(self) -> Any:
        builder = self.scene.create_actor_builder()
        if self.stage_name == DUMMY_SCENE:
            white = sapien.render.RenderMaterial(base_color=[1.0, 1.0, 1.0, 1.0])
            builder.add_box_visual(half_size=DUMMY_FLOOR_HALF_SIZE, material=white)
        else:
            path = self.require_file(STAGES_DIR / f"{self.stage_name}.glb")
            builder.add_visual_from_file(str(path), pose=stage_pose(self.stage_name))
        builder.initial_pose = sapien.Pose(p=[-value for value in STAGE_OFFSET])
        return builder.build_static(name="arena")

    def _build_cabinet(self) -> Articulation:
        loader = self.scene.create_urdf_loader()
        loader.fix_root_link = True
        loader.name = "cabinet"
        parsed = loader.parse(str(self.require_file(f"custom/{self.station}.urdf")))
        builder = parsed["articulation_builders"][0]
        require_meshes(builder)
        builder.initial_pose = sapien.Pose(p=list(CABINET_POSITION))
        cabinet: Articulation = builder.build(name="cabinet")
        for joint in cabinet.active_joints:
            joint.set_friction(JOINT_FRICTION)
            joint.set_drive_properties(stiffness=0.0, damping=JOINT_DAMPING)
        return cabinet

    def _load_lighting(self, options: dict[str, Any]) -> None:
        add_lights(self.scene, self.lighting)

    def task_actors(self) -> Sequence[Any]:
        return list(self.cabinet.links)

    def _after_reconfigure(self, options: dict[str, Any]) -> None:
        super()._after_reconfigure(options)
        names = [joint.name for joint in self.cabinet.active_joints]
        self.joint_index = names.index(f"{self.drawer}_drawer_joint")
        self.drawer_joint = self.cabinet.active_joints[self.joint_index]
        self.drawer_link: Link = self.cabinet.links_map[f"{self.drawer}_drawer"]
        self.handle_local = handle_offset(self.drawer_link)

    # ---- episodes -------------------------------------------------------------------------

    def episode_options(self, episode_id: int) -> dict[str, Any]:
        return drawer_grid(self.robot_grid, episode_id)

    def set_drawer(self, env_idx: torch.Tensor, qpos: float) -> None:
        """Every drawer of the reset rows closed, the task's drawer at `qpos`, all at rest."""
        joints = torch.zeros(len(env_idx), len(self.cabinet.active_joints), device=self.device)
        joints[:, self.joint_index] = qpos
        self.cabinet.set_qpos(joints)
        self.cabinet.set_qvel(torch.zeros_like(joints))

    # ---- what the harness reads -----------------------------------------------------------

    def drawer_qpos(self) -> torch.Tensor:
        """(N,) the task drawer's joint position (m, 0 = closed)."""
        qpos: torch.Tensor = self.cabinet.get_qpos()[:, self.joint_index]
        return qpos

    def privileged_state(self) -> dict[str, torch.Tensor]:
        """Adds the task drawer's qpos, handle grip point and opening direction (a prismatic
        joint moves along its frame's x axis), in the robot-base frame."""
        offset = torch.tensor([self.handle_local], device=self.device)
        handle = self.in_base_frame(self.drawer_link.pose * Pose.create_from_pq(p=offset))
        base = self.agent.robot.pose.to_transformation_matrix()[:, :3, :3]
        opening = self.drawer_joint.global_pose.to_transformation_matrix()[:, :3, 0]
        return {
            **super().privileged_state(),
            "drawer_qpos": self.drawer_qpos(),
            "handle_pose": torch.cat([handle.p, handle.q], dim=-1),
            "drawer_axis": torch.einsum("nji,nj->ni", base, opening),
        }


class DrawerTask(CabinetScene):
    """Open or close one drawer: the drawer starts at `INITIAL_QPOS`; success is reading
    past `THRESHOLD` (open: at least, close: at most)."""

    ACTION = "open"
    INITIAL_QPOS = 0.0
    THRESHOLD = OPEN_SUCCESS

    def get_language_instruction(self) -> list[str]:
        return [f"{self.ACTION} {self.drawer} drawer"] * self.num_envs

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict[str, Any]) -> None:
        row_options = self.row_options(options, len(env_idx))
        self.set_row_overlays(env_idx, row_options)
        self.set_drawer(env_idx, self.INITIAL_QPOS)
        self.place_robot(env_idx, row_options)

    def succeeded(self, qpos: torch.Tensor) -> torch.Tensor:
        return qpos >= self.THRESHOLD

    def evaluate(self) -> dict[str, Any]:
        qpos = self.drawer_qpos()
        return {
            "success": self.succeeded(qpos),
            "qpos": qpos,
            "is_grasped": torch.zeros(self.num_envs, dtype=torch.bool, device=self.device),
        }


@register_env(OPEN_ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class GoogleOpenDrawer(DrawerTask):
    """Open the `drawer` (top, middle, bottom) of the closed cabinet."""


@register_env(CLOSE_ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class GoogleCloseDrawer(DrawerTask):
    """Close the `drawer`, which starts 0.2 m open."""

    ACTION = "close"
    INITIAL_QPOS = CLOSE_INITIAL_QPOS
    THRESHOLD = CLOSE_SUCCESS

    def succeeded(self, qpos: torch.Tensor) -> torch.Tensor:
        return qpos <= self.THRESHOLD
