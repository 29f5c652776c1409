"""Small statistics shared by the benchmarks."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
from rich.progress import track

T = TypeVar("T")


def with_progress(items: Sequence[T], description: str, progress: bool) -> Iterable[T]:
    """``items``, with a progress bar on stderr while they are consumed when ``progress``."""
    return track(items, description=description) if progress else items


def percentiles(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """p50 / p95 / p99 / mean of ``values`` (an empty input gives an empty dict)."""
    if not values:
        return {}
    data = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(data, 50)), digits),
        "p95": round(float(np.percentile(data, 95)), digits),
        "p99": round(float(np.percentile(data, 99)), digits),
        "mean": round(float(data.mean()), digits),
    }


def tail(values: Sequence[float], digits: int = 1, scale: float = 1.0) -> dict[str, float]:
    """p50 / p99 / max of ``values`` times ``scale`` (an empty input gives an empty dict): the
    shape of a latency's tail, where the worst case is a figure of its own."""
    if not values:
        return {}
    data = np.asarray(values, dtype=float) * scale
    return {
        "p50": round(float(np.percentile(data, 50)), digits),
        "p99": round(float(np.percentile(data, 99)), digits),
        "max": round(float(data.max()), digits),
    }


def median_ci(
    values: Sequence[float], level: float = 0.95, resamples: int = 2000, digits: int = 3
) -> list[float]:
    """A bootstrap confidence interval of the median of ``values`` (seeded: reproducible).

    Medians of a few tens of noisy samples move by tenths of a millisecond from run to run;
    the interval says how far apart two of them must be to differ.
    """
    if not values:
        return []
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(data, size=(resamples, data.size)), axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    return [round(float(low), digits), round(float(high), digits)]


def samples(values: Sequence[float], digits: int = 3) -> list[float]:
    """The raw measurements, rounded: kept in the JSON so plots can show distributions."""
    return [round(float(v), digits) for v in values]


def machine() -> dict[str, object]:
    """What the benchmark ran on."""
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "system": platform.system(),
    }


def _cpu_model() -> str | None:
    # platform.processor() is empty on most Linux systems; /proc/cpuinfo names the CPU.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


# Distinct prompts of the same shape, so no run profits from another's prompt cache.
TOPICS = (
    "a lighthouse keeper",
    "a clockmaker",
    "a river pilot",
    "a glacier",
    "a librarian",
    "a comet",
    "a beekeeper",
    "a cartographer",
    "a volcano",
    "a night train",
    "a tea merchant",
    "an old telescope",
    "a desert well",
    "a violin maker",
    "a snow leopard",
    "a paper mill",
    "a coral reef",
    "a bridge builder",
    "a weather balloon",
    "a salt marsh",
)


def story_prompt(index: int) -> str:
    """The ``index``-th distinct prompt, asking for a long answer."""
    topic = TOPICS[index % len(TOPICS)]
    return f"Write a long story about {topic} (story {index})."
