"""Binomial proportions with Wilson score intervals: honest error bars for n = 24 to 72 trials.

The Wilson interval stays inside [0, 1] and keeps a useful width at 0/n and n/n, where the
normal approximation collapses to a zero-width interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.96


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of successes/trials, as fractions in [0, 1]."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Proportion:
    """k successes out of n trials, the unit every table cell is made from."""

    successes: int
    trials: int

    def __post_init__(self) -> None:
        wilson_interval(self.successes, self.trials)  # rejects n = 0 and k outside [0, n]

    @property
    def rate(self) -> float:
        return self.successes / self.trials

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.trials)
