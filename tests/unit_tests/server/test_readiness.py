"""The readiness probe behind ``GET /readyz``: bounded checks, reused answers, open breakers."""

from __future__ import annotations

import asyncio

from langchain_stream.policies.health import TierHealth
from langchain_stream.server.readiness import ReadinessProbe


class Checked:
    """A tier that answers its readiness check with ``reason`` after ``delay_s``."""

    def __init__(self, reason: str | None = None, delay_s: float = 0.0) -> None:
        self.reason, self.delay_s, self.calls = reason, delay_s, 0

    async def acheck_ready(self) -> str | None:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return self.reason


class Loads:
    """A tier whose model fails to load."""

    def load(self) -> None:
        raise FileNotFoundError("missing.gguf")


async def test_each_tier_is_checked_and_the_answers_are_reused() -> None:
    ready, down = Checked(), Checked("cloud API rejected the key")
    probe = ReadinessProbe(TierHealth(), ttl_s=60)
    models = {"local": ready, "cloud": down, "hpc": Loads()}
    first = await probe.check(models)
    assert first["local"] is None and first["cloud"] == "cloud API rejected the key"
    assert first["hpc"] == "hpc is not ready: missing.gguf"
    assert await probe.check(models) == first
    assert (ready.calls, down.calls) == (1, 1)  # within ttl_s: not asked again


async def test_a_hanging_check_is_bounded_and_an_open_breaker_is_not_ready() -> None:
    health = TierHealth(failure_threshold=1)
    probe = ReadinessProbe(health, ttl_s=0, check_timeout_s=0.1)
    report = await probe.check({"hpc": Checked(delay_s=10)})
    assert report["hpc"] == "hpc readiness check took longer than 0.1 s"
    health.breaker("local").record_failure()
    report = await probe.check({"local": Checked()})
    assert report["local"] == "local circuit open after repeated failures"
