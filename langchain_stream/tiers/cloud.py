"""The cloud tier: ``langchain-openai``'s ``ChatOpenAI`` on OpenAI or any compatible base URL.

The model it builds also answers the router's readiness check (``acheck_ready``): one
``GET {base_url}/models`` with the key, so a cloud API that is unreachable, rejects the key or
fails is skipped before a request waits on it. Its streamed chunks reach ``ChatOpenAI`` as the
parsed JSON they are (:mod:`langchain_stream.tiers.openai_stream`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr, model_validator

from langchain_stream.config import Settings
from langchain_stream.errors import ConfigurationError
from langchain_stream.tiers.openai_stream import PlainChunkCompletions

READINESS_TIMEOUT_S = 5.0
"""Bound on the readiness check's request."""


def build_cloud_model(
    settings: Settings, timeout_s: float | None = None, max_retries: int | None = None
) -> BaseChatModel:
    """``ChatOpenAI`` for the configured cloud model, streaming usage included.

    ``timeout_s`` bounds each API request (``None``: the SDK's default); ``max_retries``
    retries a failed one (``None``: none, since the router falls back to another tier instead).

    Raises:
        ConfigurationError: ``langchain-openai`` is missing or no model is configured.
    """
    if not settings.cloud_model:
        raise ConfigurationError("the cloud tier needs STREAM_CLOUD_MODEL")
    return build_openai_model(
        settings,
        model=settings.cloud_model,
        base_url=settings.cloud_base_url,
        api_key=settings.cloud_api_key,
        timeout_s=timeout_s,
        max_retries=max_retries,
    )


def build_openai_model(
    settings: Settings,
    *,
    model: str,
    base_url: str | None,
    api_key: SecretStr | None,
    context_window: int | None = None,
    timeout_s: float | None = None,
    max_retries: int | None = None,
) -> BaseChatModel:
    """``ChatOpenAI`` for ``model`` on OpenAI or the compatible server at ``base_url``.

    ``context_window``, when given, becomes the model's profile ``max_input_tokens`` (which
    fitting the history reads); ``timeout_s`` and ``max_retries`` as in
    :func:`build_cloud_model`.

    Raises:
        ConfigurationError: ``langchain-openai`` is missing.
    """
    try:
        # OpenAI itself takes the length limit as max_completion_tokens; many compatible
        # servers (llama.cpp's among them) read only max_tokens and would otherwise answer
        # without limit.
        cls = _cloud_chat_openai(compatible=base_url is not None)
    except ImportError as exc:
        raise ConfigurationError(
            "the cloud tier needs langchain-openai: pip install 'langchain-stream[cloud]'"
        ) from exc
    extra: dict[str, Any] = {}
    if context_window is not None:
        extra["profile"] = {"max_input_tokens": context_window}
    return cls(
        model=model,
        base_url=base_url,
        api_key=api_key,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        stream_usage=True,
        timeout=timeout_s,
        max_retries=max_retries or 0,  # the router falls back to another tier instead
        # A client of the tier's own: streamed requests go straight through it.
        http_async_client=_async_http_client(),
        **extra,
    )


async def check_openai_api(client: Any, timeout_s: float = READINESS_TIMEOUT_S) -> str | None:
    """Why the OpenAI-compatible API of ``client`` (an ``openai.AsyncOpenAI``) cannot take a
    request now, or ``None``: its ``GET /models`` with the client's key and headers."""
    import httpx
    import openai

    base = str(client.base_url).rstrip("/")
    try:
        # A connection of its own: the model's pooled one may belong to another event loop,
        # and a probe should not ride on a connection that happens to be alive.
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            probe = client.with_options(http_client=http, timeout=timeout_s, max_retries=0)
            await probe.models.list()
    except openai.APITimeoutError:
        return f"cloud API at {base} did not answer within {timeout_s} s"
    except openai.APIConnectionError as exc:
        return f"cloud API at {base} is unreachable: {exc.__cause__ or exc}"
    except openai.APIStatusError as exc:
        code = exc.status_code
        if code in (401, 403):
            return f"cloud API at {base} rejected the API key (HTTP {code})"
        if code == 429:
            return f"cloud API at {base} is rate-limiting or out of quota (HTTP 429)"
        if code >= 500:
            return f"cloud API at {base} is failing (HTTP {code})"
        # e.g. a compatible server without /models: nothing says it cannot answer.
    return None


def _async_http_client() -> Any:
    """The SDK's default async HTTP client (its timeouts, limits and redirects)."""
    import openai

    return openai.DefaultAsyncHttpxClient()


def _is_sdk(completions: Any) -> bool:
    return completions is not None and not isinstance(completions, PlainChunkCompletions)


@cache
def _cloud_chat_openai(*, compatible: bool) -> type[BaseChatModel]:
    """``ChatOpenAI`` with the readiness check; for compatible servers it also sends
    ``max_tokens``."""
    import httpx2
    from langchain_openai import ChatOpenAI
    from openai import AsyncStream, Stream

    class CloudChatOpenAI(ChatOpenAI):
        readiness_timeout_s: float = READINESS_TIMEOUT_S
        """Bound on :meth:`acheck_ready`."""

        @classmethod
        def is_lc_serializable(cls) -> bool:
            return False  # built at run time: nothing could load it back by name

        @model_validator(mode="after")
        def _plain_chunks(self) -> CloudChatOpenAI:
            if self.root_client is not None and _is_sdk(self.client):
                self.client = PlainChunkCompletions(self.client, self.root_client, Stream[object])
            if self.root_async_client is not None and _is_sdk(self.async_client):
                own = self.http_async_client
                self.async_client = PlainChunkCompletions(
                    self.async_client,
                    self.root_async_client,
                    AsyncStream[object],
                    own if isinstance(own, httpx2.AsyncClient) else None,
                    chunk_timeout_s=self.stream_chunk_timeout,
                )
                # The completions object keeps this bound now (without a task per chunk).
                self.stream_chunk_timeout = None
            return self

        async def acheck_ready(self) -> str | None:
            """Why the API cannot take a request now (unreachable, key rejected, failing)."""
            if self.root_async_client is None:
                return None
            return await check_openai_api(self.root_async_client, self.readiness_timeout_s)

    if not compatible:
        return CloudChatOpenAI

    class CompatibleChatOpenAI(CloudChatOpenAI):
        def _get_request_payload(self, input_: Any, *, stop: Any = None, **kwargs: Any) -> dict:
            payload = super()._get_request_payload(input_, stop=stop, **kwargs)
            if "max_completion_tokens" in payload:
                payload.setdefault("max_tokens", payload["max_completion_tokens"])
            return payload

    return CompatibleChatOpenAI
