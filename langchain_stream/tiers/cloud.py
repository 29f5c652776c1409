"""The cloud tier: ``langchain-openai``'s ``ChatOpenAI`` on OpenAI or any compatible base URL."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from langchain_stream.config import Settings
from langchain_stream.errors import ConfigurationError


def build_cloud_model(settings: Settings) -> BaseChatModel:
    """``ChatOpenAI`` for the configured cloud model, streaming usage included.

    Raises:
        ConfigurationError: ``langchain-openai`` is missing or no model is configured.
    """
    if not settings.cloud_model:
        raise ConfigurationError("the cloud tier needs STREAM_CLOUD_MODEL")
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise ConfigurationError(
            "the cloud tier needs langchain-openai: pip install 'langchain-stream[cloud]'"
        ) from exc
    return ChatOpenAI(
        model=settings.cloud_model,
        base_url=settings.cloud_base_url,
        api_key=settings.cloud_api_key,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        stream_usage=True,
        max_retries=0,  # the router falls back to another tier instead of retrying
    )
