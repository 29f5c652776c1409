"""The tier chat models: local (llama.cpp), OpenAI-compatible (the cloud, a GPU box) and HPC,
each built from its :class:`~langchain_stream.tier_spec.TierSpec`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_stream.config import Settings, Tier
from langchain_stream.errors import ConfigurationError
from langchain_stream.tier_spec import TierSpec
from langchain_stream.tiers.local import ChatLocal


@dataclass(frozen=True)
class TierOptions:
    """What a caller sets on every tier at once (``StreamChatModel(timeout=, max_retries=)``);
    ``None`` keeps each tier's own setting."""

    timeout_s: float | None = None
    """Seconds one request may take on a tier: the local tier's deadline, an OpenAI-compatible
    API's request timeout, the HPC tier's bound on the whole answer."""
    max_retries: int | None = None
    """Retries of a failed OpenAI-compatible API call before the router falls back (default 0:
    the router falls back to another tier instead)."""


def build_tier_model(
    spec: TierSpec, settings: Settings, options: TierOptions = TierOptions()
) -> BaseChatModel:
    """The chat model of one tier. Construction does no I/O: models load or connect on first
    use.

    Raises:
        ConfigurationError: the spec lacks what its kind needs, or the kind's extra is missing.
    """
    timeout: dict[str, Any] = {} if options.timeout_s is None else {"timeout": options.timeout_s}
    if spec.kind == "llama_cpp":
        fields: dict[str, Any] = {"n_ctx": spec.context_window} if spec.context_window else {}
        if options.timeout_s is not None:
            fields["timeout_s"] = options.timeout_s
        return ChatLocal(model_path=spec.model, projector_path=spec.projector, **fields)
    if spec.kind == "openai":
        from langchain_stream.tiers.cloud import build_openai_model

        return build_openai_model(
            spec, settings, timeout_s=options.timeout_s, max_retries=options.max_retries
        )
    from langchain_stream.hpc.chat_model import ChatHPC

    endpoint = spec.endpoint_id or settings.hpc_endpoint_id
    if not endpoint:
        raise ConfigurationError(
            f"the tier {spec.name!r} (kind hpc) needs an endpoint_id or STREAM_HPC_ENDPOINT_ID"
        )
    overrides = {"endpoint_id": endpoint, "model": spec.model or settings.hpc_model, **timeout}
    if spec.projector:
        overrides["projector"] = spec.projector
    return ChatHPC.from_settings(settings, **overrides)  # builds its executor on first use


def build_tier_models(
    settings: Settings, options: TierOptions = TierOptions()
) -> dict[Tier, BaseChatModel]:
    """The chat model of every configured tier, by name, in configuration order (without
    ``[[tiers]]``: the local tier always, HPC and cloud when configured)."""
    return {spec.name: build_tier_model(spec, settings, options) for spec in settings.tier_specs}


__all__ = ["ChatLocal", "TierOptions", "build_tier_model", "build_tier_models"]
