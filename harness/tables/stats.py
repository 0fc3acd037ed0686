"""Binomial proportions with Wilson score intervals: honest error bars for n = 24 to 72 trials.

The Wilson interval stays inside [0, 1] and keeps a useful width at 0/n and n/n, where the
normal approximation collapses to a zero-width interval. SimplerEnv averages rates (over robot
textures or scene variants, then over tasks) rather than pooling trials; `AveragedRate` does
that, and equals the pooled proportion whenever every part has the same number of trials.
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


@dataclass(frozen=True)
class AveragedRate:
    """The mean over groups (tasks) of the mean over each group's parts (variants)."""

    groups: tuple[tuple[Proportion, ...], ...]

    def __post_init__(self) -> None:
        if not self.groups or not all(self.groups):
            raise ValueError("an averaged rate needs at least one part in every group")

    @property
    def _weighted(self) -> list[tuple[float, Proportion]]:
        return [
            (1.0 / (len(self.groups) * len(group)), part) for group in self.groups for part in group
        ]

    @property
    def rate(self) -> float:
        return sum(weight * part.rate for weight, part in self._weighted)

    @property
    def successes(self) -> int:
        return sum(part.successes for _, part in self._weighted)

    @property
    def trials(self) -> int:
        return sum(part.trials for _, part in self._weighted)

    @property
    def interval(self) -> tuple[float, float]:
        """Wilson on the pooled count when all parts are the same size (the mean is then the
        pooled rate); otherwise a normal interval of the weighted mean whose part variances
        use the Agresti-Coull adjusted rates, so 0/n and n/n parts keep a width."""
        sizes = {part.trials for _, part in self._weighted}
        if len(sizes) == 1:
            return wilson_interval(self.successes, self.trials)
        z2 = Z_95 * Z_95
        variance = 0.0
        for weight, part in self._weighted:
            adjusted = (part.successes + z2 / 2) / (part.trials + z2)
            variance += weight * weight * adjusted * (1 - adjusted) / (part.trials + z2)
        half = Z_95 * math.sqrt(variance)
        return max(0.0, self.rate - half), min(1.0, self.rate + half)
