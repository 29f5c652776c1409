"""Circuit breakers."""

from __future__ import annotations

from langchain_stream.policies.health import CircuitBreaker, TierHealth


def test_breaker_opens_at_the_threshold_and_half_opens_after_cooldown() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10.0)
    breaker.record_failure(now=100.0)
    assert breaker.allows(now=100.0)
    breaker.record_failure(now=100.0)
    assert not breaker.allows(now=105.0)
    assert breaker.allows(now=110.0)  # half-open: one request may try
    breaker.record_success()
    assert breaker.allows(now=110.0)
    assert breaker.failures == 0


def test_open_breaker_makes_the_tier_not_ready() -> None:
    health = TierHealth(failure_threshold=1, cooldown_s=60.0)
    health.breaker("cloud").record_failure()
    assert "circuit open" in (health.not_ready("cloud", object()) or "")
    assert health.not_ready("local", object()) is None
