"""The benchmarks' statistics: the confidence interval of a median."""

from __future__ import annotations

import numpy as np

from langchain_stream.bench.stats import median_ci, tail


def test_the_interval_holds_the_median_and_is_reproducible() -> None:
    values = list(np.random.default_rng(7).normal(3.0, 6.0, size=120))
    low, high = median_ci(values)
    assert low < float(np.median(values)) < high
    assert median_ci(values) == [low, high]


def test_more_samples_give_a_narrower_interval() -> None:
    rng = np.random.default_rng(11)
    few = median_ci(list(rng.normal(3.0, 6.0, size=40)))
    many = median_ci(list(rng.normal(3.0, 6.0, size=1000)))
    assert many[1] - many[0] < (few[1] - few[0]) / 2


def test_no_values_no_interval() -> None:
    assert median_ci([]) == []


def test_the_tail_is_p50_p99_and_the_worst_case_scaled() -> None:
    gaps_s = [0.1 * i for i in range(1, 101)]  # 0.1 s .. 10 s
    assert tail(gaps_s, scale=1000) == {"p50": 5050.0, "p99": 9901.0, "max": 10000.0}
    assert tail([]) == {}
