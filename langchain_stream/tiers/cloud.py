"""The cloud tier: ``langchain-openai``'s ``ChatOpenAI`` on OpenAI or any compatible base URL."""

from __future__ import annotations

from functools import cache
from typing import Any

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
    # OpenAI itself takes the length limit as max_completion_tokens; many compatible servers
    # (llama.cpp's among them) read only max_tokens and would otherwise answer without limit.
    cls = ChatOpenAI if settings.cloud_base_url is None else _compatible_chat_openai()
    return cls(
        model=settings.cloud_model,
        base_url=settings.cloud_base_url,
        api_key=settings.cloud_api_key,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        stream_usage=True,
        max_retries=0,  # the router falls back to another tier instead of retrying
    )


@cache
def _compatible_chat_openai() -> type[BaseChatModel]:
    """``ChatOpenAI`` that also sends ``max_tokens``, for OpenAI-compatible servers."""
    from langchain_openai import ChatOpenAI

    class CompatibleChatOpenAI(ChatOpenAI):
        def _get_request_payload(self, input_: Any, *, stop: Any = None, **kwargs: Any) -> dict:
            payload = super()._get_request_payload(input_, stop=stop, **kwargs)
            if "max_completion_tokens" in payload:
                payload.setdefault("max_tokens", payload["max_completion_tokens"])
            return payload

    return CompatibleChatOpenAI
