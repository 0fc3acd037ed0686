"""SimplerEnv's WidowX (BridgeData V2) visual-matching suite on ManiSkill3's digital twins.

Facts from the SimplerEnv protocol: 5 Hz control, the 640x480 `3rd_view_camera`, 24 episodes
per task, 60 steps (120 for the eggplant), absolute gripper. ManiSkill3's controller reads the
rotation as intrinsic Euler XYZ rather than upstream's axis-angle; the harness converts.
"""

from __future__ import annotations

from refinevla_bench.harness.suites.spec import (
    CameraSpec,
    OrientationGrid,
    Quaternion,
    SuiteSpec,
    TaskSpec,
)
from refinevla_bench.policies.protocol import PolicyConventions

EPISODES_PER_TASK = 24
_GRID = tuple(range(EPISODES_PER_TASK))
_IDENTITY: Quaternion = (1.0, 0.0, 0.0, 0.0)

# Upstream places the eggplant at yaws 0, +pi/4, -pi/4 (8 positions x 3 = 24 episodes).
# ManiSkill3 instead uses 8 orientations sampled from real data (64 episodes), whose "+-45 deg"
# entries are really +29.6 and -18.4 deg of yaw. This mesh rests stably only rolled about its
# long axis (ManiSkill's "0 deg" pose: roll 112.18, pitch -7.84, yaw -14.02 deg, static xyz);
# at identity it rolls away while settling. The grid below is that resting pose with its yaw
# set to upstream's three values: quaternions of static-xyz (112.18, -7.84, yaw) degrees.
EGGPLANT_UPSTREAM_YAWS = OrientationGrid(
    orientations=(
        ((0.55658, 0.827978, -0.03813, 0.056723), _IDENTITY),  # yaw 0
        ((0.492506, 0.779544, 0.281625, 0.2654), _IDENTITY),  # yaw +pi/4
        ((0.53592, 0.75036, -0.352081, -0.160588), _IDENTITY),  # yaw -pi/4
    ),
    reason="upstream eggplant grid: 8 positions x yaws {0, +pi/4, -pi/4} on the resting pose",
)


WIDOWX = SuiteSpec(
    name="widowx",
    description="SimplerEnv WidowX / BridgeData V2 visual matching (4 tasks x 24 episodes)",
    backend="maniskill3",
    asset_suite="widowx",
    camera=CameraSpec(name="3rd_view_camera", width=640, height=480),
    control_hz=5.0,
    controller=PolicyConventions(rotation="euler_xyz", gripper="absolute"),
    robot="widowx",
    tasks=(
        TaskSpec(
            name="spoon_on_towel",
            title="Put Spoon on Towel",
            env_id="PutSpoonOnTableClothInScene-v1",
            instruction="put the spoon on the towel",
            source_object="spoon",
            target_object="towel",
            max_steps=60,
            episode_ids=_GRID,
        ),
        TaskSpec(
            name="carrot_on_plate",
            title="Put Carrot on Plate",
            env_id="PutCarrotOnPlateInScene-v1",
            instruction="put carrot on plate",
            source_object="carrot",
            target_object="plate",
            max_steps=60,
            episode_ids=_GRID,
        ),
        TaskSpec(
            name="stack_block",
            title="Stack Green Block on Yellow Block",
            env_id="StackGreenCubeOnYellowCubeBakedTexInScene-v1",
            instruction="stack the green block on the yellow block",
            source_object="green block",
            target_object="yellow block",
            max_steps=60,
            episode_ids=_GRID,
        ),
        TaskSpec(
            name="eggplant_in_basket",
            title="Put Eggplant in Basket",
            env_id="PutEggplantInBasketScene-v1",
            instruction="put eggplant into yellow basket",
            source_object="eggplant",
            target_object="yellow basket",
            max_steps=120,
            episode_ids=_GRID,
            orientation_grid=EGGPLANT_UPSTREAM_YAWS,
        ),
    ),
)
