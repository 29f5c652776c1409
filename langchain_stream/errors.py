"""The one error tree of langchain-stream.

Every error the package raises on purpose derives from :class:`StreamError`. Leaves carry
the data a caller needs to act (``tier``, ``channel_id``, ``timeout_s``) and mix in
langchain-core's error types where one fits, so LangChain code that catches those still works.

::

    StreamError
    ├── ConfigurationError            bad settings, unreadable config file
    ├── ModelLoadError                missing, corrupt or not a GGUF file (+ ConfigurationError)
    ├── InvalidRequestError           empty message list, unsupported content   (+ ValueError)
    ├── TierError                     a tier could not answer        (.tier, .is_retryable)
    │   ├── TierUnavailableError      down, cold, unreachable, over its window
    │   │   └── ContextOverflowError  even the compressed history does not fit (.tokens, .budget)
    │   ├── FirstTokenTimeoutError    no token within the first-token timeout   (.timeout_s)
    │   ├── TierDeadlineError         the request passed its deadline on a tier (.timeout_s)
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

from collections.abc import Sequence

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


class TierUnavailableError(TierError):
    """The tier is down, cold, unreachable, or the request does not fit its window."""


class ContextOverflowError(TierUnavailableError):
    """Even the compressed history does not fit the tier's window, so the tier is skipped.

    Raised before the tier is called (docs/design.md#context): the router falls back to the next
    tier as it would for a tier that is down, and ``tiers_tried`` says why.
    """

    def __init__(self, message: str, *, tier: str, tokens: int, budget: int) -> None:
        super().__init__(message, tier=tier)
        self.tokens = tokens
        self.budget = budget


class FirstTokenTimeoutError(TierError):
    """No token arrived within the first-token timeout."""

    def __init__(self, message: str, *, tier: str, timeout_s: float) -> None:
        super().__init__(message, tier=tier)
        self.timeout_s = timeout_s


class TierDeadlineError(TierError):
    """The request passed its total deadline on a tier (``tier_timeout_s``): waiting for the
    tier, reading the prompt and writing the answer all count. Before the first token the router
    falls back to the next tier; after it the answer ends with a mid-stream error."""

    def __init__(self, message: str, *, tier: str, timeout_s: float) -> None:
        super().__init__(message, tier=tier)
        self.timeout_s = timeout_s


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


__all__ = [
    "ChannelClosedError",
    "ConfigurationError",
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
    "TierDeadlineError",
    "TierError",
    "TierUnavailableError",
]
