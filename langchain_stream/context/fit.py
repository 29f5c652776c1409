"""Fitting a conversation to one tier's window (docs/design.md#context).

The prompt a tier receives is, when the whole history does not fit its budget::

    leading system messages + the summary of older turns   (one system message)
    system messages from the folded turns                   (kept as they are)
    the most recent turns, verbatim                         (always the current query)

Turns are folded into the summary only when the prompt would not fit otherwise; then enough of
them are folded that the prompt fills at most ``context_low_water`` of the budget, so the next
turns fit without summarizing again (and llama.cpp reuses the unchanged prompt prefix), keeping
the last ``context_verbatim_turns`` user turns when they fit. A cut prefers the start of a user
turn and never lands on a ``ToolMessage``, so an assistant's tool calls and their results stay
on one side of it. Within an agent's long current turn, older tool rounds may be folded too:
the current query is then repeated verbatim after the summary. When even the last message with
the summary does not fit, the tier is skipped
(:class:`~langchain_stream.errors.ContextOverflowError`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_stream.config import Settings, Tier
from langchain_stream.context.store import recent_summaries
from langchain_stream.context.summary import (
    ConversationSummary,
    Summarizer,
    conversation_digests,
)
from langchain_stream.context.tokens import (
    CounterKind,
    TokenCounter,
    byte_bound,
    prompt_budget,
    tier_window,
    token_counter,
)
from langchain_stream.errors import ContextOverflowError
from langchain_stream.routing import CompressionReport

# Tokens of the summary's heading lines, beside its notes.
_SUMMARY_FRAMING = 24


@dataclass
class FitOutcome:
    """What fitting the history to one tier produced."""

    messages: list[BaseMessage]
    """The prompt to send."""
    report: CompressionReport
    """What was done, for the routing record."""
    summary: ConversationSummary | None
    """The conversation's summary after fitting (created or extended, or as it was)."""
    summary_changed: bool
    """Whether ``summary`` is new and should be kept with the conversation."""


def split_leading_system(
    messages: Sequence[BaseMessage],
) -> tuple[list[BaseMessage], list[BaseMessage]]:
    """The leading system messages, and the conversation after them."""
    index = 0
    while index < len(messages) and isinstance(messages[index], SystemMessage):
        index += 1
    return list(messages[:index]), list(messages[index:])


def cut_points(conversation: Sequence[BaseMessage]) -> list[int]:
    """Where the conversation may be cut: anywhere but before a ``ToolMessage``, which must
    stay with the assistant message whose call it answers."""
    return [i for i, m in enumerate(conversation) if not isinstance(m, ToolMessage)]


def user_turns(conversation: Sequence[BaseMessage]) -> int:
    """How many user turns the conversation has."""
    return sum(isinstance(m, HumanMessage) for m in conversation)


def with_summary(
    leading: Sequence[BaseMessage],
    conversation: Sequence[BaseMessage],
    summary: ConversationSummary,
) -> list[BaseMessage]:
    """The prompt: system messages, the summary, and the messages it does not cover.

    The current query (the last user message) is always there verbatim, even when the summary
    covers it: that happens when an agent's tool calls after it had to be folded.
    """
    block = summary.render()
    folded = conversation[: summary.covered]
    if leading and isinstance(leading[0].content, str):
        head = [
            leading[0].model_copy(update={"content": f"{leading[0].content}\n\n{block}"}),
            *leading[1:],
        ]
    else:
        head = [*leading, SystemMessage(block)]
    kept = [m for m in folded if isinstance(m, SystemMessage)]
    query = _last_user_message(conversation)
    if query is not None and query < summary.covered:
        kept.append(conversation[query])
    return [*head, *kept, *conversation[summary.covered :]]


def _last_user_message(conversation: Sequence[BaseMessage]) -> int | None:
    return next(
        (
            i
            for i in range(len(conversation) - 1, -1, -1)
            if isinstance(conversation[i], HumanMessage)
        ),
        None,
    )


def load_summary(
    messages: Sequence[BaseMessage], stored: Mapping[str, Any] | None
) -> ConversationSummary | None:
    """The conversation's summary, if it still matches the history.

    ``stored`` is the summary kept with the conversation (the graph state). One whose messages
    were edited since is dropped. A conversation with none gets the one this process made for
    the same history, if any (conversations without an id).
    """
    _, conversation = split_leading_system(messages)
    if stored is None and len(conversation) < 3:
        return None  # a summary needs at least one turn folded and one kept
    digests = conversation_digests(conversation)
    if stored is not None:
        summary = ConversationSummary.model_validate(stored)
        if summary.covered < len(digests) and digests[summary.covered] == summary.digest:
            return summary
    return recent_summaries.longest(digests)


def fit_history(
    messages: Sequence[BaseMessage],
    *,
    tier: Tier,
    budget: int,
    counter: TokenCounter,
    counter_kind: CounterKind,
    summary: ConversationSummary | None,
    summarizer: Callable[[], Summarizer | None],
    settings: Settings,
    extra_bytes: int = 0,
) -> FitOutcome:
    """Fit ``messages`` to ``budget`` prompt tokens, folding older turns into the summary.

    Args:
        messages: the whole conversation, the current query last.
        tier: the tier the prompt is for (named in errors).
        budget: prompt tokens the tier accepts.
        counter: counts a prompt as the tier does (bound tools included).
        counter_kind: whether ``counter`` is the tier's tokenizer or an estimate.
        summary: the conversation's summary so far, checked by :func:`load_summary`.
        summarizer: makes the summarizer, when turns must be folded; ``None`` when no model
            can summarize (then a history that does not fit skips the tier).
        settings: the low-water mark, verbatim turns and summary bound.
        extra_bytes: a bound on what the prompt adds besides the messages (bound tools).

    Raises:
        ContextOverflowError: even the current turn and the summary exceed the budget.
    """
    started = time.perf_counter()
    report = CompressionReport(budget=budget, counter=counter_kind)
    if byte_bound(messages) + extra_bytes <= budget:  # fits for sure: no need to count
        return FitOutcome(list(messages), report, summary, summary_changed=False)
    before = counter(messages)
    report.tokens_before = before
    if before <= budget:
        report.tokens_after = before
        return FitOutcome(list(messages), report, summary, summary_changed=False)

    leading, conversation = split_leading_system(messages)
    turn = user_turns(conversation)
    needed = before
    if summary is not None and summary.covered > 0:
        prompt = with_summary(leading, conversation, summary)
        needed = counter(prompt)
        if needed <= budget:
            verbatim = len(prompt) - max(len(leading), 1)
            _describe(report, summary, "reused", verbatim, needed, turn, started)
            return FitOutcome(prompt, report, summary, summary_changed=False)

    start = summary.covered if summary is not None else 0
    # The last message (with its tool call, if it is a result) always stays verbatim.
    points = [i for i in cut_points(conversation) if i > start]
    if not points:  # nothing left to fold
        raise _overflow(tier, needed, budget)
    folder = summarizer()
    if folder is None:
        raise ContextOverflowError(
            f"the conversation needs {needed} tokens and the {tier} tier accepts {budget}; "
            "no local model is configured to summarize it",
            tier=tier,
            tokens=needed,
            budget=budget,
        )
    digests = conversation_digests(conversation)
    cut = _choose_cut(leading, conversation, points, counter, budget, summary, folder, settings)
    extended = folder.extend(summary, conversation, cut, digest=digests[cut], turn=turn)
    while True:
        prompt = with_summary(leading, conversation, extended)
        tokens = counter(prompt)
        if tokens <= budget:
            break
        later = [i for i in points if i > cut]
        if not later:  # the current turn itself does not fit beside the summary
            raise _overflow(tier, tokens, budget)
        cut = later[0]
        extended = folder.extend(extended, conversation, cut, digest=digests[cut], turn=turn)
    recent_summaries.remember(extended)
    action: Literal["created", "extended"] = "created" if summary is None else "extended"
    _describe(report, extended, action, len(prompt) - max(len(leading), 1), tokens, turn, started)
    return FitOutcome(prompt, report, extended, summary_changed=True)


@dataclass
class TierFitter:
    """Fits histories to one tier's window, summarizing with the local tier's model.

    Build it with :meth:`for_tier`. The budget is the tier's window
    (:func:`~langchain_stream.context.tokens.tier_window`) less the answer's room; prompts are
    counted with the tier's tokenizer where one is available offline.
    """

    tier: Tier
    budget: int
    counter: TokenCounter
    counter_kind: CounterKind
    settings: Settings
    local: BaseChatModel | None = None
    """The model that summarizes; ``None`` when there is no local tier."""
    extra_bytes: int = 0
    """A bound on what the call adds to the prompt besides the messages (bound tools)."""

    @classmethod
    def for_tier(
        cls,
        tier: Tier,
        models: Mapping[Tier, BaseChatModel],
        call_kwargs: Mapping[str, Any],
        settings: Settings,
    ) -> TierFitter:
        """The fitter for ``tier``'s model and this call's arguments (no I/O)."""
        model = models[tier]
        window = tier_window(tier, model, settings)
        counter, kind = token_counter(model, call_kwargs)
        tools = call_kwargs.get("tools")
        return cls(
            tier=tier,
            budget=prompt_budget(window, model, call_kwargs, settings),
            counter=counter,
            counter_kind=kind,
            settings=settings,
            local=_summarizer_model(models),
            # The tools' schemas (as the estimate weighs them) and their instructions.
            extra_bytes=math.ceil(len(json.dumps(tools, default=str)) * 1.1) + 1024 if tools else 0,
        )

    def fits_outright(self, messages: Sequence[BaseMessage]) -> bool:
        """Whether ``messages`` surely fit, judged without a tokenizer (microseconds)."""
        return byte_bound(messages) + self.extra_bytes <= self.budget

    def summarizer(self) -> Summarizer | None:
        """The local model as summarizer, its input sized to its own window."""
        if self.local is None:
            return None
        counter, _ = token_counter(self.local)
        window = tier_window("local", self.local, self.settings).tokens
        bound = min(self.settings.context_summary_max_tokens, self.budget // 3, window // 3)
        return Summarizer(
            self.local,
            counter=counter,
            window=window,
            note_tokens=self.settings.context_note_tokens,
            max_tokens=bound,
        )

    def fit(
        self, messages: Sequence[BaseMessage], summary: ConversationSummary | None
    ) -> FitOutcome:
        """Fit ``messages`` to this tier (see :func:`fit_history`)."""
        return fit_history(
            messages,
            tier=self.tier,
            budget=self.budget,
            counter=self.counter,
            counter_kind=self.counter_kind,
            summary=summary,
            summarizer=self.summarizer,
            settings=self.settings,
            extra_bytes=self.extra_bytes,
        )


def _choose_cut(
    leading: list[BaseMessage],
    conversation: list[BaseMessage],
    points: list[int],
    counter: TokenCounter,
    budget: int,
    summary: ConversationSummary | None,
    folder: Summarizer,
    settings: Settings,
) -> int:
    """The earliest cut that brings the prompt to the low-water mark, keeping the last
    ``context_verbatim_turns`` turns; failing that, the earliest that fits at all."""
    counts: dict[int, int] = {}
    start, size = (summary.covered, summary.tokens) if summary is not None else (0, 0)
    query = _last_user_message(conversation)

    def prompt(index: int) -> int:
        # Verbatim part counted exactly; the summary as it would grow, a note per folded turn.
        if index not in counts:
            folded = max(user_turns(conversation[start:index]), 1)
            grown = min(folder.max_tokens, size + _SUMMARY_FRAMING + folder.note_tokens * folded)
            pinned = [conversation[query]] if query is not None and query < index else []
            counts[index] = counter([*leading, *pinned, *conversation[index:]]) + grown
        return counts[index]

    humans = [i for i in points if isinstance(conversation[i], HumanMessage)]
    starts = [i for i, m in enumerate(conversation) if isinstance(m, HumanMessage)]
    keep = settings.context_verbatim_turns
    keeping = [i for i in humans if len(starts) < keep or i <= starts[-keep]]
    low = int(settings.context_low_water * budget)
    for candidates, target in ((keeping, low), (keeping, budget), (humans, budget)):
        found = _first(candidates, lambda i, t=target: prompt(i) <= t)
        if found is not None:
            return found
    found = _first(points, lambda i: prompt(i) <= budget)
    return found if found is not None else points[-1]


def _first(candidates: Sequence[int], ok: Callable[[int], bool]) -> int | None:
    """The first candidate for which ``ok`` holds, ``ok`` being monotonic (binary search)."""
    low, high = 0, len(candidates)
    while low < high:
        mid = (low + high) // 2
        if ok(candidates[mid]):
            high = mid
        else:
            low = mid + 1
    return candidates[low] if low < len(candidates) else None


def _summarizer_model(models: Mapping[Tier, BaseChatModel]) -> BaseChatModel | None:
    """The model that summarizes: the ``local`` tier's, else the first in-process one of a
    ``[[tiers]]`` list (docs/tiers.md)."""
    from langchain_stream.tiers.local import ChatLocal

    if "local" in models:
        return models["local"]
    return next((m for m in models.values() if isinstance(m, ChatLocal)), None)


def _overflow(tier: Tier, tokens: int, budget: int) -> ContextOverflowError:
    return ContextOverflowError(
        f"the current turn needs {tokens} tokens even with the older turns summarized; "
        f"the {tier} tier accepts {budget}",
        tier=tier,
        tokens=tokens,
        budget=budget,
    )


def _describe(
    report: CompressionReport,
    summary: ConversationSummary,
    action: Literal["created", "extended", "reused"],
    messages: int,
    tokens: int,
    turn: int,
    started: float,
) -> None:
    report.applied = True
    report.tokens_after = tokens
    report.summary = action
    report.summary_turns = summary.turns
    report.summary_tokens = summary.tokens
    report.summary_age_turns = turn - summary.updated_turn
    report.summary_age_s = round(max(time.time() - summary.updated_at, 0.0), 3)
    report.compactions = summary.compactions
    report.verbatim_messages = messages
    report.compress_ms = round((time.perf_counter() - started) * 1000.0, 3)
