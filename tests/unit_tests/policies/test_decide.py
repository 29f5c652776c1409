"""The routing policies applied to the judge's class, in order, each visible."""

from __future__ import annotations

from langchain_stream.judge import Complexity
from langchain_stream.policies.decide import BudgetState, RoutingRequest, decide_candidates
from langchain_stream.policies.store import ConversationState

ALL = ["local", "hpc", "cloud"]


def decide(**overrides):
    arguments = {
        "complexity": Complexity.HIGH,
        "pin": None,
        "available": ALL,
        "request": RoutingRequest(),
        "sensitive": [],
        "conversation": ConversationState(),
        "budget": None,
        "not_ready": lambda tier: None,
    }
    return decide_candidates(**{**arguments, **overrides})


def test_the_judge_alone() -> None:
    decision = decide()
    assert (decision.candidates, decision.reason, decision.policies) == (
        ["cloud", "hpc", "local"],
        "judge",
        [],
    )


def test_sensitive_data_removes_the_cloud_even_when_pinned() -> None:
    decision = decide(sensitive=["email"])
    assert decision.candidates == ["hpc", "local"]
    assert decision.reason == "privacy"
    assert decision.policies == ["privacy: sensitive data (email): cloud excluded"]
    pinned = decide(pin="cloud", sensitive=["api_key"])
    assert pinned.candidates == ["hpc", "local"]
    assert pinned.reason == "privacy"


def test_institutional_mode_and_private_conversations() -> None:
    assert "cloud" not in decide(request=RoutingRequest(privacy="institutional")).candidates
    private = decide(conversation=ConversationState(private=True))
    assert "cloud" not in private.candidates
    assert (
        "cloud"
        in decide(
            conversation=ConversationState(private=True), private_conversations=False
        ).candidates
    )


def test_budget_degrades_high_to_hpc() -> None:
    spent = BudgetState(spent_today_usd=5.0, daily_cap_usd=5.0)
    decision = decide(budget=lambda: spent)
    assert decision.candidates == ["hpc", "local"]
    assert decision.reason == "budget"
    assert decision.policies[0].startswith("budget: daily cap $5.00 reached")
    under = decide(budget=lambda: BudgetState(spent_today_usd=1.0, daily_cap_usd=5.0))
    assert under.candidates[0] == "cloud"


def test_budget_message_shows_caps_below_a_cent() -> None:
    daily = BudgetState(spent_today_usd=0.0000123, daily_cap_usd=0.000001)
    assert daily.exhausted() == "daily cap $0.000001 reached ($0.000012)"
    monthly = BudgetState(spent_month_usd=0.0061, monthly_cap_usd=0.005)
    assert monthly.exhausted() == "monthly cap $0.005 reached ($0.0061)"
    policy = decide(budget=lambda: daily).policies[0]
    assert policy.startswith("budget: daily cap $0.000001 reached")


def test_budget_is_not_read_when_the_cloud_is_not_a_candidate() -> None:
    def explode() -> BudgetState:
        raise AssertionError("budget read for a request that cannot reach the cloud")

    assert decide(sensitive=["email"], budget=explode).candidates == ["hpc", "local"]


def test_stickiness_only_moves_up() -> None:
    low = decide(complexity=Complexity.LOW, conversation=ConversationState(floor_tier="hpc"))
    assert low.candidates == ["hpc", "cloud", "local"]  # local kept last, as a fallback
    assert low.reason == "sticky"
    high = decide(conversation=ConversationState(floor_tier="local"))
    assert high.candidates == ["cloud", "hpc", "local"]
    assert high.reason == "judge"


def test_unready_tiers_go_last() -> None:
    decision = decide(
        complexity=Complexity.MEDIUM, not_ready=lambda t: "hpc queued" if t == "hpc" else None
    )
    assert decision.candidates == ["cloud", "local", "hpc"]
    assert decision.reason == "health"
    assert decision.policies == ["health: hpc queued"]


def test_pin_to_an_unavailable_tier_leaves_nothing() -> None:
    assert decide(pin="hpc", available=["local"]).candidates == []


def test_unscannable_content_follows_its_rule_and_the_audit_says_which() -> None:
    image = ["data URL (image/png)"]
    kept = decide(pin="cloud", unscannable=image)
    assert kept.candidates == ["hpc", "local"] and kept.reason == "privacy"
    assert kept.policies[-1] == (
        "privacy: unscannable content (data URL (image/png)): rule unscannable_content=local: "
        "cloud excluded"
    )
    allowed = decide(pin="cloud", unscannable=image, unscannable_rule="cloud")
    assert allowed.candidates == ["cloud"]
    assert "rule unscannable_content=cloud: the cloud is allowed" in allowed.policies[-1]
    institutional = decide(
        unscannable=image, unscannable_rule="cloud", request=RoutingRequest(privacy="institutional")
    )
    assert "cloud" not in institutional.candidates
    assert any("rule institutional: never to the cloud" in p for p in institutional.policies)
    both = decide(unscannable=image, sensitive=["email"])
    assert "cloud" not in both.candidates
    assert any("rule unscannable_content=local" in p for p in both.policies)
