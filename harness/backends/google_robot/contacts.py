"""Contact questions the Google Robot tasks ask: is the object grasped, what does it touch.

Upstream facts (ManiSkill2_real2sim agents/robots/googlerobot.py `check_grasp`): on each side
(left, right) the finger or finger-tip link touches the object with an impulse of at least
1e-6, and the angle between that impulse and the link's opening direction (its y axis) is at
most 80 degrees (a zero impulse counts as 90 degrees); grasped = both sides hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

MIN_IMPULSE = 1e-6
MAX_GRASP_ANGLE = math.radians(80.0)


def impulse_angle(opening: torch.Tensor, impulse: torch.Tensor) -> torch.Tensor:
    """Angle (N,) between each row's opening direction and impulse; upstream normalises a
    vector shorter than 1e-6 to zero, which makes the angle 90 degrees."""

    def unit(vectors: torch.Tensor) -> torch.Tensor:
        norm = vectors.norm(dim=-1, keepdim=True)
        return torch.where(norm < 1e-6, torch.zeros_like(vectors), vectors / norm.clamp_min(1e-12))

    cosine = (unit(opening) * unit(impulse)).sum(dim=-1).clamp(-1.0, 1.0)
    return torch.arccos(cosine)


def side_holds(
    finger_opening: torch.Tensor,
    finger_impulse: torch.Tensor,
    tip_opening: torch.Tensor,
    tip_impulse: torch.Tensor,
) -> torch.Tensor:
    """One side of upstream's `check_grasp`: enough impulse, pushing the finger open."""
    touching = torch.maximum(finger_impulse.norm(dim=-1), tip_impulse.norm(dim=-1)) >= MIN_IMPULSE
    angle = torch.minimum(
        impulse_angle(tip_opening, tip_impulse), impulse_angle(finger_opening, finger_impulse)
    )
    return touching & (angle <= MAX_GRASP_ANGLE)


def _opening(link: Any) -> torch.Tensor:
    """The link's y axis in the world: upstream's direction that opens the gripper."""
    matrix: torch.Tensor = link.pose.to_transformation_matrix()
    return matrix[..., :3, 1]


def robot_grasps(scene: Any, links: dict[str, Any], actor: Any) -> torch.Tensor:
    """Upstream's `check_grasp(actor, max_angle=80)` per env row (N,) bool."""
    holds = []
    for side in ("left", "right"):
        finger, tip = links[f"link_finger_{side}"], links[f"link_finger_tip_{side}"]
        holds.append(
            side_holds(
                _opening(finger),
                scene.get_pairwise_contact_impulses(finger, actor),
                _opening(tip),
                scene.get_pairwise_contact_impulses(tip, actor),
            )
        )
    return holds[0] & holds[1]


def contact_impulse(scene: Any, actor: Any, others: Sequence[Any]) -> torch.Tensor:
    """(N,) total impulse norm between `actor` and each of `others` (actors or links)."""
    total: torch.Tensor | None = None
    for other in others:
        norm = scene.get_pairwise_contact_impulses(actor, other).norm(dim=-1)
        total = norm if total is None else total + norm
    if total is None:
        raise ValueError("no other actor given")
    return total


def touches_any(scene: Any, actor: Any, others: Sequence[Any]) -> torch.Tensor:
    """(N,) bool: `actor` pushes on any of `others` with at least upstream's 1e-6 impulse."""
    return contact_impulse(scene, actor, others) > MIN_IMPULSE
