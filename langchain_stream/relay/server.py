"""The relay server: forwards sealed frames from one producer to one consumer per channel.

Both sides dial out to the relay, so neither the compute node nor the user's machine opens an
inbound port. The relay authenticates each connection with a capability token, then forwards
binary messages as opaque bytes: it never holds a key, never decrypts, and never re-encodes
[RP §1]. It parses the request path and the token; of the frames it reads only the type byte of
the last one, to tell a producer that finished from one that vanished.

Everything is bounded [RP §6] by one :class:`~langchain_stream.relay.limits.RelayLimits`: frame
size, frames buffered before the consumer arrives (overflow ends the channel with an error to
both sides; nothing is dropped silently) per channel, per client address and in total, channels
held per client address and in total, pairing, unattended and idle time. Every rule of a
channel's life — who may join, pairing, buffering, forwarding, ending, the timeouts — is decided
by a pure :class:`~langchain_stream.relay.channels.ChannelTable` [RP §14]; this module only
moves bytes and time: it feeds the table events and carries out the actions it returns. Every
way a connection can end maps to one close code or HTTP status in
:data:`~langchain_stream.relay.channels.ENDINGS` [RP §7]; peers see only the fixed reason text
there, never exception details. Logs carry channel id prefixes, roles, addresses,
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
from http import HTTPStatus
from types import TracebackType

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.http11 import Request, Response

from langchain_stream.errors import ConfigurationError
from langchain_stream.failed_auth import FailedAuthCounter
from langchain_stream.relay.channels import (
    BUFFERED,
    DROPPED,
    WAIT,
    Action,
    Channel,
    ChannelTable,
    Close,
    End,
    Ending,
    Flush,
    Forget,
    Forward,
    Refuse,
)
from langchain_stream.relay.ended import (
    EndedChannels,
    EndedStore,
    EndedStoreError,
    open_ended_store,
)
from langchain_stream.relay.limits import RelayLimits
from langchain_stream.relay.protocol import CloseCode
from langchain_stream.relay.tokens import Role, _secret_bytes, wire_logger

logger = logging.getLogger("langchain_stream.relay")

DEFAULT_PORT = 8765
"""Default TCP port of ``stream relay``."""

_CHANNEL_PATH = re.compile(r"/v1/channel/([0-9a-f]{32})/(producer|consumer)")
_HEALTH_PATH = "/healthz"
_HEALTH_BODY = b'{"status":"ok"}'


async def _close(ws: ServerConnection, ending: Ending) -> None:
    with contextlib.suppress(Exception):
        await ws.close(ending.close_code, ending.value)


def _reject(ws: ServerConnection, refusal: Refuse) -> Response:
    response = ws.respond(refusal.ending.status, refusal.ending.value + "\n")
    if refusal.retry_after_s is not None:
        response.headers["Retry-After"] = f"{refusal.retry_after_s:.0f}"
    return response


_ROUTINE = frozenset({Ending.STREAM_DONE, Ending.CONSUMER_GONE})


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
        ended_store: The record of ended channels shared by the relays of a set [RP §13.6]
            (``None``: this relay's own memory only [RP §12.3]).
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
        ended_store: EndedStore | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._limits = limits or RelayLimits()
        self._table: ChannelTable[ServerConnection] = ChannelTable(secret, self._limits)
        self._failed_auth = FailedAuthCounter(self._limits.failed_auth)
        self._ssl = ssl_context
        self._address_header = client_address_header
        # Consumers being handed their buffered frames: a producer told to WAIT waits on these.
        self._flushes: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._ended = EndedChannels(ended_store) if ended_store is not None else None

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
        return self._table.live_channels

    @property
    def limits(self) -> RelayLimits:
        """The bounds this relay enforces."""
        return self._limits

    @property
    def buffered_bytes(self) -> int:
        """Bytes buffered for absent consumers, over all channels (for operators and tests)."""
        return self._table.buffered_bytes

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
        if self._server is None or self._table.closing:
            if self._server is not None:
                await self._server.wait_closed()
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._run(self._table.shutdown())
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
            return _reject(ws, Refuse(Ending.NOT_FOUND))
        channel_id, role = match.group(1), _as_role(match.group(2))
        address = self._client_address(ws, request)
        authorization = request.headers.get_all("Authorization")
        if authorization:
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
                return _reject(ws, Refuse(Ending.TOO_MANY_BAD_TOKENS, retry_after_s=blocked_for))
        verdict = self._table.check(
            authorization, channel_id, role, address, now=_monotonic(), wall_now=time.time()
        )
        if self._ended is not None and not isinstance(verdict, Refuse):
            # The set's record, asked only for a valid token the table admits [RP §13.6].
            try:
                if await self._ended.has_ended(channel_id, verdict.expires_at):
                    verdict = Refuse(
                        Ending.CHANNEL_ENDED,
                        detail="ended on the relay set",
                        token_id=verdict.token_id,
                    )
            except EndedStoreError:  # logged by the record
                # Fail closed: an unreadable record must not let an ended channel reopen.
                return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "relay state unavailable\n")
        if isinstance(verdict, Refuse):
            if verdict.ending is Ending.BAD_TOKEN:
                await self._failed_auth.record_failure(address)
            _log_refusal(verdict, role, channel_id, address)
            return _reject(ws, verdict)
        return None

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None  # the handshake is done when a handler runs
        match = _CHANNEL_PATH.fullmatch(request.path.partition("?")[0])
        if match is None:  # process_request already refused anything else
            await _close(ws, Ending.NOT_FOUND)
            return
        channel_id, role = match.group(1), _as_role(match.group(2))
        address = self._client_address(ws, request)
        # Decide again, now atomically with registering: other handshakes ran since the check.
        joined = self._table.join(
            ws,
            request.headers.get_all("Authorization"),
            channel_id,
            role,
            address,
            now=_monotonic(),
            wall_now=time.time(),
        )
        if isinstance(joined, Refuse):
            _log_refusal(joined, role, channel_id, address)
            await _close(ws, joined.ending)
            return
        ch, actions = joined
        if actions and isinstance(actions[0], Flush):
            # Made before any await, so that a producer told to WAIT finds it.
            self._flushes[ch.id] = asyncio.Event()
        logger.debug("%s joined %s from %s", role, ch.id[:8], address)
        try:
            for action in actions:
                if isinstance(action, Flush):
                    await self._flush(ch, ws)
                else:
                    await self._run((action,))
            if self._table.attached(ch, ws):
                if role == "producer":
                    await self._serve_producer(ws, ch)
                else:
                    await self._serve_consumer(ws, ch)
        except Exception:
            logger.exception("relay fault on channel %s", ch.id[:8])
            await self._run(self._table.fault(ch, ws))
        finally:
            self._execute(self._table.leave(ch, role, ws, now=_monotonic()))

    async def _flush(self, ch: Channel[ServerConnection], ws: ServerConnection) -> None:
        """Hand the consumer the frames buffered before it came, then attach it."""
        table = self._table
        try:
            while (frame := table.next_buffered(ch)) is not None:
                await ws.send(frame)
        except ConnectionClosed:
            actions = table.flush_failed(ch)
        else:
            actions = table.flushed(ch, ws)
        finally:
            self._flushes.pop(ch.id).set()
        await self._run(actions)

    async def _serve_producer(self, ws: ServerConnection, ch: Channel[ServerConnection]) -> None:
        table = self._table
        on_frame = table.producer_frame
        message: bytes | str = b""
        try:
            # The hot path [RP §1]: receive, let the table decide, forward the same bytes object.
            while True:
                message = await ws.recv()
                outcome = on_frame(ch, message)
                if type(outcome) is Forward:
                    try:  # noqa: SIM105 - try/except is cheaper than suppress() per frame
                        await outcome.to.send(message)
                    except ConnectionClosed:
                        pass  # the consumer's handler ends the channel
                    continue
                if outcome is BUFFERED or outcome is DROPPED:
                    continue
                if outcome is WAIT:
                    # The consumer is draining the buffer: wait for it, then hand the frame
                    # over rather than fail.
                    await self._flushes[ch.id].wait()
                    outcome = table.offer_again(ch)
                    if type(outcome) is Forward:
                        with contextlib.suppress(ConnectionClosed):
                            await outcome.to.send(message)
                    continue
                if isinstance(outcome, End):
                    await self._run((outcome,))
                return  # the channel ended: this side is read no more
        except ConnectionClosedOK:
            actions = table.producer_left(ch, clean=True, too_big=False, last=message)
        except ConnectionClosed as exc:
            actions = table.producer_left(ch, clean=False, too_big=_too_big(exc), last=message)
        if self._ended is not None:
            await self._ended.producer_left(ch.id, message)  # a stream done is recorded here
        await self._run(actions)

    async def _serve_consumer(self, ws: ServerConnection, ch: Channel[ServerConnection]) -> None:
        on_frame = self._table.consumer_frame
        try:
            while True:
                message = await ws.recv()
                outcome = on_frame(ch, message)
                if type(outcome) is Forward:
                    with contextlib.suppress(ConnectionClosed):
                        await outcome.to.send(message)
                    continue
                if outcome is DROPPED:
                    continue
                if isinstance(outcome, End):
                    await self._run((outcome,))
                return
        except ConnectionClosed as exc:
            actions = self._table.consumer_left(ch, too_big=_too_big(exc))
        await self._run(actions)

    # ------------------------------------------------------------------ actions

    async def _run(self, actions: tuple[Action[ServerConnection], ...]) -> None:
        """Carry out what the table decided: log, then close connections (concurrently)."""
        if self._ended is not None:
            await self._ended.record(actions)  # before the closes: the sides learn of it after
        closes = _note(actions)
        if closes:
            await asyncio.gather(*(_close(c.conn, c.ending) for c in closes))

    def _execute(self, actions: tuple[Action[ServerConnection], ...]) -> None:
        """Carry out ``actions`` without waiting for the closes (the sweeper's, a handler's
        last step)."""
        if self._ended is not None:
            self._ended.record_soon(actions)
        closes = _note(actions)
        if closes:
            task = asyncio.create_task(self._run(tuple(closes)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _sweep(self, interval_s: float) -> None:
        """Tell the table the time, so that it retires channels past a timeout [RP §6, §12]."""
        while True:
            await asyncio.sleep(interval_s)
            self._execute(self._table.tick(_monotonic()))


def _note(actions: tuple[Action[ServerConnection], ...]) -> list[Close[ServerConnection]]:
    """Log what the table decided; return the connections to close."""
    closes: list[Close[ServerConnection]] = []
    for action in actions:
        if isinstance(action, End):
            level = logging.DEBUG if action.ending in _ROUTINE else logging.INFO
            logger.log(
                level,
                "channel %s ended: %s after %d frames",
                action.channel_id[:8],
                action.ending.value,
                action.frames,
            )
            closes.extend(action.closes)
        elif isinstance(action, Close):
            closes.append(action)
        elif isinstance(action, Forget):
            if action.retired is not None:
                logger.info("channel %s retired: %s", action.channel_id[:8], action.retired.value)
            else:
                logger.debug("channel %s forgotten", action.channel_id[:8])
    return closes


def _too_big(exc: ConnectionClosed) -> bool:
    """Whether the relay closed this side with 1009 for a frame over the size bound."""
    return exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG


def _log_refusal(refusal: Refuse, role: str, channel_id: str, address: str) -> None:
    # The reason goes to the log only; the peer learns that it was refused [RP §9].
    if refusal.token_id is not None:
        logger.warning(
            "refused %s on %s from %s (token %s): %s",
            role,
            channel_id[:8],
            address,
            refusal.token_id,
            refusal.detail or refusal.ending.value,
        )
    else:
        logger.warning(
            "refused %s on %s from %s: %s",
            role,
            channel_id[:8],
            address,
            refusal.detail or refusal.ending.value,
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
    state_url: str | None = None,
) -> None:
    """Run a relay until SIGINT or SIGTERM, then shut it down gracefully (``stream relay``).

    Args:
        host: Interface to bind (``0.0.0.0`` to serve other machines).
        port: TCP port.
        secret: The token-signing secret (at least 16 bytes; 32 random bytes recommended).
        limits: The relay's bounds (defaults: :class:`RelayLimits`).
        ssl_context: Serve ``wss://`` with this TLS context.
        client_address_header: See :class:`RelayServer`.
        state_url: SQLAlchemy URL of the record of ended channels shared by the relay set
            (``STREAM_RELAY_STATE_URL``; PostgreSQL across machines, SQLite on one) [RP §13.6].

    Raises:
        ConfigurationError: If the secret is missing or too short, or ``state_url`` is not a
            usable database.
    """
    if not secret:
        raise ConfigurationError("the relay needs a secret to verify channel tokens")
    _secret_bytes(secret)  # fail before binding
    ended_store = open_ended_store(state_url)

    async def main() -> None:
        relay = RelayServer(
            secret,
            host=host,
            port=port,
            limits=limits,
            ssl_context=ssl_context,
            client_address_header=client_address_header,
            ended_store=ended_store,
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
