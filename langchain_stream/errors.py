"""The one error tree of langchain-stream.

Every error the package raises on purpose derives from :class:`StreamError`, itself a
langchain-core ``LangChainException``; leaves also derive from the built-in a caller would
catch (``ValueError``, ``ConnectionError``, ``TimeoutError``). ``is_retryable`` is the router's
fallback contract: it tries the next tier only for an error that says so, and
:func:`tier_error` translates a tier's failure into this tree at the tier's boundary. Leaves
carry the data a caller needs to act (``tier``, ``channel_id``, ``timeout_s``).

::

    StreamError
    ├── ConfigurationError            bad settings, unreadable config file
    ├── ModelLoadError                missing, corrupt or not a GGUF file (+ ConfigurationError)
    ├── InvalidRequestError           empty message list, unsupported content   (+ ValueError)
    ├── TierError                     a tier could not answer        (.tier, .is_retryable)
    │   │                             retryable (the router falls back) unless marked
    │   ├── TierUnavailableError      down, cold, unreachable          (+ ConnectionError)
    │   │   └── ContextOverflowError  the history does not fit the window (.tokens, .budget)
    │   ├── TierNotConfiguredError    no model, key or client library for the tier
    │   ├── TierRateLimitError        the tier's API said 429 (rate limit or quota)
    │   ├── TierServerError           the tier's API failed (HTTP 5xx, an error event)
    │   ├── TierTimeoutError          the tier did not answer in time (+ TimeoutError)
    │   │   ├── FirstTokenTimeoutError  no token within the first-token timeout (.timeout_s)
    │   │   └── TierDeadlineError     the request passed its deadline on a tier (.timeout_s)
    │   ├── ContentRefusedError       the tier's provider refused the content   (not retryable)
    │   ├── TierCancelledError        the tier's run was cancelled              (not retryable)
    │   └── MidStreamError            failed after tokens reached the caller    (.partial_text)
    ├── NoTierAvailableError          every candidate tier failed or is forbidden (.attempts)
    └── RelayError                    the WebSocket data plane                   (.channel_id)
        ├── RelayProtocolError        malformed or unexpected frame
        ├── RelayIntegrityError       authentication tag, sequence or count mismatch
        ├── RelayAuthError            missing, wrong, expired or wrong-role token
        ├── RelayLimitError           a bound was exceeded (frame size, buffer, channels)
        ├── RelayTimeoutError         first-token or idle timeout on the data plane (.timeout_s)
        ├── RelayUnavailableError     no relay could be reached (every URL failed to connect)
        └── ChannelClosedError        the peer went away or cancelled
"""

from __future__ import annotations

import concurrent.futures
import importlib
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.exceptions import LangChainException


class StreamError(LangChainException):
    """Base of every error raised by langchain-stream."""

    is_retryable: bool = False
    """Whether the same request may succeed on another attempt or another tier."""


class ConfigurationError(StreamError, ValueError):
    """The settings are invalid or a configured resource cannot be used."""


class ModelLoadError(ConfigurationError):
    """A GGUF model file is missing, a directory, unreadable or corrupt."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class InvalidRequestError(StreamError, ValueError):
    """The request itself cannot be served (e.g. no messages, unsupported content)."""


class TierError(StreamError):
    """A tier could not produce an answer."""

    is_retryable = True

    def __init__(self, message: str, *, tier: str) -> None:
        super().__init__(message)
        self.tier = tier


class TierUnavailableError(TierError, ConnectionError):
    """The tier is down, cold, unreachable, or the request does not fit its window."""


class TierNotConfiguredError(TierError):
    """The tier has no model configured (or its client library is missing)."""


class TierRateLimitError(TierError):
    """The tier's API is rate-limiting the caller or out of quota (HTTP 429)."""


class TierServerError(TierError):
    """The tier's API failed on its side (HTTP 5xx)."""


class ContextOverflowError(TierUnavailableError):
    """Even the compressed history does not fit the tier's window, so the tier is skipped.

    Raised before the tier is called (docs/design.md#context): the router falls back to the next
    tier as it would for a tier that is down, and ``tiers_tried`` says why.
    """

    def __init__(
        self, message: str, *, tier: str, tokens: int | None = None, budget: int | None = None
    ) -> None:
        super().__init__(message, tier=tier)
        self.tokens = tokens
        self.budget = budget


class TierTimeoutError(TierError, TimeoutError):
    """The tier did not answer in time (``timeout_s`` when the bound is known)."""

    def __init__(self, message: str, *, tier: str, timeout_s: float | None = None) -> None:
        super().__init__(message, tier=tier)
        self.timeout_s = timeout_s


class FirstTokenTimeoutError(TierTimeoutError):
    """No token arrived within the first-token timeout."""

    def __init__(self, message: str, *, tier: str, timeout_s: float) -> None:
        super().__init__(message, tier=tier, timeout_s=timeout_s)


class TierDeadlineError(TierTimeoutError):
    """The request passed its total deadline on a tier (``tier_timeout_s``): waiting for the
    tier, reading the prompt and writing the answer all count. Before the first token the router
    falls back to the next tier; after it the answer ends with a mid-stream error."""

    def __init__(self, message: str, *, tier: str, timeout_s: float) -> None:
        super().__init__(message, tier=tier, timeout_s=timeout_s)


class ContentRefusedError(TierError):
    """The tier's provider refused the request's content (a content filter).

    Not retryable: the refusal is the provider's decision about the content, not a fault of
    the tier, and sending the same content elsewhere to get around it is not the router's call.
    """

    is_retryable = False


class TierCancelledError(TierError):
    """The tier's run was cancelled (the caller went away or the producer cancelled)."""

    is_retryable = False


class MidStreamError(TierError):
    """The tier failed after some tokens had already reached the caller.

    It is never retried silently: gluing another tier's answer onto a partial one would
    produce text no model wrote.
    """

    is_retryable = False

    def __init__(self, message: str, *, tier: str, partial_text: str) -> None:
        super().__init__(message, tier=tier)
        self.partial_text = partial_text


class NoTierAvailableError(StreamError):
    """Every candidate tier failed before its first token or is forbidden by policy."""

    def __init__(self, message: str, *, attempts: Sequence[dict[str, str]] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


class RelayError(StreamError):
    """An error on the WebSocket data plane."""

    def __init__(self, message: str, *, channel_id: str | None = None) -> None:
        super().__init__(message)
        self.channel_id = channel_id


class RelayProtocolError(RelayError):
    """A frame is malformed, of an unknown version, or unexpected in this state."""


class RelayIntegrityError(RelayError):
    """A frame failed authentication, arrived out of sequence, or frames are missing."""


class RelayAuthError(RelayError):
    """A capability token is missing, wrong, expired, or for another role or channel."""


class RelayLimitError(RelayError):
    """A bound was exceeded: frame size, pre-consumer buffer, channels, or idle time."""


class RelayTimeoutError(RelayError):
    """The first frame or the next frame did not arrive in time."""

    is_retryable = True

    def __init__(self, message: str, *, channel_id: str | None = None, timeout_s: float) -> None:
        super().__init__(message, channel_id=channel_id)
        self.timeout_s = timeout_s


class RelayUnavailableError(RelayError):
    """No relay could be reached: every URL refused the connection, timed out or was shutting down.

    Retryable: the caller may fall back to batch mode or another tier.
    """

    is_retryable = True


class ChannelClosedError(RelayError):
    """The channel ended early: the producer died, or the consumer cancelled."""


def tier_error(exc: BaseException, tier: str) -> BaseException:
    """``exc``, raised by the chat model of ``tier``, in the terms of this error tree.

    The boundary every tier's failure passes (the project's own tiers and a user's chat model
    alike): a configuration error of the tier (a model file that is not a model) is
    :class:`TierNotConfiguredError`; the project's other errors stay as they are; the openai
    SDK's and httpx's errors, and Python's ``ConnectionError`` and ``TimeoutError``, become the
    matching :class:`TierError` (``__cause__`` is the original). Anything else (a ``TypeError``,
    a ``KeyError``: a bug, not an outage) is returned unchanged, so the router does not take it
    for a reason to fall back.
    """
    if isinstance(exc, ConfigurationError):  # e.g. the tier's model file is not a model
        return TierNotConfiguredError(f"the {tier} tier is misconfigured: {exc}", tier=tier)
    if isinstance(exc, StreamError):
        return exc
    if isinstance(exc, concurrent.futures.CancelledError):
        return TierCancelledError(f"the {tier} tier's run was cancelled", tier=tier)
    translated = _from_openai(exc, tier) or _from_httpx(exc, tier)
    if translated is not None:
        return translated
    if isinstance(exc, TimeoutError):
        return TierTimeoutError(f"the {tier} tier timed out: {exc}", tier=tier)
    if isinstance(exc, ConnectionError):
        return TierUnavailableError(f"the {tier} tier is unreachable: {exc}", tier=tier)
    if isinstance(exc, ValueError) and str(exc) == _NO_CHUNKS:
        return TierServerError(f"the {tier} tier answered nothing", tier=tier)
    return exc


# What langchain-core raises when a chat model's stream ends without a single chunk (a server
# that closed an answer it never began): the tier's failure, not a bug in the caller.
_NO_CHUNKS = "No generation chunks were returned"


_CONTEXT_OVERFLOW_CODES = {"context_length_exceeded", "string_above_max_length"}
_REFUSAL_CODES = {"content_filter", "content_policy_violation"}


def _from_openai(exc: BaseException, tier: str) -> StreamError | None:
    try:
        import openai
    except ImportError:
        return None
    if isinstance(exc, openai.APITimeoutError):
        return TierTimeoutError(f"the {tier} tier's API timed out", tier=tier)
    if isinstance(exc, openai.APIConnectionError):
        return TierUnavailableError(f"the {tier} tier's API is unreachable: {exc}", tier=tier)
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return ContentRefusedError(f"the {tier} tier's provider filtered the answer", tier=tier)
    if not isinstance(exc, openai.APIError):
        return None
    code = str(getattr(exc, "code", None) or "")
    status = getattr(exc, "status_code", None)
    said = f"the {tier} tier's API answered HTTP {status}: {exc.message}"
    if isinstance(exc, openai.RateLimitError):
        return TierRateLimitError(said, tier=tier)
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return TierNotConfiguredError(said + " (check its API key)", tier=tier)
    if isinstance(exc, openai.NotFoundError):
        return TierNotConfiguredError(said + " (check its model and base URL)", tier=tier)
    if code in _CONTEXT_OVERFLOW_CODES or "context length" in exc.message.lower():
        return ContextOverflowError(said, tier=tier)
    if code in _REFUSAL_CODES:
        return ContentRefusedError(said, tier=tier)
    if status is None or status >= 500:  # an error event in a stream, or the server failed
        return TierServerError(f"the {tier} tier's API failed: {exc.message}", tier=tier)
    return InvalidRequestError(said)


def _from_httpx(exc: BaseException, tier: str) -> StreamError | None:
    # httpx, and httpx2 (the openai SDK's HTTP client), share their exception classes' names.
    for module in _http_modules():
        if isinstance(exc, module.TimeoutException):
            return TierTimeoutError(f"the {tier} tier timed out: {exc}", tier=tier)
        if isinstance(exc, module.TransportError):
            return TierUnavailableError(f"the {tier} tier is unreachable: {exc}", tier=tier)
        if isinstance(exc, module.HTTPStatusError):
            status = exc.response.status_code
            said = f"the {tier} tier answered HTTP {status}"
            if status == 429:
                return TierRateLimitError(said, tier=tier)
            if status >= 500:
                return TierServerError(said, tier=tier)
            return InvalidRequestError(said)
    return None


def _http_modules() -> Iterator[Any]:
    for name in ("httpx", "httpx2"):
        try:
            yield importlib.import_module(name)
        except ImportError:
            continue


__all__ = [
    "ChannelClosedError",
    "ConfigurationError",
    "ContentRefusedError",
    "ContextOverflowError",
    "FirstTokenTimeoutError",
    "InvalidRequestError",
    "MidStreamError",
    "ModelLoadError",
    "NoTierAvailableError",
    "RelayAuthError",
    "RelayError",
    "RelayIntegrityError",
    "RelayLimitError",
    "RelayProtocolError",
    "RelayTimeoutError",
    "RelayUnavailableError",
    "StreamError",
    "TierCancelledError",
    "TierDeadlineError",
    "TierError",
    "TierNotConfiguredError",
    "TierRateLimitError",
    "TierServerError",
    "TierTimeoutError",
    "TierUnavailableError",
    "tier_error",
]
