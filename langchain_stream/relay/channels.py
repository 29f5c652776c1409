"""The relay's channel life cycle as a pure state machine: events in, actions out [RP §14].

:class:`ChannelTable` holds every rule of a channel's life: who may join (token, role, limits),
pairing, buffering frames before the consumer arrives, forwarding, how each side's departure
ends the channel, and the timeouts. Like :mod:`~langchain_stream.relay.protocol` it is pure: no
asyncio, no sockets, and the time is passed in, so every rule is tested with a fake clock
(``tests/unit_tests/relay/test_channels.py``). The asyncio server only moves bytes and time: it
feeds events (a connection asks to join, a frame arrives, a side leaves, the clock ticks) and
carries out the actions it gets back (refuse, close a connection with a code, forward a frame,
deliver the buffer, forget a channel).

A connection is an opaque handle ``C`` to the table (the server's WebSocket connection; a plain
string in tests): the table keeps it to say whom an action is for and never calls it.

Who may join and what may be buffered is accounted by a :class:`RelayLedger`, which this table
consults; every bound is a field of :class:`~langchain_stream.relay.limits.RelayLimits`.
Refused-token counting per address (:mod:`langchain_stream.failed_auth`) stays in the server:
it is shared with ``stream serve`` and may live in an external store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from typing import Generic, TypeVar

from langchain_stream.errors import RelayAuthError
from langchain_stream.relay.ledger import RelayLedger, Verdict
from langchain_stream.relay.limits import RelayLimits
from langchain_stream.relay.protocol import PROTOCOL_VERSION, CloseCode, FrameType
from langchain_stream.relay.tokens import (
    DEFAULT_LEEWAY_S,
    Role,
    TokenClaims,
    _secret_bytes,
    verify_token,
)

C = TypeVar("C")
"""A connection handle; the table stores it and hands it back, never uses it."""

_TERMINAL_TYPES = frozenset({FrameType.FINAL, FrameType.ERROR})


class Ending(Enum):
    """Every way a connection or channel ends [RP §7]; the value is the fixed reason text."""

    STREAM_DONE = "stream done"
    PRODUCER_GONE = "producer gone"
    CONSUMER_GONE = "consumer gone"
    FRAME_TOO_LARGE = "frame too large"
    BUFFER_OVERFLOW = "buffer overflow"
    CLIENT_BUFFER = "too many bytes buffered for this client"
    MEMORY_FULL = "relay buffer memory full"
    IDLE = "idle timeout"
    PAIRING = "pairing timeout"
    PROTOCOL = "protocol error"
    SHUTDOWN = "relay shutting down"
    INTERNAL = "internal error"
    NOT_FOUND = "not found"
    NO_TOKEN = "token missing"
    BAD_TOKEN = "token refused"
    TOO_MANY_BAD_TOKENS = "too many refused tokens from this client"
    CHANNEL_ENDED = "channel already ended"
    ROLE_TAKEN = "role taken"
    CLIENT_LIMIT = "too many channels for this client"
    CHANNEL_LIMIT = "too many channels"

    @property
    def close_code(self) -> CloseCode:
        """The close code an open WebSocket gets for this ending."""
        return ENDINGS[self][0]

    @property
    def status(self) -> HTTPStatus:
        """The HTTP status a handshake refused for this reason gets."""
        return ENDINGS[self][1]


# The one table mapping endings to what a peer sees [RP §7]: a close code for an open WebSocket,
# an HTTP status before the upgrade, and a fixed reason. Nothing else is ever sent to a peer.
ENDINGS: dict[Ending, tuple[CloseCode, HTTPStatus]] = {
    Ending.STREAM_DONE: (CloseCode.NORMAL, HTTPStatus.OK),
    Ending.PRODUCER_GONE: (CloseCode.PRODUCER_GONE, HTTPStatus.GONE),
    Ending.CONSUMER_GONE: (CloseCode.CONSUMER_GONE, HTTPStatus.GONE),
    Ending.FRAME_TOO_LARGE: (CloseCode.FRAME_TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    Ending.BUFFER_OVERFLOW: (CloseCode.BUFFER_OVERFLOW, HTTPStatus.INSUFFICIENT_STORAGE),
    Ending.CLIENT_BUFFER: (CloseCode.BUFFER_OVERFLOW, HTTPStatus.TOO_MANY_REQUESTS),
    Ending.MEMORY_FULL: (CloseCode.BUFFER_OVERFLOW, HTTPStatus.SERVICE_UNAVAILABLE),
    Ending.IDLE: (CloseCode.IDLE_TIMEOUT, HTTPStatus.REQUEST_TIMEOUT),
    Ending.PAIRING: (CloseCode.IDLE_TIMEOUT, HTTPStatus.REQUEST_TIMEOUT),
    Ending.PROTOCOL: (CloseCode.PROTOCOL_ERROR, HTTPStatus.BAD_REQUEST),
    Ending.SHUTDOWN: (CloseCode.GOING_AWAY, HTTPStatus.SERVICE_UNAVAILABLE),
    Ending.INTERNAL: (CloseCode.INTERNAL_ERROR, HTTPStatus.INTERNAL_SERVER_ERROR),
    Ending.NOT_FOUND: (CloseCode.PROTOCOL_ERROR, HTTPStatus.NOT_FOUND),
    Ending.NO_TOKEN: (CloseCode.PROTOCOL_ERROR, HTTPStatus.UNAUTHORIZED),
    Ending.BAD_TOKEN: (CloseCode.PROTOCOL_ERROR, HTTPStatus.FORBIDDEN),
    Ending.TOO_MANY_BAD_TOKENS: (CloseCode.PROTOCOL_ERROR, HTTPStatus.TOO_MANY_REQUESTS),
    Ending.CHANNEL_ENDED: (CloseCode.PROTOCOL_ERROR, HTTPStatus.FORBIDDEN),
    Ending.ROLE_TAKEN: (CloseCode.ROLE_TAKEN, HTTPStatus.CONFLICT),
    Ending.CLIENT_LIMIT: (CloseCode.TOO_MANY_CHANNELS, HTTPStatus.TOO_MANY_REQUESTS),
    Ending.CHANNEL_LIMIT: (CloseCode.TOO_MANY_CHANNELS, HTTPStatus.SERVICE_UNAVAILABLE),
}

# What the ledger's verdicts mean on the wire.
_VANISHED = frozenset({Ending.PRODUCER_GONE, Ending.CONSUMER_GONE})
"""Endings that say only that a side's connection went away: not an end of the stream."""

VERDICT_ENDINGS: dict[Verdict, Ending] = {
    Verdict.ROLE_TAKEN: Ending.ROLE_TAKEN,
    Verdict.CHANNEL_ENDED: Ending.CHANNEL_ENDED,
    Verdict.CHANNEL_LIMIT: Ending.CHANNEL_LIMIT,
    Verdict.ENDED_MEMORY_FULL: Ending.CHANNEL_LIMIT,
    Verdict.CLIENT_CHANNELS: Ending.CLIENT_LIMIT,
    Verdict.CLIENT_BYTES: Ending.CLIENT_BUFFER,
    Verdict.MEMORY_FULL: Ending.MEMORY_FULL,
    Verdict.CHANNEL_BUFFER: Ending.BUFFER_OVERFLOW,
    Verdict.PAIRING_TIMEOUT: Ending.PAIRING,
    Verdict.UNATTENDED: Ending.IDLE,
}


class State(Enum):
    """Where a channel is in its life [RP §14]."""

    WAITING = "waiting"
    """One side has joined; the other has not (frames from the producer are buffered)."""
    FLUSHING = "flushing"
    """The consumer has joined and is being handed the buffered frames."""
    PAIRED = "paired"
    """Both sides are attached; frames are forwarded as they come."""
    LEFT_BEHIND = "left behind"
    """No side is attached and the channel has not ended: what a producer sent (and how it left)
    waits for the consumer until the unattended timeout."""
    ENDED = "ended"
    """The channel has ended; a side that joins now is told how, with the same code."""
    FORGOTTEN = "forgotten"
    """Dropped from the table; its id is refused until its tokens expire."""


# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse a connection: HTTP ``ending.status`` before the upgrade, ``ending.close_code``
    after it. ``detail`` and ``token_id`` are for the relay's log only, never the peer."""

    ending: Ending
    retry_after_s: float | None = None
    detail: str = ""
    token_id: str | None = None


@dataclass(frozen=True, slots=True)
class Forward(Generic[C]):
    """Send the frame just received, as is, to ``to`` (the hot path: one per direction and
    pairing is made once, so forwarding allocates nothing)."""

    to: C


@dataclass(frozen=True, slots=True)
class Close(Generic[C]):
    """Close connection ``conn`` with ``ending``'s code and reason."""

    conn: C
    ending: Ending


@dataclass(frozen=True, slots=True)
class End(Generic[C]):
    """Channel ``channel_id`` ended with ``ending`` after ``frames`` frames: carry out
    ``closes`` (every connection it still has)."""

    channel_id: str
    ending: Ending
    frames: int
    closes: tuple[Close[C], ...]


@dataclass(frozen=True, slots=True)
class Flush(Generic[C]):
    """Hand the buffered frames to consumer ``to``: take each with
    :meth:`ChannelTable.next_buffered`, then report :meth:`ChannelTable.flushed` (or
    :meth:`ChannelTable.flush_failed` if sending failed)."""

    to: C


@dataclass(frozen=True, slots=True)
class Forget:
    """Channel ``channel_id`` was dropped for good (``retired``: by a timeout, which one)."""

    channel_id: str
    retired: Verdict | Ending | None = None


class Marker(Enum):
    """A frame outcome that sends nothing (see the constants below)."""

    BUFFERED = "buffered"
    DROPPED = "dropped"
    WAIT = "wait"
    STOP = "stop"


BUFFERED = Marker.BUFFERED
"""The frame was buffered for the consumer: nothing to do."""
DROPPED = Marker.DROPPED
"""The frame has nowhere to go (its channel ended, or the other side has not come and frames
that way are not buffered): nothing to do."""
WAIT = Marker.WAIT
"""The buffer is full but the consumer is draining it: wait until the flush is over, then offer
the frame again with :meth:`ChannelTable.offer_again` (the producer is held, not failed)."""
STOP = Marker.STOP
"""The channel had already ended: stop reading the sender (its close is under way)."""

Action = Close[C] | End[C] | Flush[C] | Forget
"""What an event other than a frame asks of the server."""

FrameOutcome = Forward[C] | End[C] | Marker
"""What a frame asks of the server."""


# ---------------------------------------------------------------------------- channels


@dataclass(eq=False, slots=True)
class Channel(Generic[C]):
    """One channel's state. The server holds a reference while it serves a side and passes it
    back with each event; only the table changes it."""

    id: str
    idle_since: float
    producer: C | None = None
    consumer: C | None = None
    to_consumer: Forward[C] | None = None
    to_producer: Forward[C] | None = None
    left: set[str] = field(default_factory=set)
    buffer: deque[bytes] = field(default_factory=deque)
    flushing: bool = False
    frames: int = 0
    idle_mark: int = -1
    producer_ending: Ending | None = None
    ending: Ending | None = None
    finished: bool = False
    forgotten: bool = False

    @property
    def state(self) -> State:
        """Where the channel is in its life."""
        if self.forgotten:
            return State.FORGOTTEN
        if self.ending is not None:
            return State.ENDED
        if self.flushing:
            return State.FLUSHING
        if self.producer is not None and self.consumer is not None:
            return State.PAIRED
        if self.producer is None and self.consumer is None and self.left:
            return State.LEFT_BEHIND
        return State.WAITING


# ---------------------------------------------------------------------------- the table


class ChannelTable(Generic[C]):
    """Every channel of one relay, and the rules of their lives.

    Args:
        secret: The HMAC secret that signs capability tokens [RP §8].
        limits: The bounds to enforce.
    """

    def __init__(self, secret: str | bytes, limits: RelayLimits) -> None:
        self._secret = _secret_bytes(secret)
        self._limits = limits
        self._ledger = RelayLedger(limits)
        self._channels: dict[str, Channel[C]] = {}
        self._closing = False

    # ------------------------------------------------------------------ figures

    @property
    def limits(self) -> RelayLimits:
        """The bounds this table enforces."""
        return self._limits

    @property
    def live_channels(self) -> int:
        """Channels held (open, or ended and waiting for a side)."""
        return len(self._channels)

    @property
    def buffered_bytes(self) -> int:
        """Bytes buffered for absent consumers, over all channels."""
        return self._ledger.buffered_bytes

    @property
    def closing(self) -> bool:
        """Whether :meth:`shutdown` was called (every join is refused)."""
        return self._closing

    def channel(self, channel_id: str) -> Channel[C] | None:
        """The channel held under ``channel_id``, if any."""
        return self._channels.get(channel_id)

    # ------------------------------------------------------------------ admission

    def authorize(
        self, authorization: Sequence[str], channel_id: str, role: Role, *, wall_now: float
    ) -> TokenClaims | Refuse:
        """Check the ``Authorization`` header values presented for ``role`` on ``channel_id``.

        Args:
            authorization: Every ``Authorization`` header of the request (exactly one counts).
            channel_id: The channel asked for.
            role: The role asked for.
            wall_now: Unix time, for the token's expiry.

        Returns:
            The token's claims, or a refusal whose ``detail`` says why (for the log only).
        """
        scheme, _, token = (
            authorization[0].partition(" ") if len(authorization) == 1 else ("", "", "")
        )
        if scheme.lower() != "bearer" or not token:
            return Refuse(Ending.NO_TOKEN, detail="no bearer token")
        try:
            return verify_token(self._secret, token, channel_id=channel_id, role=role, now=wall_now)
        except RelayAuthError as exc:
            return Refuse(Ending.BAD_TOKEN, detail=str(exc))

    def check(
        self,
        authorization: Sequence[str],
        channel_id: str,
        role: Role,
        address: str,
        *,
        now: float,
        wall_now: float,
    ) -> TokenClaims | Refuse:
        """Whether a connection may join, during the opening handshake; registers nothing.

        The handshake can still fail after this, and other handshakes run meanwhile, so
        :meth:`join` decides again once the connection is upgraded.
        """
        claims = self.authorize(authorization, channel_id, role, wall_now=wall_now)
        if isinstance(claims, Refuse):
            return claims
        if self._closing:
            return Refuse(Ending.SHUTDOWN, token_id=claims.token_id)
        verdict = self._ledger.check(channel_id, role, address, now=now)
        if verdict is not None:
            return Refuse(VERDICT_ENDINGS[verdict], detail=verdict.value, token_id=claims.token_id)
        return claims

    def join(
        self,
        conn: C,
        authorization: Sequence[str],
        channel_id: str,
        role: Role,
        address: str,
        *,
        now: float,
        wall_now: float,
    ) -> tuple[Channel[C], tuple[Action[C], ...]] | Refuse:
        """Connection ``conn`` (upgraded) joins ``channel_id`` as ``role`` from ``address``.

        Decides again and registers, atomically (the caller does not yield in between).

        Returns:
            A refusal (nothing registered), or the channel and what to do first: nothing (serve
            the connection's frames), a :class:`Flush` (a consumer with frames waiting), or a
            :class:`Close` / :class:`End` (the channel had ended; this side is told how). Serve
            the connection while :meth:`attached` says so; report :meth:`leave` in every case.
        """
        claims = self.authorize(authorization, channel_id, role, wall_now=wall_now)
        if isinstance(claims, Refuse):
            return claims
        if self._closing:
            return Refuse(Ending.SHUTDOWN, token_id=claims.token_id)
        verdict = self._ledger.admit(
            channel_id,
            role,
            address,
            # Remembered by the monotonic clock until the token expires (plus the leeway).
            expires_in_s=max(claims.expires_at - wall_now, 0.0) + DEFAULT_LEEWAY_S,
            now=now,
        )
        if verdict is not None:
            return Refuse(VERDICT_ENDINGS[verdict], detail=verdict.value, token_id=claims.token_id)
        ch = self._channels.get(channel_id)
        if ch is None:
            ch = self._channels[channel_id] = Channel(channel_id, idle_since=now)
        if ch.ending is not None:
            # The channel ended before this side arrived: tell it how [RP §7].
            return ch, self._end(ch, ch.ending, extra=conn)
        if role == "producer":
            ch.producer = conn
            if ch.consumer is not None:
                self._pair(ch, conn, ch.consumer)
            return ch, ()
        if ch.buffer:
            ch.flushing = True
            return ch, (Flush(conn),)
        return ch, self._attach_consumer(ch, conn)

    def attached(self, ch: Channel[C], conn: C) -> bool:
        """Whether ``conn`` is attached to ``ch``: the server reads its frames while it is."""
        return conn is not None and (ch.producer is conn or ch.consumer is conn)

    # ------------------------------------------------------------------ frames

    def producer_frame(self, ch: Channel[C], frame: bytes | str) -> FrameOutcome[C]:
        """A message from ``ch``'s producer. The hot path: forward, buffer, or end."""
        if type(frame) is not bytes:
            return self._stop(ch, Ending.PROTOCOL)
        ch.frames += 1
        forward = ch.to_consumer
        if forward is not None:
            return forward
        if ch.ending is not None:
            return DROPPED
        verdict = self._ledger.hold(ch.id, len(frame))
        if verdict is None:
            ch.buffer.append(frame)
            return BUFFERED
        if ch.flushing:
            return WAIT
        return self._stop(ch, VERDICT_ENDINGS[verdict])

    def offer_again(self, ch: Channel[C]) -> FrameOutcome[C]:
        """The producer's frame that got :data:`WAIT`, once the flush is over: forward it to
        the now attached consumer, or drop it if the channel ended meanwhile."""
        return ch.to_consumer or DROPPED

    def consumer_frame(self, ch: Channel[C], frame: bytes | str) -> FrameOutcome[C]:
        """A message from ``ch``'s consumer (a CANCEL or an ACK, sealed)."""
        if type(frame) is not bytes:
            return self._stop(ch, Ending.PROTOCOL)
        ch.frames += 1
        return ch.to_producer or DROPPED

    # ------------------------------------------------------------------ flushing

    def next_buffered(self, ch: Channel[C]) -> bytes | None:
        """The next buffered frame for the flushing consumer (released from the books), or
        ``None`` when the buffer is empty."""
        if not ch.buffer:
            return None
        frame = ch.buffer.popleft()
        self._ledger.release(ch.id, len(frame))
        return frame

    def flushed(self, ch: Channel[C], conn: C) -> tuple[Action[C], ...]:
        """Consumer ``conn`` has been handed every buffered frame: attach it, or tell it how
        the channel ended meanwhile."""
        ch.flushing = False
        if ch.ending is not None:
            return self._end(ch, ch.ending, extra=conn)
        return self._attach_consumer(ch, conn)

    def flush_failed(self, ch: Channel[C]) -> tuple[Action[C], ...]:
        """Sending the buffer to the consumer failed: it is gone."""
        ch.flushing = False
        return self._end(ch, Ending.CONSUMER_GONE)

    # ------------------------------------------------------------------ departures

    def producer_left(
        self, ch: Channel[C], *, clean: bool, too_big: bool, last: bytes | str
    ) -> tuple[Action[C], ...]:
        """The producer's connection closed.

        Args:
            ch: Its channel.
            clean: It closed normally (1000 from the producer).
            too_big: The relay closed it with 1009 for a frame over the size bound.
            last: The last message it sent (``b""`` if none).
        """
        # The stream is over once the producer sent its terminal frame, even when the consumer
        # left first (with failover it leaves on FINAL, before the producer's last ACK).
        ch.finished = is_terminal(last)
        if clean:
            # A clean close is the end of the stream only after a terminal frame; the relay
            # reads that one type byte of the last frame, nothing else [RP §7].
            ending = Ending.STREAM_DONE if ch.finished else Ending.PRODUCER_GONE
        else:
            ending = Ending.FRAME_TOO_LARGE if too_big else Ending.PRODUCER_GONE
        if ch.ending is not None:
            return ()
        if ending in (Ending.STREAM_DONE, Ending.PRODUCER_GONE) and ch.consumer is None:
            # Keep what was sent for the consumer, then tell it how the producer ended.
            ch.producer_ending = ending
            return ()
        return self._end(ch, ending)

    def consumer_left(self, ch: Channel[C], *, too_big: bool) -> tuple[Action[C], ...]:
        """The attached consumer's connection closed (too big: 1009 from the relay)."""
        return self._end(ch, Ending.FRAME_TOO_LARGE if too_big else Ending.CONSUMER_GONE)

    def fault(self, ch: Channel[C], conn: C) -> tuple[Action[C], ...]:
        """Serving ``conn`` failed unexpectedly: end the channel (1011), ``conn`` included."""
        return self._end(ch, Ending.INTERNAL, extra=conn)

    def leave(self, ch: Channel[C], role: Role, conn: C, *, now: float) -> tuple[Action[C], ...]:
        """``role``'s connection ``conn`` is gone, however it ended (always reported once).

        The channel is kept while the other side may still arrive (a tombstone or buffered
        frames); it is forgotten once both sides have left, or by :meth:`tick`.
        """
        self._ledger.detach(ch.id, role, now=now)
        if ch.producer is conn:
            ch.producer = None
            ch.to_producer = None
        if ch.consumer is conn:
            ch.consumer = None
            ch.to_consumer = None
        ch.left.add(role)
        # Sides that vanished without an end are what a failover leaves behind: the channel
        # lives on at another relay and may come back here, so its id is not barred [RP §13.6].
        if len(ch.left) == 2 and self._forget(
            ch, remember=ch.finished or ch.ending not in _VANISHED
        ):
            return (Forget(ch.id),)
        return ()

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> tuple[Action[C], ...]:
        """The clock says ``now``: retire channels past the pairing, unattended or idle
        timeout [RP §6, §12]."""
        actions: list[Action[C]] = []
        for channel_id, verdict in self._ledger.overdue(now):
            ch = self._channels.get(channel_id)
            if ch is None:  # registered by the ledger only; cannot happen, but never leak
                self._ledger.forget(channel_id)
                continue
            actions.extend(self._retire(ch, verdict, VERDICT_ENDINGS[verdict]))
        idle_timeout_s = self._limits.idle_timeout_s
        if idle_timeout_s is not None:
            for ch in list(self._channels.values()):
                if ch.frames != ch.idle_mark:
                    ch.idle_mark, ch.idle_since = ch.frames, now
                elif now - ch.idle_since >= idle_timeout_s:
                    actions.extend(self._retire(ch, Ending.IDLE, Ending.IDLE))
        return tuple(actions)

    def shutdown(self) -> tuple[Action[C], ...]:
        """The relay is stopping: refuse every join from now on and end every channel (1001)."""
        self._closing = True
        actions: list[Action[C]] = []
        for ch in list(self._channels.values()):
            actions.extend(self._end(ch, Ending.SHUTDOWN))
        return tuple(actions)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _pair(ch: Channel[C], producer: C, consumer: C) -> None:
        # Made once per pairing, so that forwarding a frame allocates nothing.
        ch.to_consumer = Forward(consumer)
        ch.to_producer = Forward(producer)

    def _attach_consumer(self, ch: Channel[C], conn: C) -> tuple[Action[C], ...]:
        if ch.producer_ending is not None:
            # The producer finished (or vanished) before the consumer came: say how.
            return self._end(ch, ch.producer_ending, extra=conn)
        ch.consumer = conn
        if ch.producer is not None:
            self._pair(ch, ch.producer, conn)
        return ()

    def _stop(self, ch: Channel[C], ending: Ending) -> End[C] | Marker:
        """End ``ch`` because of a frame: the sender is read no more."""
        ended = self._end(ch, ending)
        return ended[0] if ended and isinstance(ended[0], End) else STOP

    def _end(
        self, ch: Channel[C], ending: Ending, *, extra: C | None = None
    ) -> tuple[Action[C], ...]:
        """End ``ch``: every connection it has is closed with ``ending``'s code. A channel
        ends once; a later ending only tells ``extra`` how it did."""
        if ch.ending is not None:
            return () if extra is None else (Close(extra, ch.ending),)
        ch.ending = ending
        ch.buffer.clear()
        self._ledger.release_all(ch.id)
        ch.to_consumer = ch.to_producer = None
        targets = [c for c in (ch.producer, ch.consumer) if c is not None]
        if extra is not None and all(extra is not c for c in targets):
            targets.append(extra)
        return (End(ch.id, ending, ch.frames, tuple(Close(c, ending) for c in targets)),)

    def _forget(self, ch: Channel[C], *, remember: bool = True) -> bool:
        """Drop ``ch``: its quotas are freed and (``remember``) its id never opens again while
        its tokens live."""
        if self._channels.get(ch.id) is not ch:
            return False
        del self._channels[ch.id]
        ch.forgotten = True
        ch.buffer.clear()
        self._ledger.forget(ch.id, remember=remember)
        return True

    def _retire(
        self, ch: Channel[C], why: Verdict | Ending, ending: Ending
    ) -> tuple[Action[C], ...]:
        self._forget(ch)
        actions: list[Action[C]] = [Forget(ch.id, why)]
        actions.extend(self._end(ch, ending))
        return tuple(actions)


def is_terminal(frame: bytes | str) -> bool:
    """Whether ``frame`` is a FINAL or ERROR frame: the one byte of a frame the relay reads."""
    return (
        type(frame) is bytes
        and len(frame) > 1
        and frame[0] == PROTOCOL_VERSION
        and frame[1] in _TERMINAL_TYPES
    )


__all__ = [
    "BUFFERED",
    "DROPPED",
    "ENDINGS",
    "STOP",
    "VERDICT_ENDINGS",
    "WAIT",
    "Action",
    "Channel",
    "ChannelTable",
    "Close",
    "End",
    "Ending",
    "Flush",
    "Forget",
    "Forward",
    "FrameOutcome",
    "Marker",
    "Refuse",
    "State",
    "is_terminal",
]
