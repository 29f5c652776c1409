"""The relay server: forwards sealed frames from one producer to one consumer per channel.

Both sides dial out to the relay, so neither the compute node nor the user's machine opens an
inbound port. The relay authenticates each connection with a capability token, then forwards
binary messages as opaque bytes: it never holds a key, never decrypts, and never re-encodes
[RP §1]. It parses the request path and the token; of the frames it reads only the type byte of
the last one, to tell a producer that finished from one that vanished.

Everything is bounded [RP §6]: frame size, frames buffered before the consumer arrives (overflow
ends the channel with an error to both sides; nothing is dropped silently), live channels,
connections per client address, and idle time. Every way a connection can end maps to one
close code or HTTP status in :data:`_ENDINGS` [RP §7]; peers see only the fixed reason text
there, never exception details. Logs carry channel id prefixes, roles, addresses, counts and
outcomes — never tokens (there is no plaintext to log).

Backpressure: once the consumer is attached, the relay awaits each forward, so a slow consumer
slows the producer's reads through TCP flow control rather than growing a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import ssl
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.http11 import Request, Response

from langchain_stream.errors import ConfigurationError, RelayAuthError
from langchain_stream.relay.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    CloseCode,
    FrameType,
)
from langchain_stream.relay.tokens import Role, _secret_bytes, verify_token, wire_logger

logger = logging.getLogger("langchain_stream.relay")

DEFAULT_PORT = 8765
"""Default TCP port of ``stream relay``."""

DEFAULT_MAX_BUFFERED_FRAMES = 1_024
"""Default bound on frames held for a consumer that has not connected yet."""

DEFAULT_MAX_BUFFERED_BYTES = 1_048_576
"""Default bound on bytes held for a consumer that has not connected yet."""

DEFAULT_MAX_CHANNELS = 10_000
"""Default bound on live channels."""

DEFAULT_MAX_CHANNELS_PER_CLIENT = 256
"""Default bound on live channel connections from one client address."""

DEFAULT_IDLE_TIMEOUT_S = 120.0
"""Default time a channel may pass no frame (or wait for its other side) before it is closed."""

DEFAULT_CLOSE_TIMEOUT_S = 5.0
"""Default wait for a peer to answer a close before the TCP connection is dropped."""

_CHANNEL_PATH = re.compile(r"/v1/channel/([0-9a-f]{32})/(producer|consumer)")
_HEALTH_PATH = "/healthz"
_HEALTH_BODY = b'{"status":"ok"}'
_TERMINAL_TYPES = frozenset({FrameType.FINAL, FrameType.ERROR})


class _Ending(Enum):
    """Every way a connection or channel ends [RP §7]."""

    STREAM_DONE = "stream done"
    PRODUCER_GONE = "producer gone"
    CONSUMER_GONE = "consumer gone"
    FRAME_TOO_LARGE = "frame too large"
    BUFFER_OVERFLOW = "buffer overflow"
    IDLE = "idle timeout"
    PROTOCOL = "protocol error"
    SHUTDOWN = "relay shutting down"
    INTERNAL = "internal error"
    NOT_FOUND = "not found"
    NO_TOKEN = "token missing"
    BAD_TOKEN = "token refused"
    ROLE_TAKEN = "role taken"
    CLIENT_LIMIT = "too many channels for this client"
    CHANNEL_LIMIT = "too many channels"


# The one table mapping endings to what a peer sees [RP §7]: a close code for an open WebSocket,
# an HTTP status before the upgrade, and a fixed reason. Nothing else is ever sent to a peer.
_ENDINGS: dict[_Ending, tuple[CloseCode, HTTPStatus]] = {
    _Ending.STREAM_DONE: (CloseCode.NORMAL, HTTPStatus.OK),
    _Ending.PRODUCER_GONE: (CloseCode.PRODUCER_GONE, HTTPStatus.GONE),
    _Ending.CONSUMER_GONE: (CloseCode.CONSUMER_GONE, HTTPStatus.GONE),
    _Ending.FRAME_TOO_LARGE: (CloseCode.FRAME_TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    _Ending.BUFFER_OVERFLOW: (CloseCode.BUFFER_OVERFLOW, HTTPStatus.INSUFFICIENT_STORAGE),
    _Ending.IDLE: (CloseCode.IDLE_TIMEOUT, HTTPStatus.REQUEST_TIMEOUT),
    _Ending.PROTOCOL: (CloseCode.PROTOCOL_ERROR, HTTPStatus.BAD_REQUEST),
    _Ending.SHUTDOWN: (CloseCode.GOING_AWAY, HTTPStatus.SERVICE_UNAVAILABLE),
    _Ending.INTERNAL: (CloseCode.INTERNAL_ERROR, HTTPStatus.INTERNAL_SERVER_ERROR),
    _Ending.NOT_FOUND: (CloseCode.PROTOCOL_ERROR, HTTPStatus.NOT_FOUND),
    _Ending.NO_TOKEN: (CloseCode.PROTOCOL_ERROR, HTTPStatus.UNAUTHORIZED),
    _Ending.BAD_TOKEN: (CloseCode.PROTOCOL_ERROR, HTTPStatus.FORBIDDEN),
    _Ending.ROLE_TAKEN: (CloseCode.ROLE_TAKEN, HTTPStatus.CONFLICT),
    _Ending.CLIENT_LIMIT: (CloseCode.TOO_MANY_CHANNELS, HTTPStatus.TOO_MANY_REQUESTS),
    _Ending.CHANNEL_LIMIT: (CloseCode.TOO_MANY_CHANNELS, HTTPStatus.SERVICE_UNAVAILABLE),
}


_ROUTINE = frozenset({_Ending.STREAM_DONE, _Ending.CONSUMER_GONE})


async def _close(ws: ServerConnection, ending: _Ending) -> None:
    code, _ = _ENDINGS[ending]
    with contextlib.suppress(Exception):
        await ws.close(code, ending.value)


def _reject(ws: ServerConnection, ending: _Ending) -> Response:
    _, status = _ENDINGS[ending]
    return ws.respond(status, ending.value + "\n")


@dataclass(eq=False)
class _Channel:
    """A live channel: its two connections and the frames waiting for the consumer."""

    id: str
    producer: ServerConnection | None = None
    consumer: ServerConnection | None = None
    seen: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)
    buffer: deque[bytes] = field(default_factory=deque)
    buffered_bytes: int = 0
    flushing: asyncio.Event | None = None
    frames: int = 0
    idle_mark: int = -1
    idle_since: float = 0.0
    producer_ending: _Ending | None = None
    ending: _Ending | None = None

    @property
    def short(self) -> str:
        return self.id[:8]


class RelayServer:
    """A WebSocket relay for sealed token streams.

    Clients connect to ``/v1/channel/{channel_id}/{role}`` with ``Authorization: Bearer
    <token>``; a bad path or token is refused with an HTTP status before the upgrade. ``GET
    /healthz`` answers ``{"status":"ok"}`` and nothing else. Every limit is a keyword argument;
    ``None`` turns it off.

    Use it as ``async with RelayServer(secret) as relay: ...`` or with :meth:`start` and
    :meth:`close`.

    Args:
        secret: The HMAC secret that signs capability tokens [RP §8].
        host: Interface to bind.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        max_frame_bytes: Bound on one message; a larger one closes the sender with 1009 and the
            other side with 4003.
        max_buffered_frames: Frames held before the consumer connects.
        max_buffered_bytes: Bytes held before the consumer connects.
        max_channels: Live channels on this relay; more are refused with HTTP 503.
        max_channels_per_client: Live connections from one client address; more get HTTP 429.
        idle_timeout_s: A channel that passes no frame for this long is closed (both sides 4005).
        close_timeout_s: Wait for a peer to answer a close.
        ssl_context: Serve ``wss://`` with this TLS context.
        client_address_header: Behind a trusted reverse proxy, read the client address from the
            last entry of this header (e.g. ``"X-Forwarded-For"``) for per-client limits.
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        max_frame_bytes: int | None = DEFAULT_MAX_FRAME_BYTES,
        max_buffered_frames: int | None = DEFAULT_MAX_BUFFERED_FRAMES,
        max_buffered_bytes: int | None = DEFAULT_MAX_BUFFERED_BYTES,
        max_channels: int | None = DEFAULT_MAX_CHANNELS,
        max_channels_per_client: int | None = DEFAULT_MAX_CHANNELS_PER_CLIENT,
        idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
        close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        client_address_header: str | None = None,
    ) -> None:
        self._secret = _secret_bytes(secret)
        self._host = host
        self._port = port
        self._max_frame_bytes = max_frame_bytes
        self._max_buffered_frames = max_buffered_frames
        self._max_buffered_bytes = max_buffered_bytes
        self._max_channels = max_channels
        self._max_per_client = max_channels_per_client
        self._idle_timeout_s = idle_timeout_s
        self._close_timeout_s = close_timeout_s
        self._ssl = ssl_context
        self._address_header = client_address_header
        self._channels: dict[str, _Channel] = {}
        self._per_client: Counter[str] = Counter()
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("relay is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """The base URL clients dial, e.g. ``ws://127.0.0.1:8765``."""
        scheme = "wss" if self._ssl is not None else "ws"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self.port}"

    @property
    def live_channels(self) -> int:
        """Channels currently held (for operators and tests; not exposed over the network)."""
        return len(self._channels)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            return
        self._server = await serve(
            self._handle,
            self._host,
            self._port,
            process_request=self._process_request,
            compression=None,  # sealed bytes do not compress; deflate would only cost CPU
            max_size=self._max_frame_bytes,
            close_timeout=self._close_timeout_s,
            server_header=None,
            ssl=self._ssl,
            logger=wire_logger("langchain_stream.relay.wire"),
        )
        if self._idle_timeout_s is not None:
            self._sweeper = asyncio.create_task(self._sweep(self._idle_timeout_s))
        logger.info("relay listening on %s", self.url)

    async def close(self) -> None:
        """Stop accepting, close every channel with 1001 (going away), and wait for handlers."""
        if self._server is None or self._closing:
            if self._server is not None:
                await self._server.wait_closed()
            return
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.gather(
            *(self._end(ch, _Ending.SHUTDOWN) for ch in list(self._channels.values()))
        )
        self._server.close()
        await self._server.wait_closed()
        logger.info("relay closed")

    async def serve_forever(self) -> None:
        """Start if needed and serve until :meth:`close` is called or the task is cancelled."""
        await self.start()
        assert self._server is not None
        try:
            await self._server.wait_closed()
        finally:
            await self.close()

    async def __aenter__(self) -> RelayServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ admission

    def _client_address(self, ws: ServerConnection, request: Request) -> str:
        if self._address_header is not None:
            values = request.headers.get_all(self._address_header)
            if values:
                return values[-1].split(",")[-1].strip()
        address = ws.remote_address
        return str(address[0]) if address else "?"

    def _admit(self, channel_id: str, role: str, address: str) -> _Ending | None:
        """Check the limits for a new connection; no await, so check-and-register is atomic."""
        if self._closing:
            return _Ending.SHUTDOWN
        ch = self._channels.get(channel_id)
        if ch is not None and role in ch.seen:
            # A role connects once per channel: a second producer could only be a duplicate or
            # a retried worker, whose frames would reuse nonces under the same key [RP §3.2].
            return _Ending.ROLE_TAKEN
        if (
            ch is None
            and self._max_channels is not None
            and len(self._channels) >= self._max_channels
        ):
            return _Ending.CHANNEL_LIMIT
        if self._max_per_client is not None and self._per_client[address] >= self._max_per_client:
            return _Ending.CLIENT_LIMIT
        return None

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path == _HEALTH_PATH:
            # Deliberately nothing about channels or load [RP §9].
            headers = Headers(
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(_HEALTH_BODY))),
                    ("Connection", "close"),
                ]
            )
            return Response(HTTPStatus.OK, "OK", headers, _HEALTH_BODY)
        match = _CHANNEL_PATH.fullmatch(path)
        if match is None:
            return _reject(ws, _Ending.NOT_FOUND)
        channel_id, role = match.group(1), match.group(2)
        address = self._client_address(ws, request)
        authorization = request.headers.get_all("Authorization")
        scheme, _, token = (
            authorization[0].partition(" ") if len(authorization) == 1 else ("", "", "")
        )
        if scheme.lower() != "bearer" or not token:
            logger.warning(
                "refused %s on %s from %s: no bearer token", role, channel_id[:8], address
            )
            return _reject(ws, _Ending.NO_TOKEN)
        try:
            verify_token(self._secret, token.strip(), channel_id=channel_id, role=_as_role(role))
        except RelayAuthError as exc:
            # The reason goes to the log only; the peer learns that it was refused.
            logger.warning("refused %s on %s from %s: %s", role, channel_id[:8], address, exc)
            return _reject(ws, _Ending.BAD_TOKEN)
        refusal = self._admit(channel_id, role, address)
        if refusal is not None:
            logger.warning(
                "refused %s on %s from %s: %s", role, channel_id[:8], address, refusal.value
            )
            return _reject(ws, refusal)
        return None

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None  # the handshake is done when a handler runs
        match = _CHANNEL_PATH.fullmatch(request.path.partition("?")[0])
        if match is None:  # process_request already refused anything else
            await _close(ws, _Ending.NOT_FOUND)
            return
        channel_id, role = match.group(1), match.group(2)
        address = self._client_address(ws, request)
        # Limits again, now atomically with registration: other handshakes ran since the check.
        refusal = self._admit(channel_id, role, address)
        if refusal is not None:
            await _close(ws, refusal)
            return
        ch = self._channels.get(channel_id)
        if ch is None:
            ch = self._channels[channel_id] = _Channel(channel_id)
            ch.idle_since = asyncio.get_running_loop().time()
        ch.seen.add(role)
        self._per_client[address] += 1
        logger.debug("%s joined %s from %s", role, ch.short, address)
        try:
            if ch.ending is not None:
                # The channel ended before this side arrived: tell it how [RP §7].
                await _close(ws, ch.ending)
            elif role == "producer":
                ch.producer = ws
                await self._serve_producer(ws, ch)
            else:
                await self._serve_consumer(ws, ch)
        except Exception:
            logger.exception("relay fault on channel %s", ch.short)
            await self._end(ch, _Ending.INTERNAL, extra=ws)
        finally:
            self._per_client[address] -= 1
            if self._per_client[address] <= 0:
                del self._per_client[address]
            if ch.producer is ws:
                ch.producer = None
            if ch.consumer is ws:
                ch.consumer = None
            ch.left.add(role)
            # A channel is kept while one side may still arrive (tombstone or buffered frames);
            # the idle sweeper removes it if that side never comes.
            if len(ch.left) == 2:
                self._forget(ch)

    async def _serve_producer(self, ws: ServerConnection, ch: _Channel) -> None:
        ending = _Ending.STREAM_DONE
        message: bytes | str = b""
        try:
            # The hot path [RP §1]: receive, count, forward the same bytes object.
            while True:
                message = await ws.recv()
                if type(message) is not bytes:
                    ending = _Ending.PROTOCOL
                    break
                ch.frames += 1
                consumer = ch.consumer
                if consumer is not None:
                    try:  # noqa: SIM105 - try/except is cheaper than suppress() per frame
                        await consumer.send(message)
                    except ConnectionClosed:
                        pass  # the consumer's handler ends the channel
                    continue
                if ch.ending is not None:
                    continue
                ch.buffer.append(message)
                ch.buffered_bytes += len(message)
                if self._over_buffer_limit(ch):
                    if ch.flushing is None:
                        ending = _Ending.BUFFER_OVERFLOW
                        break
                    # The consumer is draining the buffer: wait for it rather than fail.
                    await ch.flushing.wait()
        except ConnectionClosedOK:
            # A clean close counts as the end of the stream only after a terminal frame; the
            # relay reads that one type byte of the last frame, nothing else [RP §7].
            ending = _Ending.STREAM_DONE if _is_terminal(message) else _Ending.PRODUCER_GONE
        except ConnectionClosed as exc:
            too_big = exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG
            ending = _Ending.FRAME_TOO_LARGE if too_big else _Ending.PRODUCER_GONE
        if ch.ending is not None:
            return
        if ending in (_Ending.STREAM_DONE, _Ending.PRODUCER_GONE) and ch.consumer is None:
            # Keep what was sent for the consumer, then tell it how the producer ended.
            ch.producer_ending = ending
            return
        await self._end(ch, ending)

    async def _serve_consumer(self, ws: ServerConnection, ch: _Channel) -> None:
        if ch.buffer:
            ch.flushing = asyncio.Event()
            try:
                while ch.buffer:
                    message = ch.buffer.popleft()
                    ch.buffered_bytes -= len(message)
                    await ws.send(message)
            except ConnectionClosed:
                await self._end(ch, _Ending.CONSUMER_GONE)
                return
            finally:
                ch.flushing.set()
                ch.flushing = None
        if ch.ending is not None:
            await _close(ws, ch.ending)
            return
        if ch.producer_ending is not None:
            await self._end(ch, ch.producer_ending, extra=ws)
            return
        ch.consumer = ws
        ending = _Ending.CONSUMER_GONE
        try:
            while True:
                message = await ws.recv()
                if type(message) is not bytes:
                    ending = _Ending.PROTOCOL
                    break
                ch.frames += 1
                producer = ch.producer
                if producer is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await producer.send(message)
        except ConnectionClosed as exc:
            too_big = exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG
            ending = _Ending.FRAME_TOO_LARGE if too_big else _Ending.CONSUMER_GONE
        await self._end(ch, ending)

    def _over_buffer_limit(self, ch: _Channel) -> bool:
        return (
            self._max_buffered_frames is not None and len(ch.buffer) > self._max_buffered_frames
        ) or (self._max_buffered_bytes is not None and ch.buffered_bytes > self._max_buffered_bytes)

    async def _end(
        self, ch: _Channel, ending: _Ending, *, extra: ServerConnection | None = None
    ) -> None:
        """End a channel: close every connection it has with the code for ``ending``."""
        if ch.ending is not None:
            if extra is not None:
                await _close(extra, ch.ending)
            return
        ch.ending = ending
        ch.buffer.clear()
        ch.buffered_bytes = 0
        level = logging.DEBUG if ending in _ROUTINE else logging.INFO
        logger.log(level, "channel %s ended: %s after %d frames", ch.short, ending.value, ch.frames)
        targets = {ws for ws in (ch.producer, ch.consumer, extra) if ws is not None}
        await asyncio.gather(*(_close(ws, ending) for ws in targets))

    def _forget(self, ch: _Channel) -> None:
        if self._channels.get(ch.id) is ch:
            del self._channels[ch.id]

    async def _sweep(self, idle_timeout_s: float) -> None:
        """Close channels that passed no frame for ``idle_timeout_s`` [RP §6]."""
        loop = asyncio.get_running_loop()
        interval = min(max(idle_timeout_s / 4, 0.01), 1.0)
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for ch in list(self._channels.values()):
                if ch.frames != ch.idle_mark:
                    ch.idle_mark, ch.idle_since = ch.frames, now
                elif now - ch.idle_since >= idle_timeout_s:
                    self._forget(ch)
                    if ch.ending is None:
                        asyncio.create_task(self._end(ch, _Ending.IDLE))  # noqa: RUF006


def _is_terminal(frame: bytes | str) -> bool:
    return (
        type(frame) is bytes
        and len(frame) > 1
        and frame[0] == PROTOCOL_VERSION
        and frame[1] in _TERMINAL_TYPES
    )


def _as_role(role: str) -> Role:
    return "producer" if role == "producer" else "consumer"


def run_relay(host: str, port: int, secret: str | bytes, **limits: Any) -> None:
    """Run a relay until SIGINT or SIGTERM, then shut it down gracefully (``stream relay``).

    Args:
        host: Interface to bind (``0.0.0.0`` to serve other machines).
        port: TCP port.
        secret: The token-signing secret (at least 16 bytes; 32 random bytes recommended).
        **limits: Any keyword argument of :class:`RelayServer` (``max_frame_bytes``,
            ``max_buffered_frames``, ``max_buffered_bytes``, ``max_channels``,
            ``max_channels_per_client``, ``idle_timeout_s``, ``close_timeout_s``,
            ``ssl_context``, ``client_address_header``).

    Raises:
        ConfigurationError: If the secret is missing or too short.
    """
    if not secret:
        raise ConfigurationError("the relay needs a secret to verify channel tokens")
    _secret_bytes(secret)  # fail before binding

    async def main() -> None:
        relay = RelayServer(secret, host=host, port=port, **limits)
        await relay.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await relay.close()

    asyncio.run(main())


__all__ = [
    "DEFAULT_CLOSE_TIMEOUT_S",
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_BUFFERED_FRAMES",
    "DEFAULT_MAX_CHANNELS",
    "DEFAULT_MAX_CHANNELS_PER_CLIENT",
    "DEFAULT_PORT",
    "RelayServer",
    "run_relay",
]
