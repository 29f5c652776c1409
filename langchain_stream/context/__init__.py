"""Context-aware level retention: conversations fitted to each tier's window.

See docs/design.md#context.

- :mod:`~langchain_stream.context.tokens`: token counts per tier (the tier's tokenizer where
  available offline, a conservative estimate otherwise) and each tier's window and budget.
- :mod:`~langchain_stream.context.summary`: the conversation's running summary, written by the
  local model and extended turn by turn.
- :mod:`~langchain_stream.context.fit`: the prompt a tier receives: system messages, summary,
  recent turns verbatim; or the tier is skipped when even that does not fit.
- :mod:`~langchain_stream.context.store`: where summaries live between requests (a LangGraph
  checkpointer on SQLite or PostgreSQL, or process memory for conversations without an id).
"""

from __future__ import annotations

from langchain_stream.context.fit import FitOutcome, TierFitter, fit_history, load_summary
from langchain_stream.context.store import ConversationSaver, conversation_checkpointer
from langchain_stream.context.summary import ConversationSummary, Summarizer
from langchain_stream.context.tokens import (
    TierWindow,
    TokenCounter,
    estimate_tokens,
    prompt_budget,
    tier_window,
    token_counter,
)

__all__ = [
    "ConversationSaver",
    "ConversationSummary",
    "FitOutcome",
    "Summarizer",
    "TierFitter",
    "TierWindow",
    "TokenCounter",
    "conversation_checkpointer",
    "estimate_tokens",
    "fit_history",
    "load_summary",
    "prompt_budget",
    "tier_window",
    "token_counter",
]
