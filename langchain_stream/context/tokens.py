"""Token counts and context windows per tier (docs/design.md#context).

A tier's prompt is counted with the tier's own tokenizer where one is available offline: the
local tier's llama.cpp tokenizer and chat template (:meth:`ChatLocal.count_tokens
<langchain_stream.tiers.local.ChatLocal.count_tokens>`), exact to the token. Other tiers get
:func:`estimate_tokens`, a deliberately conservative estimate: their tokenizers are not on this
machine (tiktoken downloads its encodings on first use, so offline it has none), and an
overestimate only compresses a little early, where an underestimate fails the call (it is then
skipped like a tier that is down).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.messages.utils import count_tokens_approximately

from langchain_stream.config import Settings, Tier

TokenCounter = Callable[[Sequence[BaseMessage]], int]
"""Prompt tokens of a message list, as one tier sees them."""

CounterKind = Literal["tokenizer", "estimate"]

# The estimate is the larger of two counts. (1) langchain-core's approximate count at 3
# characters a token, where BPE tokenizers average about 4 on English prose; 4 tokens of role and
# delimiters per message (OpenAI's chat format uses 3); 3 for the reply's opening. (2) A count by
# kind of character, for text that packs fewer characters into a token: a token per 4 letters of
# a word, one per digit and per punctuation mark (small vocabularies split numbers digit by
# digit), one per extra whitespace character, and one per UTF-8 byte outside ASCII; plus 10 %.
# Measured against the embedded model's small-vocabulary tokenizer it stays above on prose, code,
# numbers, JSON and non-Latin scripts; random strings (keys, base64) and all-caps text can still
# exceed it.
ESTIMATE_CHARS_PER_TOKEN = 3.0
ESTIMATE_TOKENS_PER_MESSAGE = 4
ESTIMATE_REPLY_TOKENS = 3
_LETTERS = re.compile(r"[A-Za-z]+")
_DIGITS_AND_SYMBOLS = re.compile(r"[0-9!-/:-@\[-`{-~]")
_SPACE_RUNS = re.compile(r"\s{2,}")
# Defaults for windows a model does not report (see :func:`tier_window`).
DEFAULT_HPC_WINDOW = 8192
DEFAULT_CLOUD_WINDOW = 32768


def estimate_text_tokens(text: str) -> int:
    """The count by kind of character described above, for one text."""
    letters = sum((len(word) + 3) // 4 for word in _LETTERS.findall(text))
    marks = len(_DIGITS_AND_SYMBOLS.findall(text))
    spaces = sum(len(run) - 1 for run in _SPACE_RUNS.findall(text))
    wide = len(text.encode("utf-8")) - len(text.encode("ascii", "ignore"))
    return math.ceil((letters + marks + spaces + wide) * 1.1)


def estimate_tokens(
    messages: Sequence[BaseMessage], *, tools: Sequence[dict[str, Any]] | None = None
) -> int:
    """A conservative token count for a tier whose tokenizer is not available offline.

    The larger of langchain-core's :func:`count_tokens_approximately` at 3 characters a token
    (it counts tool calls, tool-call ids and bound tool schemas too) and a count by kind of
    character (see the module's notes), plus the reply's opening.
    """
    approximate = count_tokens_approximately(
        messages,
        chars_per_token=ESTIMATE_CHARS_PER_TOKEN,
        extra_tokens_per_message=ESTIMATE_TOKENS_PER_MESSAGE,
        tools=list(tools) if tools else None,
    )
    by_kind = estimate_text_tokens(json.dumps(list(tools))) if tools else 0
    for message in messages:
        text = message.text
        if calls := getattr(message, "tool_calls", None):
            text += json.dumps(calls, default=str)
        by_kind += ESTIMATE_TOKENS_PER_MESSAGE + estimate_text_tokens(text)
    return max(approximate, by_kind) + ESTIMATE_REPLY_TOKENS


def token_counter(
    model: BaseChatModel, call_kwargs: Mapping[str, Any] | None = None
) -> tuple[TokenCounter, CounterKind]:
    """How to count a prompt for ``model``, bound tools included, and whether it is exact.

    Args:
        model: the tier's chat model.
        call_kwargs: the call's arguments; its ``tools`` and ``tool_choice`` add to the prompt.
    """
    from langchain_stream.tiers.local import ChatLocal

    kwargs = call_kwargs or {}
    tools = kwargs.get("tools") or None
    if isinstance(model, ChatLocal):
        choice = kwargs.get("tool_choice")
        return (lambda messages: model.count_tokens(messages, tools=tools, tool_choice=choice)), (
            "tokenizer"
        )
    return (lambda messages: estimate_tokens(messages, tools=tools)), "estimate"


def byte_bound(messages: Sequence[BaseMessage]) -> int:
    """An upper bound on both counts above, with no tokenizer: a token holds at least one byte
    (the estimate counts at most 1.1 a byte), and chat templates add a few tokens per message
    (bound tools not included)."""
    total = 64
    for message in messages:
        size = len(message.text.encode("utf-8"))
        if calls := getattr(message, "tool_calls", None):
            size += len(json.dumps(calls, default=str).encode("utf-8"))
        total += math.ceil(size * 1.1) + 16
    return total


@dataclass(frozen=True)
class TierWindow:
    """How many prompt tokens a tier accepts."""

    tokens: int
    """The context window, or the model's input limit when ``shared`` is false."""
    shared: bool
    """Whether the answer shares the window with the prompt (llama.cpp's ``n_ctx``)."""
    source: Literal["model", "profile", "settings"]
    """Where the figure came from: the model's ``n_ctx``, its LangChain model profile, or the
    settings' default."""


def tier_window(tier: Tier, model: BaseChatModel, settings: Settings) -> TierWindow:
    """The context window of ``tier``'s model.

    In order: a window set in the settings for that tier (``hpc_context_tokens``,
    ``cloud_context_tokens``); the model's own ``n_ctx`` (llama.cpp models); its LangChain model
    profile's ``max_input_tokens``; the local window for an HPC tier on llama.cpp workers
    (loaded with ``local_n_ctx``); else a default of 8192 (HPC) or 32768 (cloud).
    """
    configured = {"hpc": settings.hpc_context_tokens, "cloud": settings.cloud_context_tokens}
    if (tokens := configured.get(tier)) is not None:
        return TierWindow(tokens, shared=True, source="settings")
    n_ctx = getattr(model, "n_ctx", None)
    if isinstance(n_ctx, int) and n_ctx > 0:
        return TierWindow(n_ctx, shared=True, source="model")
    profile = getattr(model, "profile", None)
    if isinstance(profile, Mapping) and isinstance(profile.get("max_input_tokens"), int):
        return TierWindow(int(profile["max_input_tokens"]), shared=False, source="profile")
    if tier == "hpc":
        tokens = settings.local_n_ctx if not settings.hpc_backend_url else DEFAULT_HPC_WINDOW
        return TierWindow(tokens, shared=True, source="settings")
    if tier == "local":
        return TierWindow(settings.local_n_ctx, shared=True, source="settings")
    return TierWindow(DEFAULT_CLOUD_WINDOW, shared=True, source="settings")


def prompt_budget(
    window: TierWindow,
    model: BaseChatModel,
    call_kwargs: Mapping[str, Any],
    settings: Settings,
) -> int:
    """Prompt tokens allowed: the window, less the answer's room when they share it.

    The answer's room is the call's ``max_tokens``, else the model's, else the settings'
    ``context_answer_tokens``; at most half the window, so a large ``max_tokens`` cannot leave
    a prompt no room at all.
    """
    if not window.shared:
        return window.tokens
    answer = call_kwargs.get("max_tokens")
    if not isinstance(answer, int):
        answer = getattr(model, "max_tokens", None)
    if not isinstance(answer, int) or answer <= 0:
        answer = settings.context_answer_tokens
    return window.tokens - min(answer, window.tokens // 2)
