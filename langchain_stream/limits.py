"""Timeouts of the router and its tiers, as one value object with one documented default each.

Every timeout a tier or the relay client applies by default comes from :data:`DEFAULT_TIMEOUTS`
(the settings' ``first_token_timeout_s`` and ``tier_timeout_s`` default to the same values), so
two modules cannot disagree about, say, how long a stream may stay silent. ``None`` turns a
bound off. The relay *server*'s own bounds (how long a channel may wait for its peer, how
long it may stay idle on both ends) are the server's limits, in
:class:`~langchain_stream.relay.limits.RelayLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timeouts:
    """How long the router and its tiers wait, in seconds."""

    first_token_s: float | None = 60.0
    """For a tier's first token; past it the router falls back to the next tier."""
    total_s: float | None = 120.0
    """For a whole answer on a tier: waiting, reading the prompt and writing all count."""
    idle_s: float | None = 30.0
    """Between two tokens of a streamed answer, once the first one arrived."""
    open_s: float | None = 10.0
    """For a connection to a relay to open."""
    close_s: float = 2.0
    """For a WebSocket's closing handshake, before the connection is dropped."""
    readiness_s: float = 5.0
    """For a tier's readiness check (e.g. an OpenAI-compatible API's ``GET /models``)."""


DEFAULT_TIMEOUTS = Timeouts()
"""The defaults every module reads."""

__all__ = ["DEFAULT_TIMEOUTS", "Timeouts"]
