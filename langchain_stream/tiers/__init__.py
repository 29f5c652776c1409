"""The tier chat models: local (llama.cpp), cloud (OpenAI-compatible) and, through ``hpc``, HPC."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from langchain_stream.config import Settings, Tier
from langchain_stream.tiers.local import ChatLocal


def build_tier_models(settings: Settings) -> dict[Tier, BaseChatModel]:
    """The chat model of every tier the settings configure; the local tier is always there."""
    models: dict[Tier, BaseChatModel] = {"local": ChatLocal()}
    if settings.hpc_endpoint_id:
        from langchain_stream.hpc.chat_model import ChatHPC

        models["hpc"] = ChatHPC.from_settings(settings)  # builds its executor on first use
    if settings.cloud_model:
        from langchain_stream.tiers.cloud import build_cloud_model

        models["cloud"] = build_cloud_model(settings)
    return models


__all__ = ["ChatLocal", "build_tier_models"]
