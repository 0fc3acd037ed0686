"""The distractor objects of upstream's GraspSingleOpenedCokeCanDistractorInScene-v0.

Upstream facts (ManiSkill2_real2sim envs/custom_scenes/grasp_single_in_scene.py; SimplerEnv
scripts/pick_coke_can_variant_agg.sh runs `distractor_config` "less" (its default) and "more"):
- "less" (here "default"): opened_pepsi_can, apple, sponge, orange; "more": opened_7up_can,
  opened_sprite_can, sponge, orange, opened_fanta_can, bridge_spoon_generated_modified; models
  of custom/info_pick_custom_v0.json with their database density, friction 0.5 / 0.5,
  restitution 0 and no damping (only the target object gets 0.1);
- placed once the can has settled (its lift reference is taken before): each one's xy is the
  can's xy plus uniform(-0.3, 0.3) per axis, clipped to [-0.50, -0.10] x [0.05, 0.35], drawn
  again until it lies more than 0.25 m from the can (the distractors are not checked against
  each other); it starts 0.5 m above the table with the can's orientation quaternion;
- one after another: posed at rest with x/y translation and x/y rotation locked, then 0.5 s of
  physics; then one after another unlocked at rest, 0.5 s each; 1.5 s more if their summed
  speeds exceed 1e-3 m/s or 1e-2 rad/s (`settling.drop_one_by_one`).
Where no position qualifies (a can at (-0.30, 0.20), the clip box's centre: its corners are
0.25 m away) upstream draws forever; here the draw gives up after MAX_DRAWS tries (over the
can grid at least 9 % of draws qualify).
Upstream's evaluation builds a fresh env per episode and resets it without a seed, so its
distractor positions are unseeded draws; here each row's seeded episode generator draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sapien
import torch
from mani_skill.utils.structs.actor import Actor
from mani_skill.utils.structs.pose import Pose

from refinevla_bench.harness.backends.google_robot import objects, settling
from refinevla_bench.harness.errors import HarnessError

MODEL_DB = "info_pick_custom_v0.json"
SETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "default": ("opened_pepsi_can", "apple", "sponge", "orange"),
    "more": (
        "opened_7up_can",
        "opened_sprite_can",
        "sponge",
        "orange",
        "opened_fanta_can",
        "bridge_spoon_generated_modified",
    ),
}
FRICTION = 0.5
SPREAD = 0.3
XY_LOW = (-0.50, 0.05)
XY_HIGH = (-0.10, 0.35)
MIN_DISTANCE = 0.25
MAX_DRAWS = 10_000
PARKED = (10.0, 0.0, 1.0)  # where distractors wait, frozen, while the can settles


def model_ids(config: str) -> tuple[str, ...]:
    if config not in SETS:
        raise HarnessError(f"unknown distractor set {config!r}", f"use one of {', '.join(SETS)}")
    return SETS[config]


def build(scene: Any, data_dir: Path, config: str) -> list[Actor]:
    """The set's actors, named by model id as upstream names them."""
    actors = []
    for model_id in model_ids(config):
        info = objects.model_info(data_dir, MODEL_DB, model_id)
        actors.append(
            objects.build_model(
                scene,
                data_dir,
                info,
                name=model_id,
                friction=FRICTION,
                damping=0.0,
                initial_pose=sapien.Pose(p=list(PARKED)),
            )
        )
    return actors


def draw_xy(rng: np.random.RandomState, can_xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One distractor's xy by upstream's rule: near the can, clipped, not too near."""
    for _ in range(MAX_DRAWS):
        xy = np.clip(can_xy + rng.uniform(-SPREAD, SPREAD, 2), XY_LOW, XY_HIGH)
        if np.linalg.norm(xy - can_xy) > MIN_DISTANCE:
            return xy
    raise HarnessError(
        f"no distractor position lies more than {MIN_DISTANCE} m from a can at "
        f"{np.round(can_xy, 3).tolist()}",
        "put the can elsewhere or reset without distractors",
    )


def park(actors: Sequence[Actor], rows: int, device: torch.device) -> None:
    """Freeze the distractors far away so the can settles alone (1 m apart)."""
    for index, actor in enumerate(actors):
        where = torch.tensor([PARKED[0], PARKED[1] + index, PARKED[2]], device=device)
        actor.set_pose(Pose.create_from_pq(where.expand(rows, -1)))
        settling.at_rest(actor, rows, device)
        actor.set_locked_motion_axes([True] * 6)
