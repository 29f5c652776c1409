"""Relay producers: seal a channel's tokens and send them, from asyncio or from plain threads.

:class:`AsyncProducerClient` does the work on an event loop; :class:`ProducerClient` runs it on a
private loop in a background thread so a synchronous worker can use it [RP §4.1]. Both listen
for the consumer's CANCEL while sending.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from langchain_stream.errors import RelayError, RelayProtocolError, RelayTimeoutError
from langchain_stream.relay.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    CancelEvent,
    ChannelOpener,
    ChannelSealer,
    CloseCode,
    Direction,
)
from langchain_stream.relay.routing import DEFAULT_OPEN_TIMEOUT_S, closed_error, dial

logger = logging.getLogger("langchain_stream.relay.producer")

DEFAULT_COALESCE_S = 0.002
"""Default coalescing window: tokens queued within it share one frame."""

_T = TypeVar("_T")


class AsyncProducerClient:
    """Seal and send one channel's tokens from asyncio code.

    :meth:`send` never blocks: tokens queue in memory and a sender task seals them. When frames
    go out faster than one per ``coalesce_s``, the queued tokens share one frame; when tokens
    arrive slowly each goes out at once in its own frame [RP §4.1]. :meth:`send` applies no
    backpressure: while the socket is slow, tokens wait in memory and then leave together in
    fewer, larger frames.

    Args:
        relay_urls: One relay base URL or several (chosen by :func:`pick_relays`).
        channel_id: The channel id.
        token: The producer token of this channel.
        key: The request's 32-byte key, used by this producer only.
        coalesce_s: Coalescing window; 0 sends every batch at once.
        open_timeout_s: Bound on connecting to each relay.
        max_frame_bytes: Largest frame sent; bigger batches are split.
        on_cancel: Called (on the event loop) once when :attr:`cancelled` becomes true — the
            consumer cancelled or left, or the relay connection was lost — e.g. to abort the
            backend request.
    """

    def __init__(
        self,
        relay_urls: str | Sequence[str],
        channel_id: str,
        token: str,
        key: bytes | None,
        *,
        coalesce_s: float = DEFAULT_COALESCE_S,
        open_timeout_s: float | None = DEFAULT_OPEN_TIMEOUT_S,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        on_cancel: Callable[[], None] | None = None,
    ) -> None:
        self.channel_id = channel_id
        self._urls = relay_urls
        self._token = token
        self._sealer = ChannelSealer(key, channel_id, max_frame_bytes=max_frame_bytes)
        self._opener = ChannelOpener(key, channel_id, direction=Direction.TO_PRODUCER)
        self._coalesce_s = coalesce_s
        self._open_timeout_s = open_timeout_s
        self._max_frame_bytes = max_frame_bytes
        self._on_cancel = on_cancel
        self._ws: ClientConnection | None = None
        self._queue: list[str] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._sender: asyncio.Task[None] | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._cancelled = asyncio.Event()
        self._lost: RelayError | None = None
        self._consumer_left = False
        self._terminal_sent = False
        self.cancel_reason: str | None = None
        """Why the channel was cancelled (consumer CANCEL, consumer gone, relay lost)."""
        self.relay_url: str | None = None
        """The relay this producer is connected to."""
        self.frames_sent = 0
        """DATA frames sent so far (fewer than tokens when coalescing)."""

    @property
    def cancelled(self) -> bool:
        """Whether the worker should stop: the consumer cancelled or nobody can read any more."""
        return self._cancelled.is_set()

    async def wait_cancelled(self) -> None:
        """Return once :attr:`cancelled` is set."""
        await self._cancelled.wait()

    async def connect(self) -> None:
        """Connect to the channel's relay (failing over) and start the sender and receiver.

        Raises:
            RelayAuthError: The relay refused the token.
            RelayUnavailableError: No relay could be reached.
        """
        if self._ws is not None:
            return
        self._ws, self.relay_url = await dial(
            self._urls,
            self.channel_id,
            "producer",
            self._token,
            open_timeout_s=self._open_timeout_s,
            max_frame_bytes=self._max_frame_bytes,
        )
        self._sender = asyncio.create_task(self._send_loop(self._ws))
        self._receiver = asyncio.create_task(self._receive_loop(self._ws))

    def send(self, token: str) -> None:
        """Queue one token; it is sealed and sent by the sender task.

        Tokens sent after a cancel are dropped (nobody reads them).

        Raises:
            RelayProtocolError: If the channel was already finished by this side.
        """
        if self._closing:
            raise RelayProtocolError("send() after finish() or fail()", channel_id=self.channel_id)
        if token and not self._cancelled.is_set():
            self._queue.append(token)
            self._wake.set()

    async def _send_loop(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        last_sent = -math.inf
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._coalesce_s > 0 and not self._closing:
                    # Under load (the last frame left less than a window ago) wait out the
                    # window so the tokens arriving meanwhile share the next frame [RP §4.1].
                    pause = last_sent + self._coalesce_s - loop.time()
                    if pause > 0:
                        await asyncio.sleep(pause)
                batch, self._queue = self._queue, []
                if batch and not self._cancelled.is_set():
                    for frame in self._sealer.pack_tokens(batch):
                        await ws.send(frame)
                        self.frames_sent += 1
                    last_sent = loop.time()
                if self._closing and not self._queue:
                    return
        except ConnectionClosed as exc:
            self._lose(closed_error(exc, self.channel_id))

    async def _receive_loop(self, ws: ClientConnection) -> None:
        try:
            while True:
                event = self._opener.open(await ws.recv())  # type: ignore[arg-type]
                if isinstance(event, CancelEvent):
                    self._consumer_left = True
                    self._set_cancelled(f"consumer cancelled: {event.reason}")
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CloseCode.CONSUMER_GONE:
                self._consumer_left = True
            self._lose(closed_error(exc, self.channel_id))
        except RelayError as exc:
            # A bad frame from the consumer side means someone tampers: stop, fail closed.
            logger.warning(
                "channel %s: rejected frame from the consumer side: %s", self.channel_id[:8], exc
            )
            self._lose(exc)
            await ws.close()

    def _lose(self, exc: RelayError) -> None:
        if self._terminal_sent:
            return  # closing after FINAL or ERROR is the normal end
        if self._lost is None:
            self._lost = exc
        self._set_cancelled(str(exc))

    def _set_cancelled(self, reason: str) -> None:
        if self._cancelled.is_set():
            return
        self.cancel_reason = reason
        self._cancelled.set()
        self._wake.set()
        if self._on_cancel is not None:
            try:
                self._on_cancel()
            except Exception:
                logger.exception("on_cancel callback failed")

    async def _end(self, terminal: Callable[[], bytes]) -> None:
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        ws = self._ws
        if ws is None:
            raise RuntimeError("call connect() first")
        try:
            if self._sender is not None:
                await self._sender
            if self._lost is None and not self._cancelled.is_set():
                try:
                    await ws.send(terminal())
                    self._terminal_sent = True
                except ConnectionClosed as exc:
                    self._lose(closed_error(exc, self.channel_id))
        finally:
            await self._shutdown()
        if self._lost is not None and not self._consumer_left:
            raise self._lost

    async def finish(self, usage: Mapping[str, Any] | None = None) -> None:
        """Flush queued tokens, send FINAL with ``usage``, and disconnect.

        Raises:
            ChannelClosedError: If the relay connection was lost before FINAL went out (not
                raised when the consumer cancelled: there is nobody to tell).
        """
        await self._end(lambda: self._sealer.seal_final(usage))

    async def fail(self, message: str) -> None:
        """Flush queued tokens, send ERROR with ``message``, and disconnect."""
        await self._end(lambda: self._sealer.seal_error(message))

    async def _shutdown(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        for task in (self._sender, self._receiver):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def close(self) -> None:
        """Disconnect; if neither :meth:`finish` nor :meth:`fail` ran, send ERROR first."""
        if not self._closing and self._ws is not None:
            with contextlib.suppress(RelayError):
                await self.fail("producer closed without finishing")
        else:
            await self._shutdown()

    async def __aenter__(self) -> AsyncProducerClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not self._closing:
            with contextlib.suppress(RelayError):
                await self.fail(f"{exc_type.__name__ if exc_type else 'error'}: {exc}")
        await self.close()


class ProducerClient:
    """Seal and send one channel's tokens from plain synchronous code (e.g. a worker).

    It runs an :class:`AsyncProducerClient` on a private event loop in a background thread, so
    :meth:`send` returns at once and the connection keeps listening for CANCEL while the worker
    computes. Use as ``with ProducerClient(...) as producer:``; an exception inside the block
    sends ERROR, and a block that ends without :meth:`finish` sends ERROR too.

    Args:
        relay_urls: One relay base URL or several (chosen by :func:`pick_relays`).
        channel_id: The channel id.
        token: The producer token of this channel.
        key: The request's 32-byte key, used by this producer only.
        coalesce_s: Coalescing window (see :class:`AsyncProducerClient`).
        open_timeout_s: Bound on connecting to each relay.
        max_frame_bytes: Largest frame sent.
        on_cancel: Called once, from the background thread, when :attr:`cancelled` becomes true
            (consumer cancelled or left, relay lost) — e.g. to close the backend's HTTP stream.
        call_timeout_s: Bound on :meth:`connect`, :meth:`finish` and :meth:`fail`.
    """

    def __init__(
        self,
        relay_urls: str | Sequence[str],
        channel_id: str,
        token: str,
        key: bytes | None,
        *,
        coalesce_s: float = DEFAULT_COALESCE_S,
        open_timeout_s: float | None = DEFAULT_OPEN_TIMEOUT_S,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        on_cancel: Callable[[], None] | None = None,
        call_timeout_s: float = 60.0,
    ) -> None:
        self._args = (relay_urls, channel_id, token, key)
        self._kwargs: dict[str, Any] = {
            "coalesce_s": coalesce_s,
            "open_timeout_s": open_timeout_s,
            "max_frame_bytes": max_frame_bytes,
        }
        self._user_on_cancel = on_cancel
        self._call_timeout_s = call_timeout_s
        self._cancelled = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: AsyncProducerClient | None = None
        self._ended = False
        self.channel_id = channel_id

    @property
    def cancelled(self) -> bool:
        """Whether the worker should stop (consumer cancelled or gone, or relay lost)."""
        return self._cancelled.is_set()

    @property
    def cancel_reason(self) -> str | None:
        """Why :attr:`cancelled` was set."""
        return self._client.cancel_reason if self._client is not None else None

    @property
    def relay_url(self) -> str | None:
        """The relay this producer is connected to."""
        return self._client.relay_url if self._client is not None else None

    @property
    def frames_sent(self) -> int:
        """DATA frames sent so far."""
        return self._client.frames_sent if self._client is not None else 0

    def wait_cancelled(self, timeout_s: float | None = None) -> bool:
        """Block until :attr:`cancelled` is set or ``timeout_s`` passes; return the flag."""
        return self._cancelled.wait(timeout_s)

    def _on_cancel(self) -> None:
        self._cancelled.set()
        if self._user_on_cancel is not None:
            self._user_on_cancel()

    def _run(self, factory: Callable[[], Awaitable[_T]]) -> _T:
        assert self._loop is not None

        async def call() -> _T:
            return await factory()

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        try:
            return future.result(self._call_timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RelayTimeoutError(
                "producer call timed out",
                channel_id=self.channel_id,
                timeout_s=self._call_timeout_s,
            ) from None

    def connect(self) -> None:
        """Start the background loop and connect (see :meth:`AsyncProducerClient.connect`)."""
        if self._loop is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"relay-producer-{self.channel_id[:8]}", daemon=True
        )
        self._thread.start()

        async def start() -> AsyncProducerClient:
            client = AsyncProducerClient(*self._args, on_cancel=self._on_cancel, **self._kwargs)
            await client.connect()
            return client

        try:
            self._client = self._run(start)
        except BaseException:
            self._stop_loop()
            raise

    def send(self, token: str) -> None:
        """Queue one token for sending; returns at once.

        Raises:
            RelayProtocolError: After :meth:`finish`, :meth:`fail` or :meth:`close`.
        """
        if self._ended or self._loop is None or self._client is None:
            raise RelayProtocolError(
                "send() on a producer that is not open", channel_id=self.channel_id
            )
        self._loop.call_soon_threadsafe(self._client.send, token)

    def finish(self, usage: Mapping[str, Any] | None = None) -> None:
        """Flush, send FINAL with ``usage``, and disconnect.

        Raises:
            ChannelClosedError: If the relay connection was lost before FINAL went out.
        """
        self._end(lambda client: client.finish(usage))

    def fail(self, message: str) -> None:
        """Flush, send ERROR with ``message``, and disconnect."""
        self._end(lambda client: client.fail(message))

    def _end(self, action: Callable[[AsyncProducerClient], Awaitable[None]]) -> None:
        if self._ended or self._client is None:
            return
        self._ended = True
        client = self._client
        try:
            self._run(lambda: action(client))
        finally:
            self._stop_loop()

    def close(self) -> None:
        """Disconnect; sends ERROR if neither :meth:`finish` nor :meth:`fail` ran."""
        self._end(lambda client: client.close())
        self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5.0)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> ProducerClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            with contextlib.suppress(RelayError):
                self.fail(f"{exc_type.__name__ if exc_type else 'error'}: {exc}")
        self.close()


__all__ = ["DEFAULT_COALESCE_S", "AsyncProducerClient", "ProducerClient"]
