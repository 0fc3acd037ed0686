"""Upstream's drop-and-settle of task objects (ManiSkill2_real2sim custom scenes).

Objects start 0.5 m above the 0.87 m table with their rotation about x and y locked, fall for
0.5 s, are released at rest where they landed and settle 0.5 s more, then 1.5 s more if the
summed speeds over the objects still exceed 1e-3 m/s or 1e-2 rad/s (the worst env row
decides). The robot waits far away meanwhile (`GoogleRobotScene.park_robot`). The coke can's
distractors fall one after another with x/y translation locked as well (`drop_one_by_one`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from mani_skill.utils.structs.actor import Actor
from mani_skill.utils.structs.pose import Pose

TABLE_HEIGHT = 0.87
DROP_HEIGHT = 0.5
SETTLE_SECONDS = 0.5
EXTRA_SETTLE_SECONDS = 1.5
STILL_LINEAR = 1e-3
STILL_ANGULAR = 1e-2
ROTATION_XY_LOCKED = (False, False, False, True, True, False)
TRANSLATION_AND_ROTATION_XY_LOCKED = (True, True, False, True, True, False)

Settle = Callable[[float], None]


def drop_height() -> float:
    return TABLE_HEIGHT + DROP_HEIGHT


def at_rest(actor: Actor, rows: int, device: torch.device | str) -> None:
    zeros = torch.zeros(rows, 3, device=device)
    actor.set_linear_velocity(zeros)
    actor.set_angular_velocity(zeros)


def _release(actors: Sequence[Actor], env_idx: torch.Tensor) -> None:
    """Unlock and hold each object still where it landed."""
    for actor in actors:
        actor.set_locked_motion_axes([False] * 6)
        actor.set_pose(Pose.create(actor.pose.raw_pose[env_idx]))
        at_rest(actor, len(env_idx), env_idx.device)


def _settle_while_moving(actors: Sequence[Actor], env_idx: torch.Tensor, settle: Settle) -> None:
    linear = torch.stack([a.linear_velocity[env_idx].norm(dim=-1) for a in actors]).sum(0)
    angular = torch.stack([a.angular_velocity[env_idx].norm(dim=-1) for a in actors]).sum(0)
    if linear.max().item() > STILL_LINEAR or angular.max().item() > STILL_ANGULAR:
        settle(EXTRA_SETTLE_SECONDS)


def drop_together(
    actors: Sequence[Actor],
    xys: Sequence[torch.Tensor],
    quaternions: Sequence[torch.Tensor],
    env_idx: torch.Tensor,
    settle: Settle,
) -> None:
    """Drop every actor at once from its (rows, 2) xy with its (rows, 4) wxyz quaternion."""
    rows = len(env_idx)
    z = torch.full((rows, 1), drop_height(), device=env_idx.device)
    for actor, xy, quaternion in zip(actors, xys, quaternions, strict=True):
        actor.set_pose(Pose.create_from_pq(torch.cat([xy, z], -1), quaternion))
        at_rest(actor, rows, env_idx.device)
        actor.set_locked_motion_axes(list(ROTATION_XY_LOCKED))
    settle(SETTLE_SECONDS)
    _release(actors, env_idx)
    settle(SETTLE_SECONDS)
    _settle_while_moving(actors, env_idx, settle)


def drop_one_by_one(
    actors: Sequence[Actor],
    xys: torch.Tensor,
    quaternion: torch.Tensor,
    env_idx: torch.Tensor,
    settle: Settle,
) -> None:
    """The coke can's distractors: each falls alone, locked in x/y, at `xys[:, k]`; then each
    is released and settles alone."""
    rows = len(env_idx)
    z = torch.full((rows, 1), drop_height(), device=env_idx.device)
    for index, actor in enumerate(actors):
        actor.set_pose(Pose.create_from_pq(torch.cat([xys[:, index], z], -1), quaternion))
        at_rest(actor, rows, env_idx.device)
        actor.set_locked_motion_axes(list(TRANSLATION_AND_ROTATION_XY_LOCKED))
        settle(SETTLE_SECONDS)
    for actor in actors:
        _release([actor], env_idx)
        settle(SETTLE_SECONDS)
    _settle_while_moving(actors, env_idx, settle)
