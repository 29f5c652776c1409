"""Tier health: a circuit breaker per tier, and cached readiness checks.

A tier that fails ``failure_threshold`` times in a row is *open*: the router skips it for
``cooldown_s``, then lets one request through (*half-open*); success closes it again. A tier
model may also report readiness itself — an object with ``async def acheck_ready() -> str |
None`` (``None`` when ready, else why not: e.g. the HPC endpoint is queued or cold). Readiness
is cached for ``ttl_s`` and refreshed in the background, so routing never waits on a check.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CircuitBreaker:
    """Consecutive-failure breaker with a cooldown."""

    failure_threshold: int = 3
    cooldown_s: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allows(self, now: float | None = None) -> bool:
        """Whether a request may try this tier now (closed, or half-open after the cooldown)."""
        with self._lock:
            if self.opened_at is None:
                return True
            return (now or time.monotonic()) - self.opened_at >= self.cooldown_s

    def record_success(self) -> None:
        """Close the breaker."""
        with self._lock:
            self.failures, self.opened_at = 0, None

    def record_failure(self, now: float | None = None) -> None:
        """Count a failure; open (or re-open) the breaker at the threshold."""
        with self._lock:
            self.failures += 1
            if self.failures >= self.failure_threshold:
                self.opened_at = now or time.monotonic()


@dataclass
class _Readiness:
    reason: str | None = None
    checked_at: float = float("-inf")
    refreshing: bool = False


class TierHealth:
    """Breakers and cached readiness for a set of tiers."""

    def __init__(
        self, *, failure_threshold: int = 3, cooldown_s: float = 30.0, ttl_s: float = 30.0
    ) -> None:
        self._threshold, self._cooldown_s, self._ttl_s = failure_threshold, cooldown_s, ttl_s
        self._breakers: dict[str, CircuitBreaker] = {}
        self._readiness: dict[str, _Readiness] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def breaker(self, tier: str) -> CircuitBreaker:
        """The breaker of ``tier``."""
        with self._lock:
            if tier not in self._breakers:
                self._breakers[tier] = CircuitBreaker(self._threshold, self._cooldown_s)
            return self._breakers[tier]

    def not_ready(self, tier: str, model: Any) -> str | None:
        """Why ``tier`` should be skipped now, or ``None``; never blocks on a check."""
        if not self.breaker(tier).allows():
            return f"{tier} circuit open after repeated failures"
        check = getattr(model, "acheck_ready", None)
        if check is None:
            return None
        with self._lock:
            state = self._readiness.setdefault(tier, _Readiness())
            stale = time.monotonic() - state.checked_at >= self._ttl_s
            start = stale and not state.refreshing
            if start:
                state.refreshing = True
            reason = state.reason
        if start:
            self._refresh(tier, check)
        return reason

    def _refresh(self, tier: str, check: Any) -> None:
        async def run() -> None:
            reason: str | None
            try:
                reason = await check()
            except Exception as exc:  # a failing check means "not ready", with the reason
                reason = f"{tier} readiness check failed: {exc}"
            with self._lock:
                state = self._readiness[tier]
                state.reason, state.checked_at, state.refreshing = reason, time.monotonic(), False

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            from langchain_stream._threads import background_loop

            asyncio.run_coroutine_threadsafe(run(), background_loop())
            return
        task = loop.create_task(run())
        self._tasks.add(task)  # keep a reference until it finishes
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Wait for running checks (tests and shutdown)."""
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
