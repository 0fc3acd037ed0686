"""SimplerEnv's Google Robot suites on this project's own ManiSkill3 twins.

Facts from the SimplerEnv protocol and upstream's scripts (simpler-env/SimplerEnv scripts/
*_visual_matching.sh, *_variant_agg.sh): 3 Hz control, the 640x512 `overhead_camera`,
axis-angle rotation and a relative gripper (+1 close).

- `google_robot_vm` (visual matching): every task averages the 4 robot-arm textures (URDF
  versions), each over the task's grid with the real photo composited behind the scene;
- `google_robot_va` (variant aggregation): every task averages its scene variants
  (backgrounds, lighting, distractors, table textures, cabinets), unweighted. The coke can's
  two camera variants are tasks of their own that run only when named: upstream runs them
  but leaves them out of the mean.

Episode `i` of a task runs in variant `i % V` as that variant's grid entry `i // V`, so the
first episodes of a task already cover every variant.
"""

from __future__ import annotations

from typing import Any

from refinevla_bench.harness.suites.spec import CameraSpec, EnvVariant, SuiteSpec, TaskSpec
from refinevla_bench.policies.protocol import PolicyConventions

TWINS_MODULE = "refinevla_bench.harness.backends.google_robot.tasks"
CAMERA = CameraSpec(name="overhead_camera", width=640, height=512)
CONTROL_HZ = 3.0
CONTROLLER = PolicyConventions(rotation="axis_angle", gripper="relative")

COKE_CAN_ENV = "RefineVLAGooglePickCokeCan-v0"
MOVE_NEAR_ENV = "RefineVLAGoogleMoveNear-v0"
OPEN_DRAWER_ENV = "RefineVLAGoogleOpenDrawer-v0"
CLOSE_DRAWER_ENV = "RefineVLAGoogleCloseDrawer-v0"
APPLE_ENV = "RefineVLAGooglePlaceAppleInClosedTopDrawer-v0"

ORIENTATIONS = ("horizontal", "vertical", "standing")
DRAWERS = ("top", "middle", "bottom")
# grid sizes of one variant: can positions, move-near layouts, robot poses (x drawers),
# robot poses x apple positions
COKE_CAN_GRID = 25
MOVE_NEAR_GRID = 60
DRAWER_GRID = 9
APPLE_GRID = 27

URDF_VERSIONS: tuple[tuple[str, str | None], ...] = (
    ("default", None),
    ("recolor_tabletop_visual_matching_1", "recolor_tabletop_visual_matching_1"),
    ("recolor_tabletop_visual_matching_2", "recolor_tabletop_visual_matching_2"),
    ("recolor_cabinet_visual_matching_1", "recolor_cabinet_visual_matching_1"),
)


def variant(name: str, **options: Any) -> EnvVariant:
    return EnvVariant(name, tuple(sorted(options.items())))


def urdf_variants(**options: Any) -> tuple[EnvVariant, ...]:
    """Visual matching: the task's options on each of the 4 arm textures."""
    return tuple(variant(name, urdf_version=urdf, **options) for name, urdf in URDF_VERSIONS)


def _grid(variants: tuple[EnvVariant, ...], per_variant: int) -> tuple[int, ...]:
    return tuple(range(len(variants) * per_variant))


def coke_can_task(orientation: str, variants: tuple[EnvVariant, ...], **extra: Any) -> TaskSpec:
    oriented = tuple(
        EnvVariant(v.name, tuple(sorted({**v.kwargs, "orientation": orientation}.items())))
        for v in variants
    )
    return TaskSpec(
        name=extra.pop("name", f"pick_coke_can_{orientation}"),
        title=f"Pick Coke Can ({orientation})",
        env_id=COKE_CAN_ENV,
        instruction="pick coke can",
        max_steps=80,
        episode_ids=_grid(oriented, COKE_CAN_GRID),
        grasp_info_key="is_grasped",
        source_object="coke can",
        variants=oriented,
        family=extra.pop("family", "pick_coke_can"),
        **extra,
    )


def move_near_task(variants: tuple[EnvVariant, ...]) -> TaskSpec:
    return TaskSpec(
        name="move_near",
        title="Move Near",
        env_id=MOVE_NEAR_ENV,
        instruction="move {source} near {target}",
        max_steps=80,
        episode_ids=_grid(variants, MOVE_NEAR_GRID),
        grasp_info_key="is_grasped",
        variants=variants,
        family="move_near",
    )


def drawer_task(action: str, drawer: str, variants: tuple[EnvVariant, ...]) -> TaskSpec:
    with_drawer = tuple(
        EnvVariant(v.name, tuple(sorted({**v.kwargs, "drawer": drawer}.items()))) for v in variants
    )
    return TaskSpec(
        name=f"{action}_drawer_{drawer}",
        title=f"{action.capitalize()} {drawer.capitalize()} Drawer",
        env_id=OPEN_DRAWER_ENV if action == "open" else CLOSE_DRAWER_ENV,
        instruction=f"{action} {drawer} drawer",
        max_steps=113,
        episode_ids=_grid(with_drawer, DRAWER_GRID),
        grasp_info_key="is_grasped",
        variants=with_drawer,
        family="drawer",
    )


def apple_task(variants: tuple[EnvVariant, ...]) -> TaskSpec:
    return TaskSpec(
        name="put_apple_in_drawer",
        title="Put Apple into Closed Top Drawer",
        env_id=APPLE_ENV,
        instruction="open top drawer; then: place apple into top drawer",
        max_steps=200,
        episode_ids=_grid(variants, APPLE_GRID),
        grasp_info_key="is_grasped",
        source_object="apple",
        target_object="top drawer",
        variants=variants,
        family="apple_in_drawer",
    )


def _suite(name: str, description: str, tasks: tuple[TaskSpec, ...]) -> SuiteSpec:
    return SuiteSpec(
        name=name,
        description=description,
        backend="maniskill3",
        asset_suite="google_robot",
        camera=CAMERA,
        control_hz=CONTROL_HZ,
        controller=CONTROLLER,
        robot="google_robot",
        tasks=tasks,
        twins_module=TWINS_MODULE,
        default_seeds=(0,),
    )


# ---- visual matching --------------------------------------------------------------------------

VM_DRAWER_OPTIONS: dict[str, Any] = {"robot_grid": "overlay_poses"}

GOOGLE_ROBOT_VM = _suite(
    "google_robot_vm",
    "SimplerEnv Google Robot visual matching (4 arm textures; coke can x3, move near, "
    "drawers x6, apple in drawer)",
    (
        *(coke_can_task(orientation, urdf_variants()) for orientation in ORIENTATIONS),
        move_near_task(urdf_variants()),
        *(
            drawer_task(action, drawer, urdf_variants(**VM_DRAWER_OPTIONS))
            for action in ("open", "close")
            for drawer in DRAWERS
        ),
        apple_task(urdf_variants(**VM_DRAWER_OPTIONS)),
    ),
)

# ---- variant aggregation ----------------------------------------------------------------------

_NO_OVERLAY: dict[str, Any] = {"overlay": None}
COUNTER = "google_pick_coke_can_1_v4"
APARTMENT = "frl_apartment_stage_simple"


def counter_variants(
    common: dict[str, Any], extra: tuple[EnvVariant, ...]
) -> tuple[EnvVariant, ...]:
    """The variants coke can and move near share (their scene is the same counter), each
    with `common` options and without the photo, and the task's distractor variants `extra`."""
    shared = {**_NO_OVERLAY, **common}
    return (
        variant("base", **shared),
        variant("alt_background", scene_name=f"{COUNTER}_alt_background", **shared),
        variant("alt_background_2", scene_name=f"{COUNTER}_alt_background_2", **shared),
        variant("darker_lighting", lighting="darker", **shared),
        variant("brighter_lighting", lighting="brighter", **shared),
        *(EnvVariant(v.name, tuple(sorted({**shared, **v.kwargs}.items()))) for v in extra),
        *(
            variant(
                f"table_texture_{n}",
                scene_name=f"Baked_sc1_staging_objaverse_cabinet{n}_h870",
                **shared,
            )
            for n in (1, 2)
        ),
    )


COKE_CAN_VA = counter_variants(
    {},
    (
        variant("distractors", distractors="default"),
        variant("more_distractors", distractors="more"),
    ),
)
COKE_CAN_CAMERA_VA = (
    variant("alt_camera", camera="alt_1", **_NO_OVERLAY),
    variant("alt_camera_2", camera="alt_2", **_NO_OVERLAY),
)
# visual matching places the baked-texture models (upstream's BakedTex env), variant
# aggregation the plain ones
MOVE_NEAR_VA = counter_variants(
    {"baked_textures": False}, (variant("no_distractor", distractors=False),)
)
_DRAWER_VA: dict[str, Any] = {"robot_grid": "va_grid", **_NO_OVERLAY}
DRAWER_VA = (
    variant("base", scene_name=APARTMENT, **_DRAWER_VA),
    variant("modern_bedroom", scene_name="modern_bedroom_no_roof", **_DRAWER_VA),
    variant("modern_office", scene_name="modern_office_no_roof", **_DRAWER_VA),
    variant("brighter_lighting", scene_name=APARTMENT, lighting="brighter", **_DRAWER_VA),
    variant("darker_lighting", scene_name=APARTMENT, lighting="darker", **_DRAWER_VA),
    variant("mk_station2", scene_name=APARTMENT, station="mk_station2", **_DRAWER_VA),
    variant("mk_station3", scene_name=APARTMENT, station="mk_station3", **_DRAWER_VA),
)

GOOGLE_ROBOT_VA = _suite(
    "google_robot_va",
    "SimplerEnv Google Robot variant aggregation (backgrounds, lighting, distractors, table "
    "textures, cabinets; coke can camera variants run only when named)",
    (
        *(coke_can_task(orientation, COKE_CAN_VA) for orientation in ORIENTATIONS),
        move_near_task(MOVE_NEAR_VA),
        *(
            drawer_task(action, drawer, DRAWER_VA)
            for action in ("open", "close")
            for drawer in DRAWERS
        ),
        apple_task(DRAWER_VA),
        *(
            coke_can_task(
                orientation,
                COKE_CAN_CAMERA_VA,
                name=f"pick_coke_can_{orientation}_alt_camera",
                in_default_run=False,
                family="pick_coke_can_alt_camera",  # run, but outside the table (upstream)
            )
            for orientation in ORIENTATIONS
        ),
    ),
)
