"""Turning the judge's class into the ordered tiers to try, under the routing policies.

Policies apply in a fixed order, each noting its effect (docs/design.md#request-path):

1. **pin** — the caller chose a tier (it replaces the judge's order);
2. **privacy** — ``privacy="institutional"``, sensitive data in the request, content that
   cannot be scanned (images, files) under ``unscannable_content="local"``, or a conversation
   that already contained sensitive data: the cloud is removed, even when pinned;
3. **budget** — the user's daily or monthly cloud cap is reached: the cloud is removed, and a
   HIGH query goes to HPC first;
4. **stickiness** — within a conversation the tier only moves up: tiers below the highest one
   that answered before go to the end (used only if everything above fails);
5. **health** — a tier whose breaker is open or that reports itself not ready (e.g. an HPC
   endpoint still queued or cold) goes to the end, so no request waits on a cold start.

``reason`` in the routing record names the last policy that changed which tier is tried first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from langchain_stream.judge.base import Complexity
from langchain_stream.policies.prices import format_usd
from langchain_stream.policies.store import TIER_RANK, ConversationState
from langchain_stream.routing import Reason, candidate_tiers

Privacy = Literal["standard", "institutional"]
UnscannableRule = Literal["local", "cloud"]


@dataclass(frozen=True)
class RoutingRequest:
    """Per-request inputs of the policies."""

    user: str = "default"
    """Whose budget the request draws on."""
    conversation_id: str | None = None
    """The conversation (LangGraph ``thread_id``) for stickiness and the privacy pin."""
    privacy: Privacy = "standard"
    """``institutional`` never uses the cloud."""
    reset_conversation: bool = False
    """Forget the conversation's floor tier and privacy pin before routing."""


@dataclass
class BudgetState:
    """The user's cloud spend against the caps (``None`` caps are off)."""

    spent_today_usd: float = 0.0
    spent_month_usd: float = 0.0
    daily_cap_usd: float | None = None
    monthly_cap_usd: float | None = None

    def exhausted(self) -> str | None:
        """Which cap is reached, described, or ``None``."""
        if self.daily_cap_usd is not None and self.spent_today_usd >= self.daily_cap_usd:
            return (
                f"daily cap {format_usd(self.daily_cap_usd)} reached "
                f"({format_usd(self.spent_today_usd)})"
            )
        if self.monthly_cap_usd is not None and self.spent_month_usd >= self.monthly_cap_usd:
            return (
                f"monthly cap {format_usd(self.monthly_cap_usd)} reached "
                f"({format_usd(self.spent_month_usd)})"
            )
        return None


@dataclass
class Decision:
    """The tiers to try, in order, and why."""

    candidates: list[str]
    reason: Reason
    policies: list[str] = field(default_factory=list)


def decide_candidates(
    *,
    complexity: Complexity | None,
    pin: str | None,
    available: Sequence[str],
    request: RoutingRequest,
    sensitive: Sequence[str],
    conversation: ConversationState,
    budget: Callable[[], BudgetState] | None,
    not_ready: Callable[[str], str | None],
    private_conversations: bool = True,
    unscannable: Sequence[str] = (),
    unscannable_rule: UnscannableRule = "local",
) -> Decision:
    """Apply the policies to the judge's class (or the pin) over the available tiers.

    ``unscannable`` describes content the detector could not read (``"data URL
    (image/png)"``); ``unscannable_rule`` says where such a ``standard`` request may go.
    """
    if pin is not None:
        decision = Decision([pin] if pin in available else [], "pin", [f"pin: {pin}"])
    else:
        order = candidate_tiers(complexity or Complexity.LOW, list(available))
        decision = Decision(order, "judge")

    privacy_cause = _privacy_cause(request, sensitive, conversation, private_conversations)
    if unscannable and "cloud" in available:
        # The audit log says which rule decided where unread content may go.
        what = f"unscannable content ({', '.join(unscannable)})"
        if request.privacy == "institutional":
            decision.policies.append(f"privacy: {what}: rule institutional: never to the cloud")
        elif unscannable_rule == "local" and privacy_cause is None:
            privacy_cause = f"{what}: rule unscannable_content=local"
        elif unscannable_rule == "local":
            decision.policies.append(f"privacy: {what}: rule unscannable_content=local")
        else:
            decision.policies.append(
                f"privacy: {what}: rule unscannable_content=cloud: the cloud is allowed"
            )
    if privacy_cause and "cloud" in available:
        # Privacy outranks a pin to the cloud: the request goes to HPC or local instead.
        kept = (
            [t for t in ("hpc", "local") if t in available]
            if pin == "cloud"
            else [t for t in decision.candidates if t != "cloud"]
        )
        _apply(decision, kept, "privacy", f"privacy: {privacy_cause}: cloud excluded")

    if "cloud" in decision.candidates and budget is not None:
        exhausted = budget().exhausted()
        if exhausted:
            rest = [t for t in decision.candidates if t != "cloud"]
            if complexity == Complexity.HIGH and "hpc" in rest:
                rest = ["hpc", *[t for t in rest if t != "hpc"]]
            _apply(decision, rest, "budget", f"budget: {exhausted}: cloud excluded")

    floor = conversation.floor_tier
    if floor in TIER_RANK and pin is None:
        above = [t for t in decision.candidates if TIER_RANK[t] >= TIER_RANK[floor]]
        below = [t for t in decision.candidates if TIER_RANK[t] < TIER_RANK[floor]]
        if above:
            _apply(
                decision, above + below, "sticky", f"sticky: the conversation has reached {floor}"
            )

    skipped = [(t, why) for t in decision.candidates if (why := not_ready(t))]
    if skipped and len(skipped) < len(decision.candidates):
        down = {t for t, _ in skipped}
        ready = [t for t in decision.candidates if t not in down]
        _apply(
            decision,
            ready + [t for t, _ in skipped],
            "health",
            *[f"health: {why}" for _, why in skipped],
        )
    return decision


def _privacy_cause(
    request: RoutingRequest,
    sensitive: Sequence[str],
    conversation: ConversationState,
    private_conversations: bool,
) -> str | None:
    if request.privacy == "institutional":
        return "institutional mode"
    if sensitive:
        return f"sensitive data ({', '.join(sensitive)})"
    if conversation.private and private_conversations:
        return "the conversation contained sensitive data"
    return None


def _apply(decision: Decision, candidates: list[str], reason: Reason, *notes: str) -> None:
    if candidates[:1] != decision.candidates[:1]:
        decision.reason = reason
    decision.candidates = candidates
    decision.policies.extend(notes)
