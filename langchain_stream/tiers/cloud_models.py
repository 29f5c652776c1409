"""The cloud tier's chat model classes (they need ``langchain-openai``, the ``cloud`` extra)."""

from __future__ import annotations

from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI

from langchain_stream.tiers.cloud import READINESS_TIMEOUT_S, check_openai_api


class _ReadinessCheck:
    """The router's readiness check for an OpenAI-compatible API."""

    async def acheck_ready(self) -> str | None:
        """Why the API cannot take a request now (unreachable, key rejected, failing)."""
        client = self.root_async_client  # type: ignore[attr-defined]
        if client is None:
            return None
        return await check_openai_api(client, READINESS_TIMEOUT_S)


class CloudChatOpenAI(_ReadinessCheck, ChatOpenAI):
    """``ChatOpenAI`` with the router's readiness check (OpenAI itself)."""


class CompatibleChatOpenAI(_ReadinessCheck, BaseChatOpenAI):
    """An OpenAI-compatible server's chat model with the router's readiness check; the length
    limit goes out as ``max_tokens``."""


__all__ = ["CloudChatOpenAI", "CompatibleChatOpenAI"]
