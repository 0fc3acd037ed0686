"""SimplerEnv's pick-coke-can success rule, batched over env rows.

Upstream facts (ManiSkill2_real2sim envs/custom_scenes/grasp_single_in_scene.py `evaluate`,
agents/robots/googlerobot.py `check_grasp`):
- grasped: `contacts.robot_grasps` (upstream's `check_grasp`);
- `lifted` latches once the object is more than 1 cm above its settled height while touching
  nothing but the robot, and is cleared on every step the object is not grasped;
- a step "lifts significantly" when `lifted` holds and the object is more than 2 cm up;
- success = `lifted`, or at least 5 significant-lift steps so far in the episode;
- `consecutive_grasp`: grasped for at least 5 evaluations in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LIFT_HEIGHT = 0.01
SIGNIFICANT_LIFT_HEIGHT = 0.02
SIGNIFICANT_LIFT_STEPS = 5
CONSECUTIVE_GRASP_STEPS = 5


@dataclass
class LiftState:
    """Per-row episode memory of the rule (all (N,) tensors)."""

    lifted: torch.Tensor
    consecutive_grasps: torch.Tensor
    significant_lifts: torch.Tensor

    @classmethod
    def zeros(cls, rows: int, device: torch.device | str = "cpu") -> LiftState:
        false = torch.zeros(rows, dtype=torch.bool, device=device)
        count = torch.zeros(rows, dtype=torch.int64, device=device)
        return cls(false, count, count.clone())

    def reset_rows(self, rows: torch.Tensor) -> None:
        self.lifted[rows] = False
        self.consecutive_grasps[rows] = 0
        self.significant_lifts[rows] = 0


def evaluate_lift(
    state: LiftState,
    grasped: torch.Tensor,
    touching_other: torch.Tensor,
    height_gain: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Advance `state` by one evaluation and return upstream's info entries."""
    state.consecutive_grasps = torch.where(grasped, state.consecutive_grasps + 1, 0)
    state.lifted = (state.lifted & grasped) | (~touching_other & (height_gain > LIFT_HEIGHT))
    significant = state.lifted & (height_gain > SIGNIFICANT_LIFT_HEIGHT)
    state.significant_lifts = state.significant_lifts + significant.long()
    consecutive = state.consecutive_grasps >= CONSECUTIVE_GRASP_STEPS
    return {
        "is_grasped": grasped,
        "consecutive_grasp": consecutive,
        "lifted_object": state.lifted.clone(),
        "lifted_object_significantly": significant,
        "success": state.lifted | (state.significant_lifts >= SIGNIFICANT_LIFT_STEPS),
    }
