"""The cloud tier: ``langchain-openai``'s chat model on OpenAI or any compatible base URL.

On OpenAI itself it is ``ChatOpenAI``; on a compatible server (a base URL is set) it is
``BaseChatOpenAI``, the base that OpenAI-compatible partner packages build on, which sends the
length limit as ``max_tokens`` (OpenAI takes ``max_completion_tokens``, which many compatible
servers, llama.cpp's among them, ignore). Either also answers the router's readiness check
(``acheck_ready``): one ``GET {base_url}/models`` with the key, so a cloud API that is
unreachable, rejects the key or fails is skipped before a request waits on it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_stream.config import Settings
from langchain_stream.errors import ConfigurationError
from langchain_stream.limits import DEFAULT_TIMEOUTS
from langchain_stream.tier_spec import TierSpec, default_tier_specs

READINESS_TIMEOUT_S = DEFAULT_TIMEOUTS.readiness_s
"""Bound on the readiness check's request."""


def build_cloud_model(
    settings: Settings, timeout_s: float | None = None, max_retries: int | None = None
) -> BaseChatModel:
    """The chat model of the configured cloud model, streaming usage included.

    ``timeout_s`` bounds each API request (``None``: the SDK's default); ``max_retries``
    retries a failed one (``None``: none, since the router falls back to another tier instead).

    Raises:
        ConfigurationError: ``langchain-openai`` is missing or no model is configured.
    """
    if not settings.cloud_model:
        raise ConfigurationError("the cloud tier needs STREAM_CLOUD_MODEL")
    (cloud,) = (spec for spec in default_tier_specs(settings) if spec.name == "cloud")
    return build_openai_model(cloud, settings, timeout_s=timeout_s, max_retries=max_retries)


def build_openai_model(
    spec: TierSpec,
    settings: Settings,
    *,
    timeout_s: float | None = None,
    max_retries: int | None = None,
) -> BaseChatModel:
    """The chat model of the ``openai``-kind tier ``spec``: its model on OpenAI or on the
    compatible server at its base URL.

    The spec's ``context_window``, when given, becomes the model's profile ``max_input_tokens``
    (which fitting the history reads); ``timeout_s`` and ``max_retries`` as in
    :func:`build_cloud_model`.

    Raises:
        ConfigurationError: the spec names no model, or ``langchain-openai`` is missing.
    """
    if not spec.model:
        raise ConfigurationError(f"the tier {spec.name!r} (kind openai) needs a model")
    try:
        from langchain_stream.tiers.cloud_models import CloudChatOpenAI, CompatibleChatOpenAI
    except ImportError as exc:
        raise ConfigurationError(
            "the cloud tier needs langchain-openai: pip install 'langchain-stream[cloud]'"
        ) from exc
    import openai

    extra: dict[str, Any] = {}
    if spec.context_window is not None:
        extra["profile"] = {"max_input_tokens": spec.context_window}
    cls = CloudChatOpenAI if spec.base_url is None else CompatibleChatOpenAI
    return cls(
        model=spec.model,
        base_url=spec.base_url,
        api_key=spec.api_key,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        stream_usage=True,
        timeout=timeout_s,
        max_retries=max_retries or 0,  # the router falls back to another tier instead
        # A client of the model's own: langchain-openai otherwise shares one per base URL, and
        # its pooled connections belong to the event loop that opened them.
        http_async_client=openai.DefaultAsyncHttpxClient(),
        **extra,
    )


async def check_openai_api(client: Any, timeout_s: float = READINESS_TIMEOUT_S) -> str | None:
    """Why the OpenAI-compatible API of ``client`` (an ``openai.AsyncOpenAI``) cannot take a
    request now, or ``None``: its ``GET /models`` with the client's key and headers."""
    import openai

    base = str(client.base_url).rstrip("/")
    # A connection of its own: the model's pooled one may belong to another event loop, and a
    # probe should not ride on a connection that happens to be alive.
    async with openai.DefaultAsyncHttpxClient(timeout=timeout_s) as http:
        probe = client.with_options(http_client=http, timeout=timeout_s, max_retries=0)
        try:
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
