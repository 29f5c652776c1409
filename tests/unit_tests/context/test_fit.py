"""Fitting without a summarizing model: cut points, the assembled prompt, reuse, overflow."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_stream.config import Settings
from langchain_stream.context.fit import (
    cut_points,
    fit_history,
    load_summary,
    split_leading_system,
    with_summary,
)
from langchain_stream.context.store import RecentSummaries, recent_summaries
from langchain_stream.context.summary import ConversationSummary, conversation_digests
from langchain_stream.context.tokens import estimate_tokens
from langchain_stream.errors import ContextOverflowError, TierUnavailableError

FILLER = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 8
HISTORY = [
    SystemMessage("You are terse."),
    HumanMessage(f"Tell me about foxes. {FILLER}"),
    AIMessage(f"Foxes are clever. {FILLER}"),
    HumanMessage("Look up the fox population."),
    AIMessage("", tool_calls=[{"name": "count", "args": {"animal": "fox"}, "id": "c1"}]),
    ToolMessage(f"258000 {FILLER}", tool_call_id="c1"),
    AIMessage("About 258,000."),
    HumanMessage("Thanks. What is 2 + 2?"),
]


def _summary_of(conversation, covered: int, **fields) -> ConversationSummary:
    return ConversationSummary(
        notes=["The user asked about foxes."],
        covered=covered,
        digest=conversation_digests(conversation)[covered],
        turns=1,
        tokens=12,
        **fields,
    )


def _no_summarizer():
    return None


def test_a_cut_never_separates_tool_results_from_their_call() -> None:
    _, conversation = split_leading_system(HISTORY)
    points = cut_points(conversation)
    assert 4 not in points  # the ToolMessage stays with the call before it
    assert points == [0, 1, 2, 3, 5, 6]


def test_the_prompt_keeps_system_messages_and_puts_the_summary_in_the_first() -> None:
    leading, conversation = split_leading_system(HISTORY)
    folded_system = SystemMessage("Answer in French.")
    conversation = [conversation[0], folded_system, *conversation[1:]]
    summary = _summary_of(conversation, 3)
    prompt = with_summary(leading, conversation, summary)
    assert prompt[0].content.startswith("You are terse.\n\nSummary of the earlier conversation")
    assert prompt[1] is folded_system  # a system message in the folded turns is kept
    assert prompt[2:] == conversation[3:]
    bare = with_summary([], conversation, summary)
    assert isinstance(bare[0], SystemMessage) and "foxes" in bare[0].text


def test_a_history_that_fits_is_sent_as_it_is() -> None:
    outcome = fit_history(
        HISTORY,
        tier="cloud",
        budget=10_000,
        counter=estimate_tokens,
        counter_kind="estimate",
        summary=None,
        summarizer=_no_summarizer,
        settings=Settings(),
    )
    assert outcome.messages == HISTORY
    assert not outcome.report.applied and not outcome.summary_changed
    assert outcome.report.tokens_before is None  # it clearly fit: nothing was counted


def test_a_kept_summary_that_makes_the_prompt_fit_is_reused_without_a_model() -> None:
    _, conversation = split_leading_system(HISTORY)
    summary = _summary_of(conversation, 2, updated_turn=1)
    whole = estimate_tokens(HISTORY)
    outcome = fit_history(
        HISTORY,
        tier="cloud",
        budget=whole - 50,
        counter=estimate_tokens,
        counter_kind="estimate",
        summary=summary,
        summarizer=_no_summarizer,  # would be an overflow if it were needed
        settings=Settings(),
    )
    report = outcome.report
    assert report.applied and report.summary == "reused"
    assert report.tokens_before == whole and report.tokens_after <= whole - 50
    assert report.summary_age_turns == 2 and report.verbatim_messages == len(conversation) - 2
    assert not outcome.summary_changed


def test_without_a_summarizer_an_overflow_skips_the_tier() -> None:
    with pytest.raises(ContextOverflowError) as caught:
        fit_history(
            HISTORY,
            tier="local",
            budget=100,
            counter=estimate_tokens,
            counter_kind="estimate",
            summary=None,
            summarizer=_no_summarizer,
            settings=Settings(),
        )
    assert isinstance(caught.value, TierUnavailableError)  # the router falls back on it
    assert caught.value.tier == "local" and caught.value.budget == 100
    assert caught.value.tokens == estimate_tokens(HISTORY)


def test_a_kept_summary_is_checked_against_the_history() -> None:
    _, conversation = split_leading_system(HISTORY)
    summary = _summary_of(conversation, 2)
    assert load_summary(HISTORY, summary.model_dump()) == summary
    edited = [HISTORY[0], HumanMessage("Tell me about wolves."), *HISTORY[2:]]
    assert load_summary(edited, summary.model_dump()) is None
    assert load_summary(HISTORY[:2], None) is None  # too short to have one


def test_conversations_without_an_id_find_their_summary_by_its_digest() -> None:
    _, conversation = split_leading_system(HISTORY)
    summary = _summary_of(conversation, 3)
    recent_summaries.remember(summary)
    assert load_summary(HISTORY, None) == summary
    assert load_summary([*HISTORY, AIMessage("4"), HumanMessage("And 3 + 3?")], None) == summary


def test_the_memory_of_recent_summaries_is_bounded() -> None:
    memory = RecentSummaries(size=2)
    _, conversation = split_leading_system(HISTORY)
    digests = conversation_digests(conversation)
    for covered in (1, 2, 3):
        memory.remember(_summary_of(conversation, covered))
    assert memory.longest(digests[:2]) is None  # the oldest was forgotten
    assert memory.longest(digests).covered == 3
