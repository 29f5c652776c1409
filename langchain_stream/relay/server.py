"""The relay server: forwards sealed frames from one producer to one consumer per channel.

Both sides dial out to the relay, so neither the compute node nor the user's machine opens an
inbound port. The relay authenticates each connection with a capability token, then forwards
binary messages as opaque bytes: it never holds a key, never decrypts, and never re-encodes
[RP §1]. It parses the request path and the token; of the frames it reads only the type byte of
the last one, to tell a producer that finished from one that vanished.

Everything is bounded [RP §6] by one :class:`~langchain_stream.relay.limits.RelayLimits`: frame
size, frames buffered before the consumer arrives (overflow ends the channel with an error to
both sides; nothing is dropped silently) per channel, per client address and in total, channels
held per client address and in total, pairing, unattended and idle time. Who may join and what
may be buffered is decided by a pure :class:`~langchain_stream.relay.ledger.RelayLedger` that
also keeps the books [RP §12]; this module only does the I/O. Every way a connection can end
maps to one close code or HTTP status in :data:`_ENDINGS` [RP §7]; peers see only the fixed
reason text there, never exception details. Logs carry channel id prefixes, roles, addresses,
token ids, counts and outcomes — never tokens (there is no plaintext to log).

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
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from types import TracebackType

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.http11 import Request, Response

from langchain_stream.errors import ConfigurationError, RelayAuthError
from langchain_stream.failed_auth import FailedAuthCounter
from langchain_stream.relay.ledger import RelayLedger, Verdict
from langchain_stream.relay.limits import RelayLimits
from langchain_stream.relay.protocol import PROTOCOL_VERSION, CloseCode, FrameType
from langchain_stream.relay.tokens import (
    DEFAULT_LEEWAY_S,
    Role,
    TokenClaims,
    _secret_bytes,
    verify_token,
    wire_logger,
)

logger = logging.getLogger("langchain_stream.relay")

DEFAULT_PORT = 8765
"""Default TCP port of ``stream relay``."""

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


# The one table mapping endings to what a peer sees [RP §7]: a close code for an open WebSocket,
# an HTTP status before the upgrade, and a fixed reason. Nothing else is ever sent to a peer.
_ENDINGS: dict[_Ending, tuple[CloseCode, HTTPStatus]] = {
    _Ending.STREAM_DONE: (CloseCode.NORMAL, HTTPStatus.OK),
    _Ending.PRODUCER_GONE: (CloseCode.PRODUCER_GONE, HTTPStatus.GONE),
    _Ending.CONSUMER_GONE: (CloseCode.CONSUMER_GONE, HTTPStatus.GONE),
    _Ending.FRAME_TOO_LARGE: (CloseCode.FRAME_TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    _Ending.BUFFER_OVERFLOW: (CloseCode.BUFFER_OVERFLOW, HTTPStatus.INSUFFICIENT_STORAGE),
    _Ending.CLIENT_BUFFER: (CloseCode.BUFFER_OVERFLOW, HTTPStatus.TOO_MANY_REQUESTS),
    _Ending.MEMORY_FULL: (CloseCode.BUFFER_OVERFLOW, HTTPStatus.SERVICE_UNAVAILABLE),
    _Ending.IDLE: (CloseCode.IDLE_TIMEOUT, HTTPStatus.REQUEST_TIMEOUT),
    _Ending.PAIRING: (CloseCode.IDLE_TIMEOUT, HTTPStatus.REQUEST_TIMEOUT),
    _Ending.PROTOCOL: (CloseCode.PROTOCOL_ERROR, HTTPStatus.BAD_REQUEST),
    _Ending.SHUTDOWN: (CloseCode.GOING_AWAY, HTTPStatus.SERVICE_UNAVAILABLE),
    _Ending.INTERNAL: (CloseCode.INTERNAL_ERROR, HTTPStatus.INTERNAL_SERVER_ERROR),
    _Ending.NOT_FOUND: (CloseCode.PROTOCOL_ERROR, HTTPStatus.NOT_FOUND),
    _Ending.NO_TOKEN: (CloseCode.PROTOCOL_ERROR, HTTPStatus.UNAUTHORIZED),
    _Ending.BAD_TOKEN: (CloseCode.PROTOCOL_ERROR, HTTPStatus.FORBIDDEN),
    _Ending.TOO_MANY_BAD_TOKENS: (CloseCode.PROTOCOL_ERROR, HTTPStatus.TOO_MANY_REQUESTS),
    _Ending.CHANNEL_ENDED: (CloseCode.PROTOCOL_ERROR, HTTPStatus.FORBIDDEN),
    _Ending.ROLE_TAKEN: (CloseCode.ROLE_TAKEN, HTTPStatus.CONFLICT),
    _Ending.CLIENT_LIMIT: (CloseCode.TOO_MANY_CHANNELS, HTTPStatus.TOO_MANY_REQUESTS),
    _Ending.CHANNEL_LIMIT: (CloseCode.TOO_MANY_CHANNELS, HTTPStatus.SERVICE_UNAVAILABLE),
}


# What the ledger's verdicts mean on the wire.
_VERDICT_ENDINGS: dict[Verdict, _Ending] = {
    Verdict.ROLE_TAKEN: _Ending.ROLE_TAKEN,
    Verdict.CHANNEL_ENDED: _Ending.CHANNEL_ENDED,
    Verdict.CHANNEL_LIMIT: _Ending.CHANNEL_LIMIT,
    Verdict.ENDED_MEMORY_FULL: _Ending.CHANNEL_LIMIT,
    Verdict.CLIENT_CHANNELS: _Ending.CLIENT_LIMIT,
    Verdict.CLIENT_BYTES: _Ending.CLIENT_BUFFER,
    Verdict.MEMORY_FULL: _Ending.MEMORY_FULL,
    Verdict.CHANNEL_BUFFER: _Ending.BUFFER_OVERFLOW,
    Verdict.PAIRING_TIMEOUT: _Ending.PAIRING,
    Verdict.UNATTENDED: _Ending.IDLE,
}

_ROUTINE = frozenset({_Ending.STREAM_DONE, _Ending.CONSUMER_GONE})


async def _close(ws: ServerConnection, ending: _Ending) -> None:
    code, _ = _ENDINGS[ending]
    with contextlib.suppress(Exception):
        await ws.close(code, ending.value)


def _reject(ws: ServerConnection, ending: _Ending, retry_after_s: float | None = None) -> Response:
    _, status = _ENDINGS[ending]
    response = ws.respond(status, ending.value + "\n")
    if retry_after_s is not None:
        response.headers["Retry-After"] = f"{retry_after_s:.0f}"
    return response


@dataclass(eq=False)
class _Channel:
    """A live channel: its two connections and the frames waiting for the consumer."""

    id: str
    producer: ServerConnection | None = None
    consumer: ServerConnection | None = None
    left: set[str] = field(default_factory=set)
    buffer: deque[bytes] = field(default_factory=deque)
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
    /healthz`` answers ``{"status":"ok"}`` and nothing else. Every bound is a field of
    ``limits``.

    Use it as ``async with RelayServer(secret) as relay: ...`` or with :meth:`start` and
    :meth:`close`.

    Args:
        secret: The HMAC secret that signs capability tokens [RP §8].
        host: Interface to bind.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        limits: The relay's bounds (defaults: :class:`RelayLimits`).
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
        limits: RelayLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        client_address_header: str | None = None,
    ) -> None:
        self._secret = _secret_bytes(secret)
        self._host = host
        self._port = port
        self._limits = limits or RelayLimits()
        self._ledger = RelayLedger(self._limits)
        self._failed_auth = FailedAuthCounter(self._limits.failed_auth)
        self._ssl = ssl_context
        self._address_header = client_address_header
        self._channels: dict[str, _Channel] = {}
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

    @property
    def limits(self) -> RelayLimits:
        """The bounds this relay enforces."""
        return self._limits

    @property
    def buffered_bytes(self) -> int:
        """Bytes buffered for absent consumers, over all channels (for operators and tests)."""
        return self._ledger.buffered_bytes

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
            max_size=self._limits.max_frame_bytes,
            close_timeout=self._limits.close_timeout_s,
            server_header=None,
            ssl=self._ssl,
            logger=wire_logger("langchain_stream.relay.wire"),
        )
        interval = self._limits.sweep_interval_s
        if interval is not None:
            self._sweeper = asyncio.create_task(self._sweep(interval))
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

    def _check(self, channel_id: str, role: str, address: str) -> _Ending | None:
        """Whether the connection may join, during the handshake; registers nothing."""
        if self._closing:
            return _Ending.SHUTDOWN
        verdict = self._ledger.check(channel_id, role, address, now=_monotonic())
        return None if verdict is None else _VERDICT_ENDINGS[verdict]

    def _admit(self, channel_id: str, role: str, address: str, expires_at: float) -> _Ending | None:
        """Decide again and register, once upgraded; no await, so this is atomic."""
        if self._closing:
            return _Ending.SHUTDOWN
        verdict = self._ledger.admit(
            channel_id,
            role,
            address,
            # Remembered by the monotonic clock until the token expires (plus the leeway).
            expires_in_s=max(expires_at - time.time(), 0.0) + DEFAULT_LEEWAY_S,
            now=_monotonic(),
        )
        return None if verdict is None else _VERDICT_ENDINGS[verdict]

    def _authorize(
        self, request: Request, channel_id: str, role: str, address: str
    ) -> TokenClaims | _Ending:
        """The token's claims, or why the request is refused (the reason goes to the log only;
        the peer learns that it was refused)."""
        authorization = request.headers.get_all("Authorization")
        scheme, _, token = (
            authorization[0].partition(" ") if len(authorization) == 1 else ("", "", "")
        )
        if scheme.lower() != "bearer" or not token:
            logger.warning(
                "refused %s on %s from %s: no bearer token", role, channel_id[:8], address
            )
            return _Ending.NO_TOKEN
        try:
            return verify_token(self._secret, token, channel_id=channel_id, role=_as_role(role))
        except RelayAuthError as exc:
            logger.warning("refused %s on %s from %s: %s", role, channel_id[:8], address, exc)
            return _Ending.BAD_TOKEN

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
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
        if request.headers.get("Authorization"):
            # An address that keeps presenting bad tokens is refused before the next is checked.
            blocked_for = await self._failed_auth.retry_after(address)
            if blocked_for is not None:
                # Debug only: a blocked address must not be able to flood the log either.
                logger.debug(
                    "refused %s on %s from %s: too many refused tokens",
                    role,
                    channel_id[:8],
                    address,
                )
                return _reject(ws, _Ending.TOO_MANY_BAD_TOKENS, blocked_for)
        claims = self._authorize(request, channel_id, role, address)
        if isinstance(claims, _Ending):
            if claims is _Ending.BAD_TOKEN:
                await self._failed_auth.record_failure(address)
            return _reject(ws, claims)
        refusal = self._check(channel_id, role, address)
        if refusal is not None:
            logger.warning(
                "refused %s on %s from %s (token %s): %s",
                role,
                channel_id[:8],
                address,
                claims.token_id,
                refusal.value,
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
        # Decide again, now atomically with registering: other handshakes ran since the check.
        claims = self._authorize(request, channel_id, role, address)
        refusal = (
            claims
            if isinstance(claims, _Ending)
            else self._admit(channel_id, role, address, claims.expires_at)
        )
        if refusal is not None:
            await _close(ws, refusal)
            return
        ch = self._channels.get(channel_id)
        if ch is None:
            ch = self._channels[channel_id] = _Channel(channel_id, idle_since=_monotonic())
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
            self._ledger.detach(ch.id, role, now=_monotonic())
            if ch.producer is ws:
                ch.producer = None
            if ch.consumer is ws:
                ch.consumer = None
            ch.left.add(role)
            # A channel is kept while one side may still arrive (tombstone or buffered frames);
            # the sweeper removes it if that side does not come within the unattended timeout.
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
                verdict = self._ledger.hold(ch.id, len(message))
                if verdict is None:
                    ch.buffer.append(message)
                    continue
                if ch.flushing is None:
                    ending = _VERDICT_ENDINGS[verdict]
                    break
                # The consumer is draining the buffer: wait for it, then hand the frame over
                # rather than fail. No await between the flush and the consumer's attaching.
                await ch.flushing.wait()
                consumer = ch.consumer
                if consumer is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await consumer.send(message)
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
                    self._ledger.release(ch.id, len(message))
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
        self._ledger.release_all(ch.id)
        level = logging.DEBUG if ending in _ROUTINE else logging.INFO
        logger.log(level, "channel %s ended: %s after %d frames", ch.short, ending.value, ch.frames)
        targets = {ws for ws in (ch.producer, ch.consumer, extra) if ws is not None}
        await asyncio.gather(*(_close(ws, ending) for ws in targets))

    def _forget(self, ch: _Channel) -> None:
        """Drop the channel for good: its quotas are freed and its id never opens again."""
        if self._channels.get(ch.id) is ch:
            del self._channels[ch.id]
            ch.buffer.clear()
            self._ledger.forget(ch.id)

    def _retire(self, ch: _Channel, ending: _Ending) -> None:
        self._forget(ch)
        if ch.ending is None:
            asyncio.create_task(self._end(ch, ending))  # noqa: RUF006

    async def _sweep(self, interval_s: float) -> None:
        """Retire channels past the idle, pairing or unattended timeout [RP §6, §12]."""
        idle_timeout_s = self._limits.idle_timeout_s
        while True:
            await asyncio.sleep(interval_s)
            now = _monotonic()
            for channel_id, verdict in self._ledger.overdue(now):
                ch = self._channels.get(channel_id)
                if ch is None:  # registered by the ledger only; cannot happen, but never leak
                    self._ledger.forget(channel_id)
                    continue
                logger.info("channel %s retired: %s", ch.short, verdict.value)
                self._retire(ch, _VERDICT_ENDINGS[verdict])
            if idle_timeout_s is None:
                continue
            for ch in list(self._channels.values()):
                if ch.frames != ch.idle_mark:
                    ch.idle_mark, ch.idle_since = ch.frames, now
                elif now - ch.idle_since >= idle_timeout_s:
                    self._retire(ch, _Ending.IDLE)


def _is_terminal(frame: bytes | str) -> bool:
    return (
        type(frame) is bytes
        and len(frame) > 1
        and frame[0] == PROTOCOL_VERSION
        and frame[1] in _TERMINAL_TYPES
    )


def _monotonic() -> float:
    return time.monotonic()


def _as_role(role: str) -> Role:
    return "producer" if role == "producer" else "consumer"


def run_relay(
    host: str,
    port: int,
    secret: str | bytes,
    *,
    limits: RelayLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    client_address_header: str | None = None,
) -> None:
    """Run a relay until SIGINT or SIGTERM, then shut it down gracefully (``stream relay``).

    Args:
        host: Interface to bind (``0.0.0.0`` to serve other machines).
        port: TCP port.
        secret: The token-signing secret (at least 16 bytes; 32 random bytes recommended).
        limits: The relay's bounds (defaults: :class:`RelayLimits`).
        ssl_context: Serve ``wss://`` with this TLS context.
        client_address_header: See :class:`RelayServer`.

    Raises:
        ConfigurationError: If the secret is missing or too short.
    """
    if not secret:
        raise ConfigurationError("the relay needs a secret to verify channel tokens")
    _secret_bytes(secret)  # fail before binding

    async def main() -> None:
        relay = RelayServer(
            secret,
            host=host,
            port=port,
            limits=limits,
            ssl_context=ssl_context,
            client_address_header=client_address_header,
        )
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


__all__ = ["DEFAULT_PORT", "RelayLimits", "RelayServer", "run_relay"]
