"""Prices and usage-based cost."""

from __future__ import annotations

import pytest

from langchain_stream.policies.prices import ModelPrice, PriceTable, format_usd


def test_cost_from_usage() -> None:
    table = PriceTable()
    assert table.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost("openai/gpt-4o-mini", 2_000, 0) == pytest.approx(0.0003)
    assert table.cost("unknown-model", 10, 10) is None


def test_overrides_win() -> None:
    table = PriceTable({"gpt-4o-mini": ModelPrice(input_per_mtok=1.0, output_per_mtok=2.0)})
    assert table.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (12.5, "$12.50"),
        (5, "$5.00"),
        (0, "$0.00"),
        (0.01, "$0.01"),
        (0.015, "$0.015"),
        (0.005, "$0.005"),
        (0.000001, "$0.000001"),
        (0.0000123456, "$0.000012"),
        (0.0999, "$0.10"),  # rounding up past a decimal keeps cents
        (-0.005, "-$0.005"),
    ],
)
def test_format_usd_keeps_small_amounts_readable(amount: float, text: str) -> None:
    assert format_usd(amount) == text
