"""Mid-stream failover, the pure parts: the producer's resend window, the consumer's ACKs, and
when each side pings its relay.

No asyncio and no I/O: time comes from the caller, so every rule is tested with bytes and a fake
clock. The clients move a channel to the next relay of its rendezvous order when a relay dies or
stalls; this module decides what is resent, when the consumer acknowledges, and when a relay
that sends nothing is gone [RP §13].
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields

from langchain_stream.errors import ConfigurationError, RelayLimitError, RelayProtocolError

_MIB = 1_048_576


@dataclass(frozen=True, slots=True)
class FailoverLimits:
    """The bounds and timings of mid-stream failover [RP §13.5].

    The resend window must fit in a relay's pre-consumer buffer (1,024 frames, 1 MiB by default),
    because the producer resends it to the new relay before the consumer may have arrived there.
    """

    max_unacked_frames: int = 1_024
    """Frames the producer holds unacknowledged; past it the sender waits for an ACK."""

    max_unacked_bytes: int = _MIB
    """Bytes of sealed frames the producer holds unacknowledged (1 MiB)."""

    ack_every_frames: int = 16
    """The consumer acknowledges at least every this many frames..."""

    ack_interval_s: float = 0.25
    """...and at most this long after the first frame it has not acknowledged yet."""

    ack_timeout_s: float = 2.0
    """The producer fails over when frames stay unacknowledged and no ACK came for this long."""

    heartbeat_s: float = 1.0
    """An idle producer sends an empty DATA frame this often, so silence means a stalled relay."""

    progress_timeout_s: float = 3.0
    """Once a frame arrived, the consumer fails over after this long without one."""

    resume_timeout_s: float = 5.0
    """On a relay just failed over to, how long each side waits for the other before moving on:
    longer than the other side's detection, so the two do not chase each other."""

    ping_interval_s: float | None = 0.5
    """A side pings its relay once the relay has sent it nothing (no frame, no pong) for this
    long (``None``: no pings; only the progress and ACK timeouts notice a stopped relay)."""

    ping_timeout_s: float | None = 0.5
    """A ping unanswered this long means the relay is gone: the side moves on at once, without
    waiting for the connection to close (``None``: no pings either). A relay that stops is
    noticed within ``ping_interval_s + ping_timeout_s`` of the last thing it sent."""

    dial_timeout_s: float = 2.0
    """Bound on each connection attempt while failing over: a stopped relay accepts TCP and never
    answers the handshake, so waiting on it longer only delays the move to the next one."""

    max_failovers: int = 8
    """Failovers one channel may make before the side gives up."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None and spec.name.startswith("ping"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"failover {spec.name} must be positive, not {value!r}")
        if self.heartbeat_s >= self.progress_timeout_s:
            raise ConfigurationError("failover heartbeat_s must be below progress_timeout_s")
        if self.resume_timeout_s < max(self.progress_timeout_s, self.ack_timeout_s):
            raise ConfigurationError(
                "failover resume_timeout_s must be at least progress_timeout_s and ack_timeout_s"
            )
        if self.ack_interval_s >= self.ack_timeout_s:
            raise ConfigurationError("failover ack_interval_s must be below ack_timeout_s")

    @property
    def ping_bound_s(self) -> float | None:
        """How long after the last thing a stopped relay sent a side notices it by ping
        (``None``: no pings)."""
        if self.ping_interval_s is None or self.ping_timeout_s is None:
            return None
        return self.ping_interval_s + self.ping_timeout_s


class ResendWindow:
    """The producer's sealed frames that the consumer has not acknowledged [RP §13.1].

    Frames are kept as the exact bytes sent: a resent frame is the same ciphertext under the same
    nonce, so failover never seals different plaintext under a nonce already used.

    Args:
        limits: Bounds on frames and bytes held.
    """

    def __init__(self, limits: FailoverLimits | None = None) -> None:
        self._limits = limits or FailoverLimits()
        self._frames: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        self._next_seq = 0
        self._acked = 0
        self._progress_at = 0.0
        self._resumed = False

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def bytes(self) -> int:
        """Bytes held."""
        return self._bytes

    @property
    def acked(self) -> int:
        """Every frame below this sequence number is acknowledged."""
        return self._acked

    @property
    def next_seq(self) -> int:
        """The sequence number the next frame held will have."""
        return self._next_seq

    def frames_from(self, seq: int) -> list[bytes]:
        """The frames held with sequence number ``seq`` or above, oldest first."""
        return [frame for s, frame in self._frames if s >= seq]

    def room_for(self, size: int) -> bool:
        """Whether a frame of ``size`` bytes may be added now."""
        return (
            len(self._frames) < self._limits.max_unacked_frames
            and self._bytes + size <= self._limits.max_unacked_bytes
        )

    def push(self, seq: int, frame: bytes, now: float) -> None:
        """Hold a frame just sealed with sequence number ``seq``.

        Raises:
            RelayLimitError: The window is full (frames or bytes); wait for an ACK first.
            RelayProtocolError: ``seq`` is not the next sequence number.
        """
        if seq != self._next_seq:
            raise RelayProtocolError(f"resend window expects sequence {self._next_seq}, not {seq}")
        if not self.room_for(len(frame)):
            raise RelayLimitError(
                f"resend window full: {len(self._frames)} frames / {self._bytes} bytes "
                f"unacknowledged (limits {self._limits.max_unacked_frames} frames / "
                f"{self._limits.max_unacked_bytes} bytes)"
            )
        if not self._frames:
            self._progress_at = now
        self._frames.append((seq, frame))
        self._bytes += len(frame)
        self._next_seq = seq + 1

    def ack(self, next_seq: int, now: float) -> int:
        """Drop the frames below ``next_seq``; return how many were dropped.

        An ACK at or below one already seen changes nothing (ACKs are cumulative).

        Raises:
            RelayProtocolError: ``next_seq`` acknowledges a frame never sent.
        """
        if next_seq > self._next_seq:
            raise RelayProtocolError(
                f"ACK for sequence {next_seq - 1}, but only {self._next_seq} frames were sent"
            )
        dropped = 0
        while self._frames and self._frames[0][0] < next_seq:
            self._bytes -= len(self._frames.popleft()[1])
            dropped += 1
        if next_seq > self._acked or self._resumed:
            self._acked = max(self._acked, next_seq)
            self._progress_at = now
            self._resumed = False
        return dropped

    def resend(self, now: float) -> list[bytes]:
        """The frames to send again on a new relay, oldest first; the ACK clock restarts, with
        ``resume_timeout_s`` for the consumer to arrive there."""
        self._progress_at = now
        self._resumed = True
        return [frame for _, frame in self._frames]

    def stalled(self, now: float) -> bool:
        """Whether frames wait and no ACK came for ``ack_timeout_s`` (``resume_timeout_s`` on a
        relay just failed over to, until the first ACK there): the relay is stuck."""
        limits = self._limits
        timeout_s = limits.resume_timeout_s if self._resumed else limits.ack_timeout_s
        return bool(self._frames) and now - self._progress_at > timeout_s


class AckSchedule:
    """When the consumer acknowledges: every ``ack_every_frames`` frames, or ``ack_interval_s``
    after the first frame not yet acknowledged, whichever comes first [RP §13.2]."""

    def __init__(self, limits: FailoverLimits | None = None) -> None:
        self._limits = limits or FailoverLimits()
        self._pending = 0
        self._since = 0.0

    def received(self, now: float) -> bool:
        """Count one frame received; return whether to acknowledge now."""
        if self._pending == 0:
            self._since = now
        self._pending += 1
        return self.due_in(now) == 0.0

    def due_in(self, now: float) -> float | None:
        """Seconds until an ACK is due (0: now), or ``None`` if nothing waits for one."""
        if self._pending == 0:
            return None
        if self._pending >= self._limits.ack_every_frames:
            return 0.0
        return max(self._since + self._limits.ack_interval_s - now, 0.0)

    def sent(self) -> None:
        """An ACK covering every frame received went out."""
        self._pending = 0


class PingSchedule:
    """When a side pings its relay, and when the relay is gone [RP §13.5].

    Anything the relay sends (a frame, a pong) shows it alive. After ``ping_interval_s`` without
    any, the side pings; if the relay still sends nothing ``ping_timeout_s`` after the ping, it
    is gone. So pings go out only on a quiet connection, and a stopped relay is noticed within
    ``ping_interval_s + ping_timeout_s`` of the last thing it sent, whatever the traffic.
    """

    def __init__(self, limits: FailoverLimits | None, now: float) -> None:
        limits = limits or FailoverLimits()
        on = limits.ping_bound_s is not None
        self._interval_s = limits.ping_interval_s if on else None
        self._timeout_s = limits.ping_timeout_s if on else None
        self._heard_at = now
        self._pinged_at: float | None = None

    def heard(self, now: float) -> None:
        """The relay sent something: it is alive, and an outstanding ping is answered."""
        self._heard_at = max(self._heard_at, now)
        self._pinged_at = None

    def ping_due(self, now: float) -> bool:
        """Whether to send a ping now."""
        return (
            self._interval_s is not None
            and self._pinged_at is None
            and now - self._heard_at >= self._interval_s
        )

    def pinged(self, now: float) -> None:
        """A ping went out."""
        self._pinged_at = now

    def lost(self, now: float) -> bool:
        """Whether a ping went unanswered for ``ping_timeout_s``: the relay is gone."""
        return (
            self._pinged_at is not None
            and self._timeout_s is not None
            and now - self._pinged_at >= self._timeout_s
        )

    def due_in(self, now: float) -> float | None:
        """Seconds until a ping is due or an unanswered one expires (``None``: no pings)."""
        if self._interval_s is None or self._timeout_s is None:
            return None
        if self._pinged_at is not None:
            return max(self._pinged_at + self._timeout_s - now, 0.0)
        return max(self._heard_at + self._interval_s - now, 0.0)


__all__ = ["AckSchedule", "FailoverLimits", "PingSchedule", "ResendWindow"]
