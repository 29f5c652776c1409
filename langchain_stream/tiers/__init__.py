"""The tier chat models: local (llama.cpp), cloud (OpenAI-compatible) and, through ``hpc``, HPC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_stream.config import Settings, Tier
from langchain_stream.tiers.local import ChatLocal


@dataclass(frozen=True)
class TierOptions:
    """What a caller sets on every tier at once (``StreamChatModel(timeout=, max_retries=)``);
    ``None`` keeps each tier's own setting."""

    timeout_s: float | None = None
    """Seconds one request may take on a tier: the local tier's deadline, the cloud API's
    request timeout, the HPC tier's bound on the whole answer."""
    max_retries: int | None = None
    """Retries of a failed cloud API call before the router falls back (default 0: the router
    falls back to another tier instead)."""


def build_tier_models(
    settings: Settings, options: TierOptions = TierOptions()
) -> dict[Tier, BaseChatModel]:
    """The chat model of every tier the settings configure; the local tier is always there."""
    timeout: dict[str, Any] = {} if options.timeout_s is None else {"timeout": options.timeout_s}
    local = ChatLocal(**({} if options.timeout_s is None else {"timeout_s": options.timeout_s}))
    models: dict[Tier, BaseChatModel] = {"local": local}
    if settings.hpc_endpoint_id:
        from langchain_stream.hpc.chat_model import ChatHPC

        # builds its executor on first use
        models["hpc"] = ChatHPC.from_settings(settings, **timeout)
    if settings.cloud_model:
        from langchain_stream.tiers.cloud import build_cloud_model

        models["cloud"] = build_cloud_model(settings, options.timeout_s, options.max_retries)
    return models


__all__ = ["ChatLocal", "TierOptions", "build_tier_models"]
