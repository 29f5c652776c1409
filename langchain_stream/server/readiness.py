"""Readiness of each tier, for ``GET /readyz`` (what a load balancer asks).

A tier is ready unless its circuit breaker is open, its own readiness check says why not
(``acheck_ready``: the cloud API unreachable or rejecting the key, the HPC endpoint offline),
or its model does not load (``load``: the local tier's GGUF file). Checks run concurrently,
each bounded by :attr:`ReadinessProbe.check_timeout_s`, and their answers are reused for
``ttl_s`` so a load balancer polling every second does not poll the cloud API every second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_stream.policies.health import TierHealth

CHECK_TIMEOUT_S = 5.0
"""Bound on one tier's readiness check."""


async def _why_not_ready(tier: str, model: Any, timeout_s: float) -> str | None:
    check = getattr(model, "acheck_ready", None)
    load = getattr(model, "load", None)
    try:
        async with asyncio.timeout(timeout_s):
            if check is not None:
                return await check()
            if load is not None:  # loaded once per process: later calls return at once
                await asyncio.to_thread(load)
    except TimeoutError:
        return f"{tier} readiness check took longer than {timeout_s:g} s"
    except Exception as exc:  # a failing check means "not ready", with the reason
        return f"{tier} is not ready: {exc}"
    return None


@dataclass
class ReadinessProbe:
    """Cached readiness of a set of tiers.

    Args:
        health: the router's breakers (an open breaker makes its tier not ready at once).
        ttl_s: how long a check's answer is reused.
        check_timeout_s: bound on one tier's check.
    """

    health: TierHealth
    ttl_s: float = 30.0
    check_timeout_s: float = CHECK_TIMEOUT_S
    _cache: dict[str, tuple[float, str | None]] = field(
        default_factory=dict, init=False, repr=False
    )

    async def check(self, models: Mapping[str, Any]) -> dict[str, str | None]:
        """Per tier: ``None`` when it can take a request now, else why not."""
        now = time.monotonic()
        stale = [
            t for t in models if now - self._cache.get(t, (float("-inf"), None))[0] >= self.ttl_s
        ]
        reasons = await asyncio.gather(
            *(_why_not_ready(t, models[t], self.check_timeout_s) for t in stale)
        )
        for tier, reason in zip(stale, reasons, strict=True):
            self._cache[tier] = (time.monotonic(), reason)
        report: dict[str, str | None] = {}
        for tier in models:
            if not self.health.breaker(tier).allows():
                report[tier] = f"{tier} circuit open after repeated failures"
            else:
                report[tier] = self._cache[tier][1]
        return report
