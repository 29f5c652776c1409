"""Token counts and windows per tier, without a model."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_openai import ChatOpenAI

from langchain_stream import ChatLocal
from langchain_stream.config import Settings
from langchain_stream.context.tokens import (
    DEFAULT_CLOUD_WINDOW,
    TierWindow,
    byte_bound,
    estimate_tokens,
    prompt_budget,
    tier_window,
    token_counter,
)

CONVERSATION = [
    SystemMessage("You are terse."),
    HumanMessage("What is the weather like in Lisbon in April?"),
    AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Lisbon"}, "id": "c1"}]),
    ToolMessage("18 °C and sunny", tool_call_id="c1"),
]


def _cloud(model: str = "gpt-4o-mini") -> ChatOpenAI:
    return ChatOpenAI(model=model, api_key="sk-test", base_url="http://127.0.0.1:9/v1")


def test_estimate_is_langchains_count_at_three_characters_a_token_and_more() -> None:
    ascii_only = [HumanMessage("a" * 300)]
    assert estimate_tokens(ascii_only) >= count_tokens_approximately(ascii_only, chars_per_token=3)
    assert estimate_tokens(ascii_only) > count_tokens_approximately(ascii_only)


def test_estimate_weighs_text_outside_ascii() -> None:
    latin = estimate_tokens([HumanMessage("a" * 90)])
    cjk = estimate_tokens([HumanMessage("語" * 90)])
    assert cjk >= latin + 90  # a CJK character is often a token of its own


def test_estimate_counts_tool_calls_and_bound_tools() -> None:
    tool = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    bare = estimate_tokens([HumanMessage("hi")])
    assert estimate_tokens([HumanMessage("hi")], tools=[tool]) > bare
    assert estimate_tokens(CONVERSATION) > estimate_tokens(CONVERSATION[:2])


def test_byte_bound_is_above_the_estimate() -> None:
    for messages in (CONVERSATION, [HumanMessage("語" * 50)], [HumanMessage("x")]):
        assert byte_bound(messages) >= estimate_tokens(messages)


def test_non_local_tiers_are_estimated_and_local_is_counted_by_its_tokenizer() -> None:
    _, kind = token_counter(_cloud())
    assert kind == "estimate"
    _, kind = token_counter(ChatLocal())  # no I/O until it counts
    assert kind == "tokenizer"


def test_windows_come_from_the_model_its_profile_or_the_settings() -> None:
    settings = Settings()
    assert tier_window("local", ChatLocal(n_ctx=2048), settings) == TierWindow(
        2048, shared=True, source="model"
    )
    profiled = tier_window("cloud", _cloud("gpt-4o-mini"), settings)
    assert profiled.source == "profile" and not profiled.shared and profiled.tokens > 100_000
    unknown = tier_window("cloud", _cloud("some-model"), settings)
    assert unknown == TierWindow(DEFAULT_CLOUD_WINDOW, shared=True, source="settings")
    assert tier_window("cloud", _cloud(), Settings(cloud_context_tokens=9000)).tokens == 9000
    # An HPC tier on llama.cpp workers loads them with the local window.
    assert tier_window("hpc", _cloud("x"), Settings(local_n_ctx=3000)).tokens == 3000


@pytest.mark.parametrize(
    ("call", "model_max", "expected"),
    [
        ({"max_tokens": 100}, 50, 4096 - 100),  # the call's max_tokens wins
        ({}, 50, 4096 - 50),  # then the model's
        ({}, None, 4096 - 512),  # then the settings' context_answer_tokens
        ({"max_tokens": 10_000}, None, 4096 - 2048),  # at most half the window
    ],
)
def test_the_budget_keeps_room_for_the_answer(call, model_max, expected) -> None:
    model = ChatLocal(n_ctx=4096, max_tokens=model_max)
    window = TierWindow(4096, shared=True, source="model")
    assert prompt_budget(window, model, call, Settings()) == expected


def test_an_input_limit_is_the_budget_itself() -> None:
    window = TierWindow(128_000, shared=False, source="profile")
    assert prompt_budget(window, _cloud(), {"max_tokens": 4000}, Settings()) == 128_000
