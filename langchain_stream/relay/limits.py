"""Every bound of the relay in one value object [RP §6].

:class:`RelayLimits` is immutable and checked on creation; ``None`` turns a bound off (for
benchmarks and tests, never in production). The defaults are the documented ones: the table in
``docs/relay-protocol.md`` §6 lists the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from langchain_stream.errors import ConfigurationError
from langchain_stream.failed_auth import FailedAuthLimit
from langchain_stream.relay.protocol import DEFAULT_MAX_FRAME_BYTES

_MIB = 1_048_576


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """The relay's bounds. Counts are per relay process.

    "Held" means open *or left behind*: a channel counts against every client address that joined
    it, and its buffered bytes against the producer's address, until the relay forgets the channel
    — not merely while a connection is open. So connecting and leaving in a loop uses up the
    quota of the address doing it, and nobody else's.
    """

    max_frame_bytes: int | None = DEFAULT_MAX_FRAME_BYTES
    """Bound on one message (64 KiB); a larger one closes the sender with 1009."""

    max_buffered_frames: int | None = 1_024
    """Frames one channel may hold before its consumer arrives."""

    max_buffered_bytes: int | None = _MIB
    """Bytes one channel may hold before its consumer arrives (1 MiB)."""

    max_buffered_bytes_per_client: int | None = 16 * _MIB
    """Bytes buffered for absent consumers, over all channels whose producer came from one client
    address (16 MiB)."""

    max_buffered_bytes_total: int | None = 256 * _MIB
    """The relay's memory ceiling for buffered frames, over all channels (256 MiB). Reaching it
    refuses new producers with HTTP 503 (clients fail over) and ends a channel that would pass it
    with 4004."""

    max_channels: int | None = 10_000
    """Channels held at once (open or left behind); more are refused with HTTP 503."""

    max_channels_per_client: int | None = 256
    """Channels one client address holds (open or left behind); more get HTTP 429."""

    pairing_timeout_s: float | None = 60.0
    """A channel whose two sides have not both connected this long after its first connection is
    ended (4005). Match it to the clients' first-token timeout (60 s by default)."""

    unattended_timeout_s: float | None = 10.0
    """A channel no connection is attached to (one side left, the other has not come) is
    forgotten after this, with what it buffered."""

    idle_timeout_s: float | None = 120.0
    """A paired channel that passes no frame for this long is closed (4005)."""

    close_timeout_s: float = 5.0
    """Wait for a peer to answer a close before the TCP connection is dropped."""

    max_ended_channels: int = 100_000
    """Ended channels remembered, each until its last token expires, so that neither its id nor its
    tokens open anything again. When this many unexpired ones are held, new channels are refused
    with HTTP 503 rather than forgetting one early. Size it above peak channels per token TTL."""

    max_failed_auth_per_client: int | None = 20
    """Refused tokens one client address may present within ``failed_auth_window_s``; past that
    its requests get HTTP 429 before their token is checked, until the oldest refusal leaves the
    window. Requests without a token are not counted."""

    failed_auth_window_s: int = 60
    """The moving window over which refused tokens are counted per client address, in seconds."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"relay limit {spec.name} must be positive, not {value!r}")

    @property
    def failed_auth(self) -> FailedAuthLimit:
        """The failed-authentication bound as the shared counter takes it (0: off)."""
        return FailedAuthLimit(self.max_failed_auth_per_client or 0, self.failed_auth_window_s)

    @property
    def sweep_interval_s(self) -> float | None:
        """How often the relay looks for channels past a timeout (``None``: never)."""
        timeouts = [
            t
            for t in (self.idle_timeout_s, self.pairing_timeout_s, self.unattended_timeout_s)
            if t is not None
        ]
        return min(max(min(timeouts) / 4, 0.01), 1.0) if timeouts else None


__all__ = ["RelayLimits"]
