"""The ReFineVLA objective: action cross-entropy + lambda x rationale cross-entropy.

The paper publishes neither the exact form nor lambda; both are configurable, default 1.0.
lambda = 0 is the action-only ablation: the model still reads the rationale tokens in its
input and the rationale loss is still computed and logged, but it adds nothing to what is
back-propagated, so the two runs differ in the loss and nothing else.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from refinevla_bench.harness.errors import HarnessError

if TYPE_CHECKING:  # the CLI reads the default without loading torch
    import torch

    from refinevla_bench.train.vla import LossTerms

DEFAULT_LAMBDA_REASONING = 1.0


def check_lambda_reasoning(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise HarnessError(
            f"--lambda-reasoning {value} is not a finite number >= 0",
            "use 1.0 (ReFineVLA's default here) or 0 for the action-only ablation",
        )
    return value


def total_loss(terms: LossTerms, lambda_reasoning: float) -> torch.Tensor:
    """The loss to back-propagate; at lambda 0 the rationale term is left out entirely (not
    multiplied by 0), so a NaN there could not leak into the action-only gradient."""
    if lambda_reasoning == 0:
        return terms.action
    return terms.action + lambda_reasoning * terms.rationale
