"""Seed lists as users type them: `--seeds 0,1,2`."""

from __future__ import annotations

from refinevla_bench.harness.errors import HarnessError


def parse_seeds(text: str) -> list[int]:
    """Sorted distinct seeds; anything else is a one-line error naming the format."""
    try:
        seeds = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as error:
        raise HarnessError(
            f"--seeds '{text}' is not a list of integers", "write e.g. --seeds 0,1,2"
        ) from error
    if not seeds:
        raise HarnessError("--seeds is empty", "write e.g. --seeds 0,1,2")
    return seeds
