"""The policy engine the router consults: one object per router, built from the settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.messages.utils import count_tokens_approximately

from langchain_stream.config import Settings
from langchain_stream.images import has_images
from langchain_stream.judge.base import Complexity
from langchain_stream.judge.shares import ShareWindow
from langchain_stream.limits import ImageLimits
from langchain_stream.policies.decide import (
    BudgetState,
    Decision,
    RoutingRequest,
    TierNeeds,
    decide_candidates,
)
from langchain_stream.policies.health import TierHealth
from langchain_stream.policies.payload import cloud_payload, payload_content
from langchain_stream.policies.prices import ModelPrice, PriceTable
from langchain_stream.policies.privacy import SensitiveDataDetector
from langchain_stream.policies.store import AnswerEntry, ConversationState, PolicyStore
from langchain_stream.routing import RoutingRecord
from langchain_stream.tier_spec import (
    DEFAULT_TIER_NAMES,
    LEVEL_RANK,
    TierSpec,
    default_tier_specs,
    specs_for,
)

LONG_SCAN_CHARS = 16_384
"""Requests with more text than this are checked for sensitive data off the event loop."""
DEFAULT_DATABASE = Path.home() / ".local" / "share" / "langchain-stream" / "stream.db"


def database_url(settings: Settings) -> str | None:
    """The policy database URL from the settings; ``None`` when disabled (``"none"``)."""
    url = settings.database_url
    if url is None:
        return f"sqlite:///{DEFAULT_DATABASE}"
    return None if url.strip().lower() in ("", "none", "off") else url


class PolicyEngine:
    """Privacy detection, budgets, stickiness, tier health, prices, ledger and audit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.specs: list[TierSpec] = (
            settings.tier_specs if settings.tiers else default_tier_specs(settings, every=True)
        )
        """The configured tiers; without ``[[tiers]]``, the three default tiers, so that one
        given to a router only as a chat model is routed as the settings describe it."""
        names = [spec.name for spec in self.specs]
        names += [name for name in DEFAULT_TIER_NAMES if name not in names]
        self._by_name = {spec.name: spec for spec in specs_for(names, self.specs)}
        # Only a declared context window makes counting the latest turn worth its time.
        self._windows = any(spec.context_window is not None for spec in self.specs)
        self.detector = SensitiveDataDetector(
            settings.sensitive_patterns, phone_region=settings.sensitive_phone_region
        )
        self.prices = PriceTable(
            {name: ModelPrice.model_validate(p) for name, p in settings.cloud_prices.items()}
        )
        self.health = TierHealth(
            failure_threshold=settings.breaker_failures,
            cooldown_s=settings.breaker_cooldown_s,
            ttl_s=settings.health_cache_s,
        )
        self._url = database_url(settings)
        self._store: PolicyStore | None = None
        self.image_limits = ImageLimits.from_settings(settings)
        """Bounds on a request's images."""
        self.shares = ShareWindow(settings.judge_share_window, target=settings.judge_target)
        """Classes and tiers of the recent requests, against the calibration target."""

    @property
    def store(self) -> PolicyStore | None:
        """The ledger/audit database, opened on first use; ``None`` when disabled."""
        if self._store is None and self._url is not None:
            rank = {name: spec.rank for name, spec in self._by_name.items()}
            self._store = PolicyStore(self._url, tier_rank=rank)
        return self._store

    def decide(
        self,
        *,
        messages: Sequence[BaseMessage],
        call_kwargs: Mapping[str, Any],
        summary: Mapping[str, Any] | None = None,
        complexity: Complexity | None,
        pin: str | None,
        models: Mapping[str, BaseChatModel],
        request: RoutingRequest,
    ) -> tuple[Decision, list[str]]:
        """The ordered candidate tiers and the kinds of sensitive data found.

        The check reads the request as the cloud tier would send it: ``messages`` in OpenAI's
        format and every call argument (tools, response format, stop sequences, ...), and the
        conversation's saved ``summary``, which fitting the history may send along.
        """
        available = list(models)
        sensitive: list[str] = []
        unscannable: list[str] = []
        # Only look for sensitive data when it could change anything: an external tier exists.
        if self.external(available):
            content = payload_content([cloud_payload(messages, call_kwargs), summary])
            sensitive = self.detector.kinds(content.texts, flow=content.flow)
            unscannable = sorted(set(content.unscannable))
        needs = request_needs(messages, call_kwargs, count_tokens=self._windows)
        floor_note = None
        if needs.vision and pin is None:
            complexity, floor_note = self._vision_floor(complexity)
        store = self.store if self.reads_store(request, available) else None
        conversation = ConversationState()
        if store is not None and request.conversation_id:
            if request.reset_conversation:
                store.reset_conversation(request.conversation_id)
            else:
                conversation = store.conversation(request.conversation_id)
        decision = decide_candidates(
            complexity=complexity,
            pin=pin,
            available=available,
            request=request,
            sensitive=sensitive,
            unscannable=unscannable,
            unscannable_rule=self.settings.unscannable_content,
            conversation=conversation,
            budget=self._budget(request.user) if store is not None else None,
            not_ready=lambda tier: self.health.not_ready(tier, models[tier]),
            private_conversations=self.settings.pin_sensitive_conversations,
            specs=self.specs,
            needs=needs,
        )
        if floor_note is not None:
            decision.policies.insert(0, floor_note)
        return decision, sensitive

    def _vision_floor(self, complexity: Complexity | None) -> tuple[Complexity | None, str | None]:
        """The class a request with images is routed as: at least ``vision_min_complexity``
        (the judge read only its words; docs/tiers.md#images)."""
        floor = Complexity(self.settings.vision_min_complexity)
        if complexity is None or LEVEL_RANK[complexity] >= LEVEL_RANK[floor]:
            return complexity, None
        note = f"vision: images attached: routed as {floor.value} (judged {complexity.value})"
        return floor, note

    def vision_unavailable(
        self,
        available: Sequence[str],
        request: RoutingRequest,
        pin: str | None,
        policies: Sequence[str] = (),
    ) -> str:
        """Why no tier may receive this request's images, naming the settings that decide it
        (``policies``: the decision's notes, which say which policy removed a tier)."""
        specs = specs_for(list(available), self.specs)
        seeing = [spec for spec in specs if spec.can("vision")]
        if pin is not None and pin not in [spec.name for spec in seeing]:
            return (
                f"the request carries images, and the tier it is pinned to ({pin!r}) does not "
                "read them; pin a tier whose capabilities include vision, or leave the tier "
                "to the router"
            )
        how = (
            'declare capabilities = [..., "vision"] on a [[tiers]] entry whose model reads images'
            if self.settings.tiers
            else "set hpc_vision = true for an HPC model that reads images"
            + ("" if self.settings.cloud_vision else ", or cloud_vision = true")
        )
        if not seeing:
            return f"the request carries images, and no configured tier reads images: {how}"
        kept = [spec.name for spec in seeing if spec.privacy == "institutional"]
        if not kept:
            external = ", ".join(spec.name for spec in seeing)
            if request.privacy == "institutional":
                why = "under privacy=institutional images never go to an external tier"
            elif any("rule unscannable_content=local" in note for note in policies):
                why = (
                    "images cannot be checked for sensitive data, and unscannable_content = "
                    '"local" keeps them off external tiers (set it to "cloud" to allow that)'
                )
            else:  # sensitive data, a private conversation, a spent budget
                removed = [n for n in policies if n.endswith("excluded")]
                why = "the routing policies removed them (" + "; ".join(removed) + ")"
            return (
                f"the request carries images; only external tiers read them ({external}), and "
                f"{why}; or {how}"
            )
        return (
            "the request carries images, and the routing policies leave no tier that reads "
            f"them (tiers that read images: {', '.join(kept)})"
        )

    def external(self, available: Sequence[str]) -> list[str]:
        """The available tiers that may not receive institutional data (the cloud)."""
        return [s.name for s in specs_for(list(available), self.specs) if s.privacy == "external"]

    def scans_long(
        self,
        messages: Sequence[BaseMessage],
        call_kwargs: Mapping[str, Any],
        available: Sequence[str],
    ) -> bool:
        """Whether the privacy check of this request takes long enough (a long text full of
        figures: up to 15 µs a character) to be run off the event loop."""
        if not self.external(available):
            return False
        size = sum(len(str(m.content)) for m in messages)
        for name in ("tools", "response_format", "stop"):
            if name in call_kwargs:
                size += len(str(call_kwargs[name]))
        return size > LONG_SCAN_CHARS

    def reads_store(self, request: RoutingRequest, available: Sequence[str]) -> bool:
        """Whether routing this request reads the database (a conversation, or a budget that
        could remove the cloud); most requests need no database read before their answer."""
        if self._url is None:
            return False
        capped = (
            self.settings.budget_daily_usd is not None
            or self.settings.budget_monthly_usd is not None
        )
        return request.conversation_id is not None or (capped and bool(self.external(available)))

    def _budget(self, user: str) -> Any:
        settings = self.settings

        def read() -> BudgetState:
            if settings.budget_daily_usd is None and settings.budget_monthly_usd is None:
                return BudgetState()
            assert self.store is not None
            today, month = self.store.spent_usd(user)
            return BudgetState(today, month, settings.budget_daily_usd, settings.budget_monthly_usd)

        return read

    def price_answer(self, record: RoutingRecord, cloud_model: str | None) -> None:
        """Fill in ``cost_usd`` and ``cloud_equivalent_usd`` (the same usage on
        ``cloud_model``, the cloud tier's model) from the record's usage."""
        usage = record.usage or {}
        tokens_in, tokens_out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        cloud_model = cloud_model or self.settings.cloud_model
        equivalent = self.prices.cost(cloud_model, tokens_in, tokens_out)
        spec = self._by_name.get(record.tier or "")
        if spec is not None and spec.cost_per_million_tokens is not None:
            record.cost_usd = spec.cost_per_million_tokens.usd(tokens_in, tokens_out)
        elif spec is not None and spec.privacy == "external":
            record.cost_usd = self.prices.cost(record.model, tokens_in, tokens_out) or 0.0
        else:
            record.cost_usd = 0.0
        if equivalent is None:  # no cloud model priced: the dearest configured tier's price
            priced = [s for s in self.specs if s.cost_per_million_tokens is not None]
            if priced:
                dearest = max(priced, key=lambda s: s.cost)
                equivalent = dearest.cost_per_million_tokens.usd(  # type: ignore[union-attr]
                    tokens_in, tokens_out
                )
        record.cloud_equivalent_usd = equivalent

    def record(self, record: RoutingRecord, request: RoutingRequest, *, answered: bool) -> None:
        """Write the decision to the audit log (and, when answered, the ledger)."""
        self.shares.add(record.complexity, record.tier if answered else None)
        store = self.store
        if store is None:
            return
        usage = record.usage or {}
        entry = AnswerEntry(
            user=request.user,
            conversation=request.conversation_id,
            privacy=request.privacy,
            sensitive=record.sensitive,
            complexity=record.complexity.value if record.complexity else None,
            tier=record.tier or "",
            reason=record.reason,
            model=record.model,
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            cost_usd=record.cost_usd or 0.0,
            cloud_equivalent_usd=record.cloud_equivalent_usd,
            policies=record.policies,
            tiers_tried=[a.model_dump() for a in record.tiers_tried],
        )
        if answered:
            store.record_answer(entry)
        else:
            store.record_failure(entry)


def request_needs(
    messages: Sequence[BaseMessage], call_kwargs: Mapping[str, Any], *, count_tokens: bool = True
) -> TierNeeds:
    """What the request needs of a tier: bound tools, a response format, images, and (with
    ``count_tokens``) the latest turn's tokens, which no summary can fold away."""
    tokens = 0
    if count_tokens:
        latest = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        tokens = count_tokens_approximately([latest]) if latest is not None else 0
    return TierNeeds(
        tools=bool(call_kwargs.get("tools")),
        structured_output=bool(call_kwargs.get("response_format")),
        vision=has_images(messages),
        context_tokens=tokens,
    )
