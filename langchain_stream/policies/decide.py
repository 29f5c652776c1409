"""Turning the judge's class into the ordered tiers to try, under the routing policies.

The order itself comes from one rule, :func:`order_tiers` (docs/tiers.md): the cheapest tier
whose level covers the judged complexity, whose capabilities cover the request and whose
privacy class allows the data, then the rest in fallback order. Policies then apply in a fixed
order, each noting its effect (docs/design.md#request-path):

1. **pin** — the caller chose a tier (it replaces the judge's order);
2. **privacy** — ``privacy="institutional"``, sensitive data in the request, content that
   cannot be scanned (images, files) under ``unscannable_content="local"``, or a conversation
   that already contained sensitive data: the ``external`` tiers (the cloud) are removed, even
   when pinned;
3. **budget** — the user's daily or monthly cloud cap is reached: the external tiers are
   removed, and a HIGH query goes to the next tier below;
4. **stickiness** — within a conversation the tier only moves up: tiers of a lower level than
   the one that answered before go to the end (used only if everything above fails);
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
from langchain_stream.policies.store import ConversationState
from langchain_stream.routing import Reason
from langchain_stream.tier_spec import LEVEL_RANK, TierSpec, specs_for

Privacy = Literal["standard", "institutional"]
UnscannableRule = Literal["local", "cloud"]


@dataclass(frozen=True)
class TierNeeds:
    """What a request needs of the tier that answers it."""

    tools: bool = False
    """Tools are bound to the call."""
    structured_output: bool = False
    """The call sets a ``response_format``."""
    vision: bool = False
    """The messages carry images."""
    context_tokens: int = 0
    """Prompt tokens that no summary can fold away (the latest turn)."""

    def __bool__(self) -> bool:
        """Whether the request needs anything of a tier at all (most need nothing)."""
        return self.tools or self.structured_output or self.vision or self.context_tokens > 0

    def unmet_by(self, spec: TierSpec) -> list[str]:
        """What ``spec`` lacks for this request."""
        if not self:
            return []
        missing = [
            capability
            for capability, needed in (
                ("tools", self.tools),
                ("structured_output", self.structured_output),
                ("vision", self.vision),
            )
            if needed and not spec.can(capability)  # type: ignore[arg-type]
        ]
        if spec.context_window is not None and self.context_tokens > spec.context_window:
            missing.append(f"context window {spec.context_window} < {self.context_tokens}")
        return missing


def order_tiers(
    tiers: Sequence[TierSpec],
    *,
    complexity: Complexity | None,
    needs: TierNeeds = TierNeeds(),
    institutional: bool = False,
    pin: str | None = None,
) -> list[str]:
    """The candidate tiers for a request, in the order they are tried.

    A pinned tier is the only candidate (``[]`` when it is not among ``tiers``). Otherwise the
    tiers that can serve the request (their capabilities cover ``needs``; only
    ``institutional`` ones when the data is institutional) come first when their level covers
    ``complexity`` — cheapest first, then the lowest level, then configuration order — and then
    the others, highest level first: the closest to what the query needs. A tier that cannot
    serve the request is not a candidate at all.
    """
    if pin is not None:
        return [spec.name for spec in tiers if spec.name == pin][:1]
    required = LEVEL_RANK[complexity or Complexity.LOW]  # a StrEnum: its value is the key
    covering: list[tuple[float, int, int, str]] = []
    below: list[tuple[int, float, int, str]] = []
    for index, spec in enumerate(tiers):
        if (institutional and spec.privacy != "institutional") or needs.unmet_by(spec):
            continue
        rank, cost = spec.rank, spec.cost
        if rank >= required:
            covering.append((cost, rank, index, spec.name))
        else:
            below.append((-rank, cost, index, spec.name))
    return [item[-1] for item in sorted(covering)] + [item[-1] for item in sorted(below)]


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
    specs: Sequence[TierSpec] = (),
    needs: TierNeeds = TierNeeds(),
) -> Decision:
    """Apply the policies to the judge's class (or the pin) over the available tiers.

    ``unscannable`` describes content the detector could not read (``"data URL
    (image/png)"``); ``unscannable_rule`` says where such a ``standard`` request may go.
    ``specs`` describe the available tiers (default tiers missing from it get their default
    spec); ``needs`` is what the request needs of a tier.
    """
    tiers = specs_for(list(available), specs)
    external = [spec.name for spec in tiers if spec.privacy == "external"]
    if pin is not None:
        decision = Decision(order_tiers(tiers, complexity=None, pin=pin), "pin", [f"pin: {pin}"])
        pinned = next((spec for spec in tiers if spec.name == pin), None)
        if needs.vision and pinned is not None and not pinned.can("vision"):
            # Images are never handed to a tier that cannot read them, pinned or not.
            decision.candidates = []
            decision.policies.append(f"capabilities: {pin} lacks vision")
    else:
        order = order_tiers(tiers, complexity=complexity, needs=needs)
        decision = Decision(order, "judge")
        if needs:
            unfit = [(spec.name, lack) for spec in tiers if (lack := needs.unmet_by(spec))]
            decision.policies.extend(
                f"capabilities: {name} lacks {', '.join(lack)}" for name, lack in unfit
            )

    privacy_cause = _privacy_cause(request, sensitive, conversation, private_conversations)
    if unscannable and external:
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
    if privacy_cause and external:
        if pin in external:
            # Privacy outranks a pin to an external tier: the institutional tiers closest to
            # the pinned tier's level answer instead.
            level = Complexity(next(s.level for s in tiers if s.name == pin))
            kept = order_tiers(tiers, complexity=level, needs=needs, institutional=True)
        else:
            kept = [t for t in decision.candidates if t not in external]
        excluded = ", ".join(external)
        _apply(decision, kept, "privacy", f"privacy: {privacy_cause}: {excluded} excluded")

    paid = [t for t in decision.candidates if t in external]
    if paid and budget is not None:
        exhausted = budget().exhausted()
        if exhausted:
            rest = [t for t in decision.candidates if t not in external]
            _apply(decision, rest, "budget", f"budget: {exhausted}: {', '.join(paid)} excluded")

    rank = {spec.name: spec.rank for spec in tiers}
    floor = conversation.floor_tier
    if floor in rank and pin is None:
        above = [t for t in decision.candidates if rank[t] >= rank[floor]]
        below = [t for t in decision.candidates if rank[t] < rank[floor]]
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
