"""Mid-stream failover, the pure parts: the producer's resend window and the consumer's ACKs.

No asyncio and no I/O: time comes from the caller, so every rule is tested with bytes and a fake
clock. The clients move a channel to the next relay of its rendezvous order when a relay dies or
stalls; this module decides what is resent and when the consumer acknowledges [RP §13].
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

    ping_interval_s: float | None = 1.0
    """WebSocket ping interval on each data connection (``None``: no pings)."""

    ping_timeout_s: float | None = 1.0
    """A ping unanswered this long closes the connection: a dead relay is noticed within
    ``ping_interval_s + ping_timeout_s``."""

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


__all__ = ["AckSchedule", "FailoverLimits", "ResendWindow"]
