"""The one routing rule over configured tiers: level coverage, capabilities, privacy, cost."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_stream.judge import Complexity
from langchain_stream.policies.decide import (
    RoutingRequest,
    TierNeeds,
    decide_candidates,
    order_tiers,
)
from langchain_stream.policies.store import ConversationState
from langchain_stream.routing import TIER_ORDER
from langchain_stream.tier_spec import TierSpec, specs_for

LOW, MEDIUM, HIGH = Complexity.LOW, Complexity.MEDIUM, Complexity.HIGH


def tier(name: str, level: str, **fields: Any) -> TierSpec:
    return TierSpec(name=name, kind=fields.pop("kind", "openai"), level=level, **fields)


FIVE = [
    tier("laptop", "LOW", kind="llama_cpp", capabilities=["tools", "structured_output"]),
    tier("gpu-box", "MEDIUM", capabilities=["structured_output"], context_window=8192),
    tier("hpc", "MEDIUM", kind="hpc", capabilities=["tools", "structured_output"]),
    tier(
        "cloud-mini",
        "MEDIUM",
        privacy="external",
        capabilities=["tools", "structured_output", "vision"],
        cost_per_million_tokens={"input": 0.15, "output": 0.6},
    ),
    tier(
        "cloud-large",
        "HIGH",
        privacy="external",
        capabilities=["tools", "structured_output", "vision"],
        cost_per_million_tokens={"input": 2.5, "output": 10.0},
    ),
]


@pytest.mark.parametrize("complexity", list(Complexity))
def test_the_default_tiers_keep_their_order(complexity: Complexity) -> None:
    defaults = specs_for(["local", "hpc", "cloud"], [])
    assert order_tiers(defaults, complexity=complexity) == list(TIER_ORDER[complexity])
    only_local = specs_for(["local"], [])
    assert order_tiers(only_local, complexity=complexity) == ["local"]


@pytest.mark.parametrize(
    ("complexity", "expected"),
    [
        (LOW, ["laptop", "gpu-box", "hpc", "cloud-mini", "cloud-large"]),
        # free MEDIUM tiers before the paid one, in configuration order; LOW ones last
        (MEDIUM, ["gpu-box", "hpc", "cloud-mini", "cloud-large", "laptop"]),
        # only cloud-large covers HIGH; then the closest levels, cheapest first
        (HIGH, ["cloud-large", "gpu-box", "hpc", "cloud-mini", "laptop"]),
        (None, ["laptop", "gpu-box", "hpc", "cloud-mini", "cloud-large"]),
    ],
)
def test_the_cheapest_tier_whose_level_covers_the_query_comes_first(
    complexity: Complexity | None, expected: list[str]
) -> None:
    assert order_tiers(FIVE, complexity=complexity) == expected


def test_a_tier_without_a_needed_capability_is_no_candidate() -> None:
    tools = order_tiers(FIVE, complexity=MEDIUM, needs=TierNeeds(tools=True))
    assert tools == ["hpc", "cloud-mini", "cloud-large", "laptop"]  # gpu-box has no tools
    vision = order_tiers(FIVE, complexity=LOW, needs=TierNeeds(vision=True))
    assert vision == ["cloud-mini", "cloud-large"]
    both = TierNeeds(tools=True, structured_output=True)
    assert order_tiers(FIVE, complexity=LOW, needs=both)[0] == "laptop"


def test_the_context_window_must_hold_the_latest_turn() -> None:
    long = order_tiers(FIVE, complexity=MEDIUM, needs=TierNeeds(context_tokens=9000))
    assert "gpu-box" not in long and long[0] == "hpc"
    # Tiers that do not declare a window are not judged by it.
    assert order_tiers(FIVE, complexity=MEDIUM, needs=TierNeeds(context_tokens=8192))[0] == (
        "gpu-box"
    )


def test_institutional_data_goes_only_to_institutional_tiers() -> None:
    assert order_tiers(FIVE, complexity=HIGH, institutional=True) == ["gpu-box", "hpc", "laptop"]
    needs = TierNeeds(vision=True)
    assert order_tiers(FIVE, complexity=HIGH, needs=needs, institutional=True) == []


def test_cost_decides_among_covering_tiers_then_level_then_order() -> None:
    tiers = [
        tier("big-free", "HIGH"),
        tier("small-paid", "LOW", cost_per_million_tokens={"input": 0.1, "output": 0.1}),
        tier("small-free", "LOW"),
        tier("other-small-free", "LOW"),
    ]
    # All cover LOW: the free ones first (the lower level before the higher), then the paid.
    assert order_tiers(tiers, complexity=LOW) == [
        "small-free",
        "other-small-free",
        "big-free",
        "small-paid",
    ]
    # Only big-free covers HIGH; the LOW ones follow, free before paid.
    assert order_tiers(tiers, complexity=HIGH) == [
        "big-free",
        "small-free",
        "other-small-free",
        "small-paid",
    ]


def test_a_pin_is_the_only_candidate() -> None:
    assert order_tiers(FIVE, complexity=HIGH, pin="gpu-box") == ["gpu-box"]
    assert order_tiers(FIVE, complexity=HIGH, pin="nowhere") == []


def decide(**overrides: Any):
    arguments: dict[str, Any] = {
        "complexity": HIGH,
        "pin": None,
        "available": [spec.name for spec in FIVE],
        "request": RoutingRequest(),
        "sensitive": [],
        "conversation": ConversationState(),
        "budget": None,
        "not_ready": lambda tier: None,
        "specs": FIVE,
    }
    return decide_candidates(**{**arguments, **overrides})


def test_policies_apply_to_configured_tiers_by_privacy_class_and_level() -> None:
    private = decide(sensitive=["email"])
    assert private.candidates == ["gpu-box", "hpc", "laptop"]
    assert private.policies == ["privacy: sensitive data (email): cloud-mini, cloud-large excluded"]
    # A pin to an external tier under privacy: the institutional tiers closest to its level.
    pinned = decide(pin="cloud-mini", request=RoutingRequest(privacy="institutional"))
    assert (pinned.candidates, pinned.reason) == (["gpu-box", "hpc", "laptop"], "privacy")
    # Stickiness compares levels: a conversation that reached MEDIUM keeps LOW tiers last.
    sticky = decide(complexity=LOW, conversation=ConversationState(floor_tier="hpc"))
    assert sticky.candidates == ["gpu-box", "hpc", "cloud-mini", "cloud-large", "laptop"]
    assert sticky.reason == "sticky"


def test_unfit_tiers_are_named_in_the_policies() -> None:
    decision = decide(complexity=MEDIUM, needs=TierNeeds(tools=True))
    assert decision.candidates[0] == "hpc"
    assert decision.policies == ["capabilities: gpu-box lacks tools"]


def test_what_a_request_needs_is_read_from_the_call() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from langchain_stream.policies.engine import request_needs

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [
        HumanMessage("an old turn " * 500),
        AIMessage("ok"),
        HumanMessage(content=[{"type": "text", "text": "What is in it?"}, image]),
    ]
    needs = request_needs(messages, {"tools": [{"type": "function"}], "response_format": {}})
    assert (needs.tools, needs.structured_output, needs.vision) == (True, False, True)
    assert 0 < needs.context_tokens < 100  # the latest turn only: older ones can be folded
    plain = request_needs([HumanMessage("hi")], {}, count_tokens=False)
    assert plain == TierNeeds() and not plain
