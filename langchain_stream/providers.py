"""``init_chat_model`` with the ``stream`` provider.

langchain's ``init_chat_model`` knows its providers from a list of its own, which a partner
package cannot join, so this module offers the same function with one provider more: ``stream``
(the router). Every other provider goes to langchain's, unchanged::

    from langchain_stream import init_chat_model

    router = init_chat_model("stream:auto")  # routes by complexity
    cloud = init_chat_model("cloud", model_provider="stream", timeout=30)  # pinned
    openai = init_chat_model("openai:gpt-4o-mini")  # langchain's own

A model of the ``stream`` provider is ``auto`` or a tier (``local``, ``hpc``, ``cloud``), also
as the server's ids (``stream-auto``, ``stream-cloud``, ...); such an id needs no provider.
Keyword arguments go to :class:`~langchain_stream.chat_model.StreamChatModel`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

from langchain_stream.errors import ConfigurationError

PROVIDER = "stream"
"""The provider name, as in ``"stream:auto"`` or ``model_provider="stream"``."""


def _stream_model(model: str | None, model_provider: str | None) -> str | None:
    """The model name when the ``stream`` provider is meant, else ``None``."""
    if model_provider is not None:
        provider = model_provider.replace("-", "_").lower()
        return (model or "auto") if provider == PROVIDER else None
    if model is None:
        return None
    prefix, colon, name = model.partition(":")
    if colon and prefix.lower() == PROVIDER:
        return name or "auto"
    return model if model.startswith(f"{PROVIDER}-") else None


def init_chat_model(
    model: str | None = None,
    *,
    model_provider: str | None = None,
    configurable_fields: Any = None,
    config_prefix: str | None = None,
    **kwargs: Any,
) -> BaseChatModel | Runnable[Any, Any]:
    """langchain's ``init_chat_model``, plus the ``stream`` provider.

    Args:
        model: ``"stream:auto"``, ``"stream:cloud"``, ``"stream-hpc"``; or any model
            langchain's ``init_chat_model`` takes.
        model_provider: ``"stream"``, or any provider of langchain's.
        configurable_fields: passed to langchain's for other providers; the ``stream``
            provider takes the model per call instead (``invoke(..., model="stream-cloud")``).
        config_prefix: passed to langchain's for other providers.
        **kwargs: arguments of the chat model (for ``stream``: ``StreamChatModel``'s).

    Raises:
        ConfigurationError: ``configurable_fields`` with the ``stream`` provider, or another
            provider without ``langchain`` installed.
        ValueError: an unknown ``stream`` model or argument.
    """
    name = _stream_model(model, model_provider)
    if name is not None:
        if configurable_fields is not None or config_prefix is not None:
            raise ConfigurationError(
                "configurable_fields and config_prefix are not supported with the stream "
                "provider: pass model='stream-<tier>' per call instead"
            )
        from langchain_stream.chat_model import StreamChatModel

        return StreamChatModel(model=name, **kwargs)
    try:
        from langchain.chat_models import init_chat_model as langchain_init_chat_model
    except ImportError as exc:
        raise ConfigurationError(
            f"model {model!r} is not of the stream provider, and other providers need "
            "langchain: pip install langchain"
        ) from exc
    return langchain_init_chat_model(
        model,
        model_provider=model_provider,
        configurable_fields=configurable_fields,
        config_prefix=config_prefix,
        **kwargs,
    )
