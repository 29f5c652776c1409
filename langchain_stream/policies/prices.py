"""Prices per model and usage-based cost.

Prices are US dollars per million tokens, input and output separately. The built-in table covers
a few common cloud models; ``STREAM_CLOUD_PRICES`` (or ``cloud_prices`` in the TOML file) adds or
overrides entries. Local and HPC answers cost nothing in money: their "cloud equivalent" is what
the same tokens would have cost on the configured cloud model, which is how savings are reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, Field


class ModelPrice(BaseModel):
    """Dollars per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


# Published list prices, USD per million tokens (input, output).
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o": ModelPrice(input_per_mtok=2.50, output_per_mtok=10.00),
    "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.60),
    "gpt-4.1": ModelPrice(input_per_mtok=2.00, output_per_mtok=8.00),
    "gpt-4.1-mini": ModelPrice(input_per_mtok=0.40, output_per_mtok=1.60),
    "gpt-4.1-nano": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.40),
    "o3-mini": ModelPrice(input_per_mtok=1.10, output_per_mtok=4.40),
}


class PriceTable:
    """Looks up a model's price; models it does not know cost nothing (and say so)."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = {**DEFAULT_PRICES, **(overrides or {})}

    def price(self, model: str | None) -> ModelPrice | None:
        """The price of ``model`` (also matched without a ``provider/`` prefix), or ``None``."""
        if not model:
            return None
        return self._prices.get(model) or self._prices.get(model.rsplit("/", 1)[-1])

    def cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float | None:
        """Usage-based cost in USD, or ``None`` when the model has no price."""
        price = self.price(model)
        return None if price is None else cost_usd(price, input_tokens, output_tokens)


def cost_usd(price: ModelPrice, input_tokens: int, output_tokens: int) -> float:
    """Dollars for the given usage at ``price``."""
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6


def format_usd(amount: float) -> str:
    """``amount`` as dollars: cents, or as many decimals as two significant digits need below
    them, so small caps stay readable (``$12.50``, ``$0.015``, ``$0.005``, ``$0.000001``)."""
    if amount == 0 or not math.isfinite(amount):
        return f"${amount:.2f}"
    decimals = max(2, 1 - math.floor(math.log10(abs(amount))))
    whole, _, fraction = f"{abs(amount):.{decimals}f}".partition(".")
    sign = "-" if amount < 0 else ""
    # Zeros past the cents carry nothing: 0.0100 reads 0.01, 0.0050 reads 0.005.
    return f"{sign}${whole}.{fraction.rstrip('0').ljust(2, '0')}"
