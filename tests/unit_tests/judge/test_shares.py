"""The window of recent routed requests: bounded, thread-safe, and fed by the policy engine."""

from __future__ import annotations

import threading

import pytest

from langchain_stream.config import Settings
from langchain_stream.judge.base import Complexity
from langchain_stream.judge.shares import RoutingShares, ShareWindow
from langchain_stream.policies.decide import RoutingRequest
from langchain_stream.policies.engine import PolicyEngine
from langchain_stream.routing import RoutingRecord


def test_an_empty_window_reports_zero_shares() -> None:
    shares = ShareWindow(10).snapshot()
    assert shares.requests == shares.judged == shares.answered == 0
    assert shares.classes == {"LOW": 0.0, "MEDIUM": 0.0, "HIGH": 0.0}
    assert shares.drift is None
    assert shares.summary() == "no routed requests yet"


def test_shares_count_classes_over_judged_and_tiers_over_answered_requests() -> None:
    window = ShareWindow(100)
    window.add(Complexity.LOW, "local")
    window.add("LOW", "local")
    window.add(Complexity.HIGH, "cloud")
    window.add(Complexity.MEDIUM, None)  # failed: judged, not answered
    window.add(None, "hpc")  # pinned: answered, not judged
    shares = window.snapshot()
    assert (shares.requests, shares.judged, shares.answered) == (5, 4, 4)
    assert shares.classes == {"LOW": 0.5, "MEDIUM": 0.25, "HIGH": 0.25}
    assert shares.tiers == {"local": 0.5, "hpc": 0.25, "cloud": 0.25}


def test_the_window_is_bounded_and_keeps_the_most_recent() -> None:
    window = ShareWindow(3)
    for _ in range(5):
        window.add(Complexity.HIGH, "cloud")
    for _ in range(3):
        window.add(Complexity.LOW, "local")
    shares = window.snapshot()
    assert shares.window == 3 and shares.requests == 3
    assert shares.classes["LOW"] == 1.0 and shares.tiers["cloud"] == 0.0


def test_drift_against_a_normalised_target() -> None:
    window = ShareWindow(10, target={"LOW": 60, "MEDIUM": 25, "HIGH": 15})
    assert window.target == pytest.approx({"LOW": 0.6, "MEDIUM": 0.25, "HIGH": 0.15})
    for c in [Complexity.LOW] * 2 + [Complexity.HIGH] * 2:
        window.add(c, "local")
    shares = window.snapshot()
    assert shares.drift == pytest.approx({"LOW": -0.1, "MEDIUM": -0.25, "HIGH": 0.35})
    assert "target LOW 60%" in shares.summary() and "recalibrate" in shares.summary()


def test_a_small_drift_is_not_flagged() -> None:
    window = ShareWindow(10, target={"LOW": 0.5, "MEDIUM": 0.25, "HIGH": 0.25})
    for c in (Complexity.LOW, Complexity.LOW, Complexity.MEDIUM, Complexity.HIGH):
        window.add(c, "local")
    summary = window.snapshot().summary()
    assert "last 4 requests: LOW 50% / MEDIUM 25% / HIGH 25%" in summary
    assert "recalibrate" not in summary


def test_concurrent_adds_are_all_counted() -> None:
    window = ShareWindow(100_000)

    def add_many() -> None:
        for _ in range(2000):
            window.add(Complexity.MEDIUM, "hpc")

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert window.snapshot().requests == 8000


def test_window_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ShareWindow(0)


def test_the_policy_engine_records_each_routed_request() -> None:
    engine = PolicyEngine(
        Settings(database_url="none", judge_share_window=50, judge_target={"LOW": 1.0})
    )
    request = RoutingRequest()
    engine.record(RoutingRecord(complexity=Complexity.LOW, tier="local"), request, answered=True)
    engine.record(RoutingRecord(complexity=Complexity.HIGH, tier="cloud"), request, answered=False)
    shares = engine.shares.snapshot()
    assert isinstance(shares, RoutingShares)
    assert shares.window == 50
    assert (shares.requests, shares.judged, shares.answered) == (2, 2, 1)
    assert shares.tiers["local"] == 1.0
    assert shares.target == {"LOW": 1.0, "MEDIUM": 0.0, "HIGH": 0.0}
