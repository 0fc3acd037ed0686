"""How long to wait before trying a transient failure again.

Exponential backoff with full jitter spreads the retries of many concurrent requests over the
whole window instead of synchronising them into bursts that hit a rate limit again. A server's
Retry-After is a floor (asking earlier is pointless), capped so a bogus header cannot stall a
run for hours.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from refinevla_bench.harness.errors import HarnessError

_MAX_DOUBLINGS = 30  # past this the window is the cap anyway; keeps the float finite


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # attempts per episode for transient failures, the first included
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise HarnessError(
                f"max attempts is {self.max_attempts}", "pass --max-attempts 1 or more"
            )
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise HarnessError(
                f"backoff base {self.base_delay_s} s and max {self.max_delay_s} s are inconsistent",
                "pass 0 <= --backoff-base <= --backoff-max",
            )

    def delay_s(self, failed_attempts: int, retry_after_s: float | None) -> float:
        """The wait after the `failed_attempts`-th consecutive transient failure (1-based)."""
        doublings = min(failed_attempts - 1, _MAX_DOUBLINGS)
        window = min(self.max_delay_s, self.base_delay_s * 2.0**doublings)
        jittered = random.uniform(0.0, window)
        if retry_after_s is None:
            return jittered
        return max(jittered, min(retry_after_s, self.max_delay_s))
