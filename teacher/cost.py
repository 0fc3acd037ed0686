"""What tokens cost, so a run can be budgeted before it is paid for.

The table holds OpenAI's list prices in USD per million tokens as of June 2025 for the models
people commonly annotate with. Prices change and local servers are free: users override them
with --price-input/--price-output. A model that is neither listed nor overridden has an unknown
cost (None), and a budget cannot be enforced on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from refinevla_bench.harness.errors import HarnessError

TOKENS_PER_PRICE_UNIT = 1_000_000


@dataclass(frozen=True)
class Prices:
    """USD per million input (prompt) and output (completion) tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / TOKENS_PER_PRICE_UNIT


LIST_PRICES: dict[str, Prices] = {
    "gpt-4o": Prices(2.50, 10.00),
    "gpt-4o-mini": Prices(0.15, 0.60),
    "gpt-4.1": Prices(2.00, 8.00),
    "gpt-4.1-mini": Prices(0.40, 1.60),
    "gpt-4.1-nano": Prices(0.10, 0.40),
    "grounded-v1": Prices(0.0, 0.0),  # the offline teacher: free
}

# Dated snapshots ("gpt-4o-2024-08-06") cost what their family costs.
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def resolve_prices(
    model: str, price_input: float | None = None, price_output: float | None = None
) -> Prices | None:
    """The prices to charge: overrides first, then the table; None when unknown."""
    for price in (price_input, price_output):
        if price is not None and price < 0:
            raise HarnessError(
                f"a token price of {price} is negative", "pass prices in USD per 1M tokens, >= 0"
            )
    listed = LIST_PRICES.get(_SNAPSHOT_SUFFIX.sub("", model))
    if listed is None:
        if price_input is None or price_output is None:
            return None
        return Prices(price_input, price_output)
    return Prices(
        listed.input_per_million if price_input is None else price_input,
        listed.output_per_million if price_output is None else price_output,
    )


def require_prices_for_budget(model: str, prices: Prices | None) -> Prices:
    """A budget needs prices; refuse to start rather than spend without counting."""
    if prices is None:
        raise HarnessError(
            f"--max-cost needs token prices, and model '{model}' has no listed price",
            "pass --price-input and --price-output (USD per 1M tokens; 0 for a local server)",
        )
    return prices
