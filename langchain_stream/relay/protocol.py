"""The relay wire protocol: frames, AES-256-GCM sealing, and the per-channel state machines.

This module is pure: bytes in, events and bytes out, no asyncio and no I/O, so every check is
tested by feeding bytes. The server and the clients are thin layers over it. The format is
specified in ``docs/relay-protocol.md``; comments cite its sections as ``[RP §n]``.

A channel carries one request's answer. The producer (the worker on the compute node) seals
frames with a :class:`ChannelSealer`; the consumer opens them with a :class:`ChannelOpener`,
which raises on anything wrong and never skips a frame. The consumer can send one CANCEL frame
the other way, sealed and opened the same way with ``direction=Direction.TO_PRODUCER``.
"""

from __future__ import annotations

import json
import re
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from langchain_stream.errors import (
    ConfigurationError,
    RelayIntegrityError,
    RelayLimitError,
    RelayProtocolError,
)

PROTOCOL_VERSION = 2
"""The only frame version this implementation speaks [RP §2]; 2 added ACK and resumption."""

KEY_BYTES = 32
"""AES-256 key length; one fresh key per request [RP §3]."""

TAG_BYTES = 16
"""AES-GCM authentication tag length appended to every sealed body [RP §3]."""

DEFAULT_MAX_FRAME_BYTES = 65_536
"""Default bound on one frame, header included; larger frames are refused [RP §6]."""

MAX_ERROR_CHARS = 2_000
"""An ERROR frame's message is cut to this many characters before sealing."""

CHANNEL_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
"""A channel id: 16 random bytes as lowercase hex (the frame carries the raw bytes) [RP §2]."""

# version, type, direction, flags, channel id (16 raw bytes), sequence number [RP §2].
_HEADER = struct.Struct(">BBBB16sQ")
HEADER_BYTES = _HEADER.size
"""Length of the cleartext frame header (28 bytes) [RP §2]."""

# Nonce = direction, three zero bytes, sequence number: unique per (key, direction, seq) [RP §3.2].
_NONCE = struct.Struct(">B3xQ")
_COUNT = struct.Struct(">I")
_ACK = struct.Struct(">Q")
_MAX_SEQ = 2**64 - 1


class FrameType(IntEnum):
    """What a frame carries [RP §2.1]."""

    DATA = 1
    """One or more tokens, producer → consumer."""
    FINAL = 2
    """End of the answer: frame and token counts plus usage, producer → consumer."""
    ERROR = 3
    """The producer failed; carries a message, producer → consumer."""
    CANCEL = 4
    """The consumer wants the producer to stop, consumer → producer."""
    ACK = 5
    """The consumer holds every frame below a sequence number, consumer → producer [RP §13]."""


class Direction(IntEnum):
    """Which way a frame travels; each direction has its own sequence numbers [RP §2.2]."""

    TO_CONSUMER = 1
    TO_PRODUCER = 2


class FrameFlags(IntFlag):
    """Header flag bits; unknown bits are rejected [RP §2.3]."""

    NONE = 0
    SEALED = 0x01


_KNOWN_FLAGS = int(FrameFlags.SEALED)  # a plain int: ~ on an IntFlag drops unknown bits

_ALLOWED_TYPES: dict[Direction, frozenset[FrameType]] = {
    Direction.TO_CONSUMER: frozenset({FrameType.DATA, FrameType.FINAL, FrameType.ERROR}),
    Direction.TO_PRODUCER: frozenset({FrameType.CANCEL, FrameType.ACK}),
}


class CloseCode(IntEnum):
    """WebSocket close codes the relay uses [RP §7]; the server maps its outcomes to them."""

    NORMAL = 1000
    """The producer finished and every frame was forwarded."""
    GOING_AWAY = 1001
    """The relay is shutting down."""
    MESSAGE_TOO_BIG = 1009
    """Sent by the WebSocket layer to a peer whose own frame exceeded the size bound."""
    INTERNAL_ERROR = 1011
    """An unexpected relay fault; no detail is sent."""
    PRODUCER_GONE = 4000
    """The producer disconnected without closing normally."""
    CONSUMER_GONE = 4001
    """The consumer disconnected (or cancelled)."""
    PROTOCOL_ERROR = 4002
    """A peer sent something the relay does not forward (e.g. a text message)."""
    FRAME_TOO_LARGE = 4003
    """The other side sent a frame over the size bound."""
    BUFFER_OVERFLOW = 4004
    """The producer sent more than the relay buffers before the consumer arrives."""
    IDLE_TIMEOUT = 4005
    """No frame crossed the channel within the relay's idle timeout."""
    TOO_MANY_CHANNELS = 4006
    """A channel limit was reached while the connection was being set up."""
    ROLE_TAKEN = 4007
    """Another connection already holds this role on this channel."""


def new_channel_key() -> bytes:
    """Return a fresh random AES-256 key for one request's channel [RP §3].

    Returns:
        32 random bytes from the operating system's CSPRNG.
    """
    return secrets.token_bytes(KEY_BYTES)


def channel_id_bytes(channel_id: str) -> bytes:
    """Return the 16 raw bytes a frame header carries for ``channel_id``.

    Raises:
        ConfigurationError: If ``channel_id`` is not 32 lowercase hex characters.
    """
    if not isinstance(channel_id, str) or not CHANNEL_ID_PATTERN.fullmatch(channel_id):
        raise ConfigurationError("channel id must be 32 lowercase hex characters")
    return bytes.fromhex(channel_id)


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The cleartext header of a frame [RP §2]."""

    version: int
    type: int
    direction: int
    flags: int
    channel_id: bytes
    seq: int

    def pack(self) -> bytes:
        """Return the 28 header bytes (which are also the frame's associated data)."""
        return _HEADER.pack(
            self.version, self.type, self.direction, self.flags, self.channel_id, self.seq
        )


def parse_header(frame: bytes) -> FrameHeader:
    """Parse a frame's cleartext header without checking anything beyond its length.

    Args:
        frame: A whole frame as received.

    Returns:
        The header fields, unauthenticated until the body is opened.

    Raises:
        RelayProtocolError: If the frame is shorter than a header.
    """
    if len(frame) < HEADER_BYTES:
        raise RelayProtocolError(
            f"frame too short: {len(frame)} bytes, a header alone is {HEADER_BYTES}"
        )
    return FrameHeader(*_HEADER.unpack_from(frame))


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class TokensEvent:
    """A DATA frame was opened: the tokens it carried, in order."""

    tokens: list[str]


@dataclass(frozen=True, slots=True)
class FinalEvent:
    """The FINAL frame was opened and the counts matched: the answer is complete."""

    frames: int
    """DATA frames in the answer."""
    tokens: int
    """Tokens in the answer."""
    usage: dict[str, Any] = field(default_factory=dict)
    """Usage reported by the producer's backend (e.g. ``prompt_tokens``)."""


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The producer reported a failure; the channel is over."""

    message: str


@dataclass(frozen=True, slots=True)
class CancelEvent:
    """The consumer asked the producer to stop."""

    reason: str


@dataclass(frozen=True, slots=True)
class AckEvent:
    """The consumer holds every frame of the other direction below ``next_seq`` [RP §13]."""

    next_seq: int


@dataclass(frozen=True, slots=True)
class DuplicateEvent:
    """An authentic frame the consumer already holds, resent after a failover: dropped."""

    seq: int


Event = TokensEvent | FinalEvent | ErrorEvent | CancelEvent | AckEvent | DuplicateEvent
"""What :meth:`ChannelOpener.open` returns."""


# ---------------------------------------------------------------------------- bodies


def _encode_tokens(encoded: Sequence[bytes]) -> bytes:
    # count, then each length, then the UTF-8 bytes back to back [RP §4.1]: a size the
    # producer can predict exactly, unlike JSON with its escapes.
    n = len(encoded)
    return struct.pack(f">I{n}I", n, *map(len, encoded)) + b"".join(encoded)


def _utf8(token: str) -> bytes:
    # A lone surrogate has no UTF-8 form; it becomes "?" rather than killing the stream.
    return token.encode("utf-8", "replace")


def _decode_tokens(body: bytes) -> list[str]:
    if len(body) < _COUNT.size:
        raise RelayProtocolError("DATA body too short for its token count")
    (n,) = _COUNT.unpack_from(body)
    start = _COUNT.size + 4 * n
    if start > len(body):
        raise RelayProtocolError(f"DATA body too short for {n} token lengths")
    lengths = struct.unpack_from(f">{n}I", body, _COUNT.size)
    if start + sum(lengths) != len(body):
        raise RelayProtocolError("DATA token lengths do not add up to the body size")
    tokens: list[str] = []
    try:
        for length in lengths:
            tokens.append(body[start : start + length].decode("utf-8"))
            start += length
    except UnicodeDecodeError as exc:
        raise RelayProtocolError("DATA token is not valid UTF-8") from exc
    return tokens


def _encode_json(obj: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
    except (TypeError, ValueError) as exc:
        raise RelayProtocolError(f"frame body is not JSON-serialisable: {exc}") from exc


def _decode_json(body: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RelayProtocolError(f"{what} body is not valid JSON") from exc
    if not isinstance(obj, dict):
        raise RelayProtocolError(f"{what} body is not a JSON object")
    return obj


# ---------------------------------------------------------------------------- sealing


class _ChannelCipher:
    """What the sealer and the opener share: the key, the bounds, and the stream's counts."""

    def __init__(
        self,
        key: bytes | None,
        channel_id: str,
        *,
        direction: Direction = Direction.TO_CONSUMER,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        if key is not None and (not isinstance(key, bytes) or len(key) != KEY_BYTES):
            raise ConfigurationError(f"channel key must be {KEY_BYTES} bytes (AES-256)")
        if max_frame_bytes < HEADER_BYTES + TAG_BYTES + 64:
            raise ConfigurationError(f"max_frame_bytes={max_frame_bytes} is too small")
        self.channel_id = channel_id
        self._cid = channel_id_bytes(channel_id)
        self._direction = Direction(direction)
        self._aead = AESGCM(key) if key is not None else None
        self._max_frame_bytes = max_frame_bytes
        self._seq = 0  # of the next frame: the one sealed next, or the one expected next
        self._data_frames = 0
        self._tokens = 0
        self._finished = False

    @property
    def sealed(self) -> bool:
        """Whether a key is in force (frames are sealed)."""
        return self._aead is not None

    @property
    def max_frame_bytes(self) -> int:
        """The bound on one frame, header included."""
        return self._max_frame_bytes

    @property
    def finished(self) -> bool:
        """Whether a terminal frame (FINAL, ERROR or CANCEL) was sealed or opened."""
        return self._finished


class ChannelSealer(_ChannelCipher):
    """Producer-side (or, for CANCEL, consumer-side) frame builder for one channel and direction.

    Each frame gets the next sequence number; the nonce is derived from the direction and that
    number, so it never repeats under the channel's key as long as one key is given to at most one
    sealer per direction — which holds because every request gets a fresh key and a channel is
    never resumed [RP §3.2]. Sealing is refused once the channel is finished.

    Args:
        key: The request's 32-byte AES-256 key, or ``None`` for an unsealed (plaintext) channel,
            which has neither confidentiality nor integrity and is meant for tests only.
        channel_id: The channel id (32 lowercase hex characters).
        direction: Which way these frames travel.
        max_frame_bytes: Bound on one frame; :meth:`pack_tokens` splits to stay under it.
    """

    @property
    def seq(self) -> int:
        """The sequence number the next frame will carry."""
        return self._seq

    @property
    def _body_budget(self) -> int:
        """Bytes of encoded tokens one DATA frame holds."""
        overhead = HEADER_BYTES + (TAG_BYTES if self.sealed else 0) + _COUNT.size
        return self._max_frame_bytes - overhead

    def _seal(self, frame_type: FrameType, plaintext: bytes) -> bytes:
        if self._finished:
            raise RelayProtocolError(
                "channel already finished: no frame may follow", channel_id=self.channel_id
            )
        if frame_type not in _ALLOWED_TYPES[self._direction]:
            raise RelayProtocolError(
                f"{frame_type.name} frames cannot travel {self._direction.name}",
                channel_id=self.channel_id,
            )
        if self._seq > _MAX_SEQ:
            raise RelayLimitError("sequence numbers exhausted", channel_id=self.channel_id)
        flags = FrameFlags.SEALED if self._aead is not None else FrameFlags.NONE
        header = _HEADER.pack(
            PROTOCOL_VERSION, frame_type, self._direction, flags, self._cid, self._seq
        )
        if self._aead is not None:
            # The whole header is the associated data [RP §3.1].
            body = self._aead.encrypt(_NONCE.pack(self._direction, self._seq), plaintext, header)
        else:
            body = plaintext
        frame = header + body
        if len(frame) > self._max_frame_bytes:
            raise RelayLimitError(
                f"frame of {len(frame)} bytes exceeds max_frame_bytes={self._max_frame_bytes}",
                channel_id=self.channel_id,
            )
        self._seq += 1
        return frame

    def seal_tokens(self, tokens: Sequence[str]) -> bytes:
        """Seal a DATA frame carrying ``tokens`` in order (coalescing several is allowed).

        Raises:
            RelayLimitError: If the frame would exceed ``max_frame_bytes``.
            RelayProtocolError: If the channel is finished or this direction carries no DATA.
        """
        return self._seal_data([_utf8(t) for t in tokens])

    def _seal_data(self, encoded: Sequence[bytes]) -> bytes:
        frame = self._seal(FrameType.DATA, _encode_tokens(encoded))
        self._data_frames += 1
        self._tokens += len(encoded)
        return frame

    def seal_token(self, token: str) -> bytes:
        """Seal a DATA frame carrying one token."""
        return self.seal_tokens((token,))

    def pack_tokens(self, tokens: Sequence[str]) -> list[bytes]:
        """Seal ``tokens`` into as few DATA frames as fit under ``max_frame_bytes``.

        A token too large for one frame is split at character boundaries; the concatenated text
        is unchanged. This is the coalescing hook: the async producer passes every token that
        queued up while it was sending.

        Returns:
            The frames, in order; empty if ``tokens`` is empty.
        """
        frames: list[bytes] = []
        batch: list[bytes] = []
        size = 0
        budget = self._body_budget
        for token in tokens:
            encoded = _utf8(token)
            cost = len(encoded) + 4  # its bytes and its length field
            if size + cost > budget and batch:
                frames.append(self._seal_data(batch))
                batch, size = [], 0
            if cost <= budget:
                batch.append(encoded)
                size += cost
                continue
            # Four UTF-8 bytes per character at most, so each piece fits in a frame.
            step = (budget - 4) // 4
            frames.extend(self.seal_token(token[i : i + step]) for i in range(0, len(token), step))
        if batch:
            frames.append(self._seal_data(batch))
        return frames

    def seal_final(self, usage: Mapping[str, Any] | None = None) -> bytes:
        """Seal the FINAL frame: counts of DATA frames and tokens, and ``usage`` [RP §4.2].

        Args:
            usage: JSON-serialisable usage figures from the backend.
        """
        body = {"frames": self._data_frames, "tokens": self._tokens, "usage": dict(usage or {})}
        frame = self._seal(FrameType.FINAL, _encode_json(body))
        self._finished = True
        return frame

    def seal_error(self, message: str) -> bytes:
        """Seal an ERROR frame with ``message`` (cut to :data:`MAX_ERROR_CHARS`) [RP §4.3]."""
        body = {"message": str(message)[:MAX_ERROR_CHARS], "frames": self._data_frames}
        frame = self._seal(FrameType.ERROR, _encode_json(body))
        self._finished = True
        return frame

    def seal_ack(self, next_seq: int) -> bytes:
        """Seal an ACK: "I hold every frame below ``next_seq``" (``TO_PRODUCER``) [RP §13].

        ACKs are cumulative, so one that is lost with a relay is made good by the next.
        """
        if not 0 <= next_seq <= _MAX_SEQ:
            raise RelayProtocolError("ACK sequence out of range", channel_id=self.channel_id)
        return self._seal(FrameType.ACK, _ACK.pack(next_seq))

    def seal_cancel(self, reason: str = "") -> bytes:
        """Seal a CANCEL frame (``direction`` must be ``TO_PRODUCER``) [RP §4.4]."""
        frame = self._seal(FrameType.CANCEL, _encode_json({"reason": str(reason)[:200]}))
        self._finished = True
        return frame


# ---------------------------------------------------------------------------- opening


class ChannelOpener(_ChannelCipher):
    """Consumer-side (or, for CANCEL, producer-side) state machine for one channel and direction.

    Feed it every frame in the order received; it returns an :data:`Event` or raises. Any error
    is final: the opener refuses further frames, because after a forged or missing frame nothing
    later can be trusted [RP §5].

    Args:
        key: The request's 32-byte key, or ``None`` for an unsealed channel. With a key, an
            unsealed frame is rejected (no downgrade); without one, a sealed frame is rejected.
        channel_id: The channel id this opener accepts frames for.
        direction: Which way the accepted frames travel.
        max_frame_bytes: Frames longer than this are refused before any work is done.
    """

    _failed: str | None = None
    """The error that failed the channel; no frame is accepted after one."""
    _resync_last: int | None = None
    """After a failover: the last duplicate dropped on the new relay (-1: none yet), or None
    when not resynchronising [RP §13.3]."""

    @property
    def next_seq(self) -> int:
        """The sequence number of the next new frame: every frame below it is held (the ACK)."""
        return self._seq

    def resync(self) -> None:
        """Start over on a new relay after a failover [RP §13.3].

        The producer resends the frames it holds unacknowledged, so the new connection starts
        with one contiguous run of frames from some sequence number at or below :attr:`next_seq`.
        The authentic ones already held are dropped (:class:`DuplicateEvent`); anything else out
        of order — a gap, a frame going backwards, or an old frame once new ones flow again —
        is still refused as loss, reorder or replay.
        """
        if self._direction is Direction.TO_CONSUMER and not self._finished:
            self._resync_last = -1

    @property
    def frames_received(self) -> int:
        """DATA frames opened so far."""
        return self._data_frames

    @property
    def tokens_received(self) -> int:
        """Tokens opened so far."""
        return self._tokens

    def open(self, frame: bytes) -> Event:
        """Check and open one frame.

        Returns:
            The event the frame carries.

        Raises:
            RelayLimitError: The frame exceeds ``max_frame_bytes``.
            RelayProtocolError: Malformed, unknown version/type/flags, sealed without a key,
                wrong type for this direction, or a frame after the end.
            RelayIntegrityError: Authentication failed (tampering, another channel's key),
                another channel's id, an unsealed frame under a key, a sequence gap or repeat,
                or a FINAL whose counts do not match what arrived.
        """
        if self._failed is not None:
            raise RelayProtocolError(
                f"channel already failed ({self._failed}): no further frame is accepted",
                channel_id=self.channel_id,
            )
        try:
            return self._open(frame)
        except (RelayProtocolError, RelayIntegrityError, RelayLimitError) as exc:
            self._failed = type(exc).__name__
            if exc.channel_id is None:
                exc.channel_id = self.channel_id
            raise

    def _open(self, frame: bytes) -> Event:
        if not isinstance(frame, bytes | bytearray | memoryview):
            raise RelayProtocolError("frame must be bytes (a binary WebSocket message)")
        frame = bytes(frame)
        if len(frame) > self._max_frame_bytes:
            raise RelayLimitError(
                f"frame of {len(frame)} bytes exceeds max_frame_bytes={self._max_frame_bytes}"
            )
        h = parse_header(frame)
        if h.version != PROTOCOL_VERSION:
            raise RelayProtocolError(
                f"unsupported protocol version {h.version} (this side speaks {PROTOCOL_VERSION})"
            )
        if self._finished:
            raise RelayProtocolError("frame after the end of the channel")
        try:
            frame_type = FrameType(h.type)
        except ValueError:
            raise RelayProtocolError(f"unknown frame type {h.type}") from None
        if h.flags & ~_KNOWN_FLAGS:
            raise RelayProtocolError(f"unknown flag bits 0x{h.flags:02x}")
        # Splicing: a frame from another channel is refused by its id, and (same id, other
        # key) by its tag [RP §5].
        if h.channel_id != self._cid:
            raise RelayIntegrityError("frame belongs to another channel (spliced)")
        if h.direction != self._direction:
            raise RelayIntegrityError(
                f"frame travels direction {h.direction}, expected {int(self._direction)}"
            )
        body = frame[HEADER_BYTES:]
        if self._aead is not None:
            if not h.flags & FrameFlags.SEALED:
                # No downgrade [RP §5]: with a key in force, plaintext is an attack.
                raise RelayIntegrityError("unsealed frame rejected: this channel is encrypted")
            if len(body) < TAG_BYTES:
                raise RelayProtocolError("sealed frame too short for its authentication tag")
            try:
                body = self._aead.decrypt(
                    _NONCE.pack(h.direction, h.seq), body, frame[:HEADER_BYTES]
                )
            except InvalidTag:
                raise RelayIntegrityError(
                    "frame failed authentication (tampered, or sealed under another key)"
                ) from None
        elif h.flags & FrameFlags.SEALED:
            raise RelayProtocolError("sealed frame on a channel opened without a key")
        if frame_type not in _ALLOWED_TYPES[self._direction]:
            raise RelayProtocolError(f"{frame_type.name} frame unexpected in this direction")
        # The sequence number is authenticated now, so its check tells replay from loss.
        duplicate = self._check_seq(h.seq)
        if duplicate is not None:
            return duplicate
        self._seq = h.seq + 1
        if frame_type is FrameType.DATA:
            tokens = _decode_tokens(body)
            self._data_frames += 1
            self._tokens += len(tokens)
            return TokensEvent(tokens)
        if frame_type is FrameType.ACK:
            if len(body) != _ACK.size:
                raise RelayProtocolError("ACK body must be one 8-byte sequence number")
            return AckEvent(_ACK.unpack(body)[0])
        self._finished = True
        if frame_type is FrameType.FINAL:
            return self._final(_decode_json(body, "FINAL"))
        if frame_type is FrameType.ERROR:
            message = _decode_json(body, "ERROR").get("message")
            return ErrorEvent(message if isinstance(message, str) else "unspecified error")
        reason = _decode_json(body, "CANCEL").get("reason")
        return CancelEvent(reason if isinstance(reason, str) else "")

    def _check_seq(self, seq: int) -> DuplicateEvent | None:
        expected = self._seq
        if self._direction is Direction.TO_PRODUCER:
            # ACKs are cumulative and a CANCEL is backed by the relay's close, so a frame lost
            # with a failed relay is harmless; going backwards is still a replay [RP §13.2].
            if seq < expected:
                raise RelayIntegrityError(f"replayed frame: sequence {seq}, expected >= {expected}")
            return None
        last = self._resync_last
        if last is not None:
            # The run on a new relay must be contiguous, starting at or below ``expected``.
            if last >= 0 and seq != last + 1:
                raise RelayIntegrityError(
                    f"out-of-order resend after failover: sequence {seq} after {last}"
                )
            if seq < expected:
                self._resync_last = seq
                return DuplicateEvent(seq)
            self._resync_last = None
        if seq != expected:
            if seq < expected:
                raise RelayIntegrityError(f"replayed frame: sequence {seq}, expected {expected}")
            raise RelayIntegrityError(
                f"missing or reordered frames: sequence {seq}, expected {expected}"
            )
        return None

    def _final(self, obj: dict[str, Any]) -> FinalEvent:
        frames, tokens, usage = obj.get("frames"), obj.get("tokens"), obj.get("usage", {})
        if (
            not isinstance(frames, int)
            or not isinstance(tokens, int)
            or not isinstance(usage, dict)
        ):
            raise RelayProtocolError("FINAL body lacks integer frames/tokens or a usage object")
        # Truncation [RP §5]: the counts must match what arrived.
        if frames != self._data_frames or tokens != self._tokens:
            raise RelayIntegrityError(
                f"truncated stream: FINAL counts {frames} frames / {tokens} tokens, "
                f"received {self._data_frames} / {self._tokens}"
            )
        return FinalEvent(frames=frames, tokens=tokens, usage=usage)

    def end_of_stream(self) -> None:
        """Declare that no more frames will come (the connection ended).

        Raises:
            RelayIntegrityError: If no terminal frame was opened: the stream was truncated.
        """
        if not self._finished and self._failed is None:
            self._failed = "RelayIntegrityError"
            raise RelayIntegrityError(
                f"truncated stream: ended without FINAL after {self._data_frames} frames",
                channel_id=self.channel_id,
            )


__all__ = [
    "CHANNEL_ID_PATTERN",
    "DEFAULT_MAX_FRAME_BYTES",
    "HEADER_BYTES",
    "KEY_BYTES",
    "MAX_ERROR_CHARS",
    "PROTOCOL_VERSION",
    "TAG_BYTES",
    "AckEvent",
    "CancelEvent",
    "ChannelOpener",
    "ChannelSealer",
    "CloseCode",
    "Direction",
    "DuplicateEvent",
    "ErrorEvent",
    "Event",
    "FinalEvent",
    "FrameFlags",
    "FrameHeader",
    "FrameType",
    "TokensEvent",
    "channel_id_bytes",
    "new_channel_key",
    "parse_header",
]
