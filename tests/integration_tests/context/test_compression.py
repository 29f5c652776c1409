"""Fitting long conversations to the local window, on the real embedded model.

The local tier here is the embedded model with a 1024-token window (and 16 answer tokens), so a
handful of realistic turns overflow it; the summaries are written by the same model.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_openai import ChatOpenAI

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.bench.conversations import FILLER
from langchain_stream.config import Settings
from langchain_stream.context import Summarizer, TierFitter, estimate_tokens, fit_history
from langchain_stream.errors import ContextOverflowError, NoTierAvailableError

SYSTEM = SystemMessage("You are a helpful assistant. Answer briefly.")


@pytest.fixture(scope="module")
def small_local() -> ChatLocal:
    """The local tier with a small window: 1008 prompt tokens."""
    model = ChatLocal(temperature=0.0, max_tokens=16, n_ctx=1024)
    model.load()
    return model


def unreachable_cloud() -> ChatOpenAI:
    """A real ChatOpenAI whose server is down: a probe that escalated would fail on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return ChatOpenAI(
        model="gpt-test", base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", timeout=5
    )


def filler(turns: int, start: int = 0) -> list[BaseMessage]:
    """``turns`` realistic turns (about 170 tokens each)."""
    messages: list[BaseMessage] = []
    for question, answer in FILLER[start : start + turns]:
        messages += [HumanMessage(question), AIMessage(answer)]
    return messages


def summarizer(model: ChatLocal, *, max_tokens: int = 400) -> Summarizer:
    return Summarizer(
        model,
        counter=model.count_tokens,
        window=model.n_ctx,
        note_tokens=24,
        max_tokens=max_tokens,
    )


def routing(message: Any) -> dict[str, Any]:
    return message.response_metadata["routing"]


def test_overflow_by_exactly_one_token(local_model: ChatLocal) -> None:
    messages = [SYSTEM, *filler(3), HumanMessage("What is 2 + 2?")]
    tokens = local_model.count_tokens(messages)

    def fit(budget: int):
        return fit_history(
            messages,
            tier="local",
            budget=budget,
            counter=local_model.count_tokens,
            counter_kind="tokenizer",
            summary=None,
            summarizer=lambda: summarizer(local_model),
            settings=Settings(),
        )

    exact = fit(tokens)
    assert exact.messages == messages and not exact.report.applied
    assert exact.report.tokens_before == exact.report.tokens_after == tokens

    over = fit(tokens - 1)
    report = over.report
    assert report.applied and report.summary == "created"
    assert report.tokens_before == tokens and report.tokens_after <= tokens - 1
    assert local_model.count_tokens(over.messages) == report.tokens_after
    assert over.messages[-1] == messages[-1]  # the query itself is never summarized
    assert over.summary is not None and over.summary.turns >= 1 and over.summary_changed


def test_system_and_one_huge_message_is_skipped_visibly(small_local: ChatLocal) -> None:
    huge = " ".join(answer for _, answer in FILLER[:20]) + " What is 2 + 2?"
    router = StreamChatModel(local=small_local, judge="keyword", tier="local")
    for _ in range(3):
        with pytest.raises(NoTierAvailableError) as caught:
            router.invoke([SYSTEM, HumanMessage(huge)])
        (attempt,) = caught.value.attempts
        assert attempt["tier"] == "local"
        assert attempt["error"].startswith("ContextOverflowError")
        assert "accepts 1008" in attempt["error"]
    # Too long a request is not the tier's fault: its breaker stays closed.
    answer = router.invoke([SYSTEM, HumanMessage("What is 2 + 2?")])
    assert routing(answer)["tier"] == "local"


def test_escalates_only_when_even_the_compressed_history_cannot_fit(
    small_local: ChatLocal, local_model: ChatLocal
) -> None:
    report = "\n".join(answer for _, answer in FILLER[:13])
    messages = [
        SYSTEM,
        HumanMessage("What is 2 + 2? Use the calculator."),
        AIMessage("", tool_calls=[{"name": "calculator", "args": {"q": "2+2"}, "id": "c1"}]),
        ToolMessage(f"4\n\n(calculator log)\n{report}", tool_call_id="c1", name="calculator"),
    ]
    # The HPC slot holds the same model with a 4096-token window.
    router = StreamChatModel(local=small_local, hpc=local_model, judge="keyword")
    record = routing(router.invoke(messages))
    assert record["complexity"] == "LOW"
    assert record["tier"] == "hpc" and record["reason"] == "fallback"
    skipped, answered = record["tiers_tried"]
    assert skipped["tier"] == "local" and skipped["error"].startswith("ContextOverflowError")
    assert answered == {"tier": "hpc"}
    assert record["compression"]["applied"] is False  # it fits the larger window as it is


def test_tool_calls_spanning_the_cut_stay_with_their_results(local_model: ChatLocal) -> None:
    rows = [answer for _, answer in FILLER[10:16]]

    def call(*names: str) -> AIMessage:
        return AIMessage("", tool_calls=[{"name": n, "args": {}, "id": n} for n in names])

    query = HumanMessage("Add up the sales of the three regions.")
    messages = [
        SYSTEM,
        *filler(2),
        query,
        call("north"),
        ToolMessage(f"north: 120 units. {rows[0]} {rows[1]}", tool_call_id="north"),
        call("east", "west"),
        ToolMessage(f"east: 80 units. {rows[2]} {rows[3]}", tool_call_id="east"),
        ToolMessage(f"west: 95 units. {rows[4]} {rows[5]}", tool_call_id="west"),
        call("total"),
        ToolMessage("295 units", tool_call_id="total"),
    ]
    budget = local_model.count_tokens(messages) * 2 // 5  # the agent's own turn must fold
    outcome = fit_history(
        messages,
        tier="local",
        budget=budget,
        counter=local_model.count_tokens,
        counter_kind="tokenizer",
        summary=None,
        summarizer=lambda: summarizer(local_model, max_tokens=budget // 3),
        settings=Settings(),
    )
    prompt = outcome.messages
    assert outcome.report.applied and outcome.report.tokens_after <= budget
    assert query in prompt  # the current query stays verbatim even when its turn is folded
    assert prompt[-2:] == messages[-2:]
    calls: set[str] = set()
    for index, message in enumerate(prompt):
        if isinstance(message, AIMessage) and message.tool_calls:
            ids = {c["id"] for c in message.tool_calls}
            results = {m.tool_call_id for m in prompt[index + 1 : index + 1 + len(ids)]}
            assert results == ids  # every call arrives with all of its results
            calls |= ids
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in calls  # never a result without its call
    local_model.invoke(prompt, max_tokens=4)  # and the tier accepts what it is given


def test_a_turn_longer_than_the_summarizers_window_is_summarized_in_chunks(
    small_local: ChatLocal,
) -> None:
    long_turn = [
        HumanMessage("Here are my notes. " + " ".join(a for _, a in FILLER[:13])),
        AIMessage("Thanks, noted."),
    ]
    folder = summarizer(small_local)
    assert folder.text_tokens(long_turn[0].text) > small_local.n_ctx
    summary = folder.extend(None, long_turn, 2, digest="d", turn=1)
    assert len(summary.notes) >= 2  # one note per chunk, each call within the window
    assert summary.turns == 1 and summary.covered == 2


def test_a_summary_that_grows_too_long_is_resummarized_then_trimmed(
    local_model: ChatLocal,
) -> None:
    conversation = filler(4)
    summary = summarizer(local_model).extend(None, conversation, 8, digest="d", turn=4)
    assert len(summary.notes) == 4 and summary.compactions == 0
    bounded = summarizer(local_model, max_tokens=summary.tokens - 20).bound(summary)
    assert bounded.compactions >= 1
    assert bounded.tokens <= summary.tokens - 20
    assert bounded.tokens == summarizer(local_model).text_tokens(bounded.render())
    tiny = summarizer(local_model, max_tokens=24).bound(summary)
    assert tiny.tokens <= 24  # re-summarizing was not enough: the oldest sentences went


def test_a_simple_follow_up_at_the_end_of_a_long_conversation_stays_local(
    small_local: ChatLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_CONTEXT_LOW_WATER", "0.8")  # fewer, shorter notes: a faster test
    monkeypatch.setenv("STREAM_CONTEXT_NOTE_TOKENS", "20")
    # Turns no other test uses: this process keeps summaries of conversations without an id,
    # and would extend one made for the same opening turns.
    messages = [SYSTEM, *filler(9, start=24), HumanMessage("Thanks! And what is 3 + 3?")]
    assert small_local.count_tokens(messages) > 1008
    router = StreamChatModel(local=small_local, cloud=unreachable_cloud(), judge="keyword")
    record = routing(router.invoke(messages))
    assert record["complexity"] == "LOW"  # judged on the query, not on the history's length
    assert record["tier"] == "local" and record["tiers_tried"] == [{"tier": "local"}]
    compression = record["compression"]
    assert compression["applied"] and compression["summary"] == "created"
    assert compression["tokens_before"] > compression["budget"] >= compression["tokens_after"]
    assert compression["counter"] == "tokenizer" and compression["summary_turns"] >= 1
    assert compression["summary_age_turns"] == 0 and compression["compress_ms"] > 0


def test_fitting_for_a_tier_uses_its_window_and_the_calls_max_tokens(
    small_local: ChatLocal,
) -> None:
    fitter = TierFitter.for_tier("local", {"local": small_local}, {"max_tokens": 100}, Settings())
    assert fitter.budget == 1024 - 100 and fitter.counter_kind == "tokenizer"
    with pytest.raises(ContextOverflowError):
        fitter.fit([HumanMessage(" ".join(a for _, a in FILLER[:20]))], None)


def test_bound_tools_count_and_the_estimate_stays_above_the_real_count(
    local_model: ChatLocal,
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Current weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    messages = [SYSTEM, *filler(2), HumanMessage("Weather in Oslo?")]
    bare = local_model.count_tokens(messages)
    assert local_model.count_tokens(messages, tools=[tool]) > bare
    assert local_model.count_tokens(messages, tools=[tool], tool_choice="none") == bare
    fitter = TierFitter.for_tier("local", {"local": local_model}, {"tools": [tool]}, Settings())
    assert fitter.counter(messages) > bare
    # The estimate for tiers without a tokenizer stays above even this small-vocabulary
    # tokenizer (digits one by one, CJK in bytes) on prose, code, numbers, JSON and CJK.
    texts = [
        " ".join(a for _, a in FILLER),
        "def f(x):\n    return {k: v ** 2 for k, v in x.items() if v > 0}\n" * 20,
        "Order 4821-7306-2490 of 2024-03-14 at 09:41:07, total 1,234.56 EUR. " * 20,
        json.dumps([{"id": i, "name": f"item{i}", "price": i * 1.5} for i in range(40)]),
        "東京は日本の首都です。" * 20,
    ]
    for text in texts:
        sample = [HumanMessage(text)]
        assert estimate_tokens(sample) >= local_model.count_tokens(sample), text[:40]
