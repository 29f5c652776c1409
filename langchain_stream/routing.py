"""The routing record: where a request went, why, and what it cost (docs/design.md#request-path).

It rides in ``response_metadata["routing"]``. On a stream, the first chunk carries everything
known at the first token (tier, model, complexity, reason, judge and TTFT figures, tiers
tried) and the last chunk adds what is known only at the end (usage, duration, tokens/s,
cost), under disjoint keys, so merging the chunks yields the whole record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from langchain_stream.config import Tier
from langchain_stream.judge.base import Complexity

Reason = Literal["judge", "pin", "privacy", "budget", "sticky", "health", "fallback"]

# The default tiers' order for each class (docs/design.md#request-path), which
# `policies.decide.order_tiers` derives from their levels; configured tiers get theirs from it.
TIER_ORDER: dict[Complexity, tuple[Tier, ...]] = {
    Complexity.LOW: ("local", "hpc", "cloud"),
    Complexity.MEDIUM: ("hpc", "cloud", "local"),
    Complexity.HIGH: ("cloud", "hpc", "local"),
}

# Keys that only the end of a stream can fill in.
FINAL_KEYS = frozenset(
    {
        "usage",
        "usage_estimated",
        "duration_ms",
        "tokens_per_s",
        "cost_usd",
        "cloud_equivalent_usd",
    }
)


class TierAttempt(BaseModel):
    """One tier the router tried."""

    tier: Tier
    error: str | None = None
    """Why the tier failed before its first token; ``None`` when it answered."""


class CompressionReport(BaseModel):
    """What fitting the history to the routed tier's window did (docs/design.md#context)."""

    applied: bool = False
    """Whether older turns were replaced by the conversation's summary."""
    tokens_before: int | None = None
    """The whole history's prompt tokens; unset when it clearly fit without counting."""
    tokens_after: int | None = None
    """The prompt tokens sent to the tier."""
    budget: int | None = None
    """Prompt tokens the tier accepts: its window less the room kept for the answer."""
    counter: Literal["tokenizer", "estimate"] | None = None
    """Whether tokens were counted by the tier's own tokenizer or conservatively estimated."""
    summary: Literal["created", "extended", "reused"] | None = None
    """What happened to the conversation's summary: made now, extended with the turns that
    newly left the verbatim part, or reused as it was."""
    summary_turns: int | None = None
    """User turns folded into the summary."""
    summary_tokens: int | None = None
    """Size of the summary, in the local model's tokens."""
    summary_age_turns: int | None = None
    """User turns since the summary was last extended."""
    summary_age_s: float | None = None
    """Seconds since the summary was last extended."""
    compactions: int | None = None
    """How many times the summary was re-summarized to stay within its bound."""
    verbatim_messages: int | None = None
    """Messages of the conversation sent as they are, after the summary."""
    compress_ms: float | None = None
    """Time spent fitting the history (counting and summarizing)."""


class RoutingRecord(BaseModel):
    """Where one request went and why."""

    tier: Tier | None = None
    model: str | None = None
    complexity: Complexity | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    judge: str | None = None
    judge_ms: float | None = None
    reason: Reason = "judge"
    compression: CompressionReport = Field(default_factory=CompressionReport)
    ttft_ms: float | None = None
    """Time from the request entering the router to the first token."""
    tier_ttft_ms: float | None = None
    """The tier's own share of ``ttft_ms``: from calling the tier to its first token."""
    tiers_tried: list[TierAttempt] = Field(default_factory=list)
    policies: list[str] = Field(default_factory=list)
    """Each policy that changed the route, and how (privacy, budget, stickiness, health)."""
    sensitive: list[str] = Field(default_factory=list)
    """Kinds of sensitive data found in the request (never the data itself)."""
    images: list[dict[str, Any]] | None = None
    """Each image of the request: inline (media type, bytes, width, height) or by URL; never
    its bytes (docs/tiers.md#images)."""
    user: str | None = None
    conversation: str | None = None
    usage: dict[str, int] | None = None
    usage_estimated: bool | None = None
    """True when the tier reported no usage and the router estimated it."""
    duration_ms: float | None = None
    tokens_per_s: float | None = None
    cost_usd: float | None = None
    """What the answer cost, from its usage and the model's price (0 on local and HPC)."""
    cloud_equivalent_usd: float | None = None
    """What the same usage would have cost on the configured cloud model."""

    def first_chunk_metadata(self) -> dict[str, Any]:
        """The part of the record known at the first token."""
        return self.model_dump(mode="json", exclude=set(FINAL_KEYS), exclude_none=True)

    def final_chunk_metadata(self) -> dict[str, Any]:
        """The part known only at the end of the answer (disjoint from the first part)."""
        return self.model_dump(mode="json", include=set(FINAL_KEYS), exclude_none=True)


def candidate_tiers(complexity: Complexity, available: list[Tier]) -> list[Tier]:
    """Tiers to try for a class, in its order, among the available ones."""
    return [tier for tier in TIER_ORDER[complexity] if tier in available]
