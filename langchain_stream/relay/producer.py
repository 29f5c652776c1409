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
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from langchain_stream.errors import (
    ChannelClosedError,
    RelayError,
    RelayProtocolError,
    RelayTimeoutError,
    RelayUnavailableError,
)
from langchain_stream.relay.failover import FailoverLimits, ResendWindow
from langchain_stream.relay.link import ChannelEnd, RelayLink, within
from langchain_stream.relay.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    AckEvent,
    CancelEvent,
    ChannelOpener,
    ChannelSealer,
    CloseCode,
    Direction,
    parse_header,
)
from langchain_stream.relay.routing import DEFAULT_OPEN_TIMEOUT_S, closed_error, may_fail_over

logger = logging.getLogger("langchain_stream.relay.producer")

DEFAULT_COALESCE_S = 0.002
"""Default coalescing window: tokens queued within it share one frame."""

DEFAULT_FAILOVER = FailoverLimits()
"""Failover is on by default, with the documented bounds [RP §13.5]."""

_T = TypeVar("_T")


class AsyncProducerClient(ChannelEnd):
    """Seal and send one channel's tokens from asyncio code.

    :meth:`send` never blocks: tokens queue in memory and a sender task seals them. When frames
    go out faster than one per ``coalesce_s``, the queued tokens share one frame; when tokens
    arrive slowly each goes out at once in its own frame [RP §4.1]. :meth:`send` applies no
    backpressure: while the socket is slow, tokens wait in memory and then leave together in
    fewer, larger frames.

    With ``failover`` (the default), every sealed frame is held until the consumer acknowledges
    it; when the relay dies or stalls, the producer moves to the next relay of the channel's
    rendezvous order and resends what is unacknowledged. An idle producer sends an empty DATA
    frame every ``heartbeat_s`` so the consumer can tell silence from a stalled relay [RP §13].

    Args:
        relay_urls: One relay base URL or several (chosen by :func:`pick_relays`).
        channel_id: The channel id.
        token: The producer token of this channel (valid on every relay of the set).
        key: The request's 32-byte key, used by this producer only.
        coalesce_s: Coalescing window; 0 sends every batch at once.
        open_timeout_s: Bound on connecting to each relay.
        max_frame_bytes: Largest frame sent; bigger batches are split.
        on_cancel: Called (on the event loop) once when :attr:`cancelled` becomes true — the
            consumer cancelled or left, or the relay connection was lost — e.g. to abort the
            backend request.
        failover: Mid-stream failover bounds and timings; ``None`` turns failover off.
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
        failover: FailoverLimits | None = DEFAULT_FAILOVER,
    ) -> None:
        super().__init__(
            RelayLink(
                relay_urls,
                channel_id,
                "producer",
                token,
                open_timeout_s=open_timeout_s,
                max_frame_bytes=max_frame_bytes,
                failover=failover,
            )
        )
        self._sealer = ChannelSealer(key, channel_id, max_frame_bytes=max_frame_bytes)
        self._opener = ChannelOpener(key, channel_id, direction=Direction.TO_PRODUCER)
        self._coalesce_s = coalesce_s
        self._on_cancel = on_cancel
        self._window = ResendWindow(failover) if self._failover is not None else None
        self._acked = asyncio.Event()
        self._relinking = asyncio.Lock()
        # While moving to another relay, frames sealed wait in the window for the resend.
        self._moving = False
        self._queue: list[str] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cancelled = asyncio.Event()
        self._lost: RelayError | None = None
        self._consumer_left = False
        self._terminal_sent = False
        self.cancel_reason: str | None = None
        """Why the channel was cancelled (consumer CANCEL, consumer gone, relay lost)."""
        self.frames_sent = 0
        """DATA frames with tokens sent so far (fewer than tokens when coalescing)."""
        self.resent_frames = 0
        """Frames sent again after failovers."""

    @property
    def cancelled(self) -> bool:
        """Whether the worker should stop: the consumer cancelled or nobody can read any more."""
        return self._cancelled.is_set()

    @property
    def unacked_bytes(self) -> int:
        """Bytes of sealed frames held for resending (0 without failover)."""
        return self._window.bytes if self._window is not None else 0

    async def wait_cancelled(self) -> None:
        """Return once :attr:`cancelled` is set."""
        await self._cancelled.wait()

    @property
    def _settled(self) -> bool:
        """The terminal frame went out and the consumer acknowledged everything."""
        return self._terminal_sent and (self._window is None or not len(self._window))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def connect(self) -> None:
        """Connect to the channel's relay (failing over) and start the sender and receiver.

        Raises:
            RelayAuthError: The relay refused the token.
            RelayUnavailableError: No relay could be reached.
        """
        if self._connected:
            return
        ws = await self._link.connect()
        self._connected = True
        self._spawn(self._receive_loop(ws))
        self._sender = self._spawn(self._send_loop())

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

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_sent = -math.inf
        heartbeat_s = self._failover.heartbeat_s if self._failover is not None else None
        try:
            while True:
                idle = False
                try:
                    async with asyncio.timeout(heartbeat_s):
                        await self._wake.wait()
                except TimeoutError:
                    idle = True
                self._wake.clear()
                if self._coalesce_s > 0 and not self._closing and not idle:
                    # Under load (the last frame left less than a window ago) wait out the
                    # window so the tokens arriving meanwhile share the next frame [RP §4.1].
                    pause = last_sent + self._coalesce_s - loop.time()
                    if pause > 0:
                        await asyncio.sleep(pause)
                batch, self._queue = self._queue, []
                if not self._cancelled.is_set():
                    if batch:
                        for frame in self._sealer.pack_tokens(batch):
                            await self._transmit(frame)
                            self.frames_sent += 1
                        last_sent = loop.time()
                    elif idle and not self._closing:
                        # A heartbeat: an empty DATA frame, counted like any other [RP §13.5].
                        await self._transmit(self._sealer.seal_tokens(()))
                if self._closing and not self._queue:
                    return
        except ConnectionClosed as exc:
            self._lose(closed_error(exc, self.channel_id))
        except RelayError as exc:
            self._lose(exc)

    async def _transmit(self, frame: bytes) -> None:
        """Send one sealed frame; with failover, hold it until acknowledged and resume on the
        next relay if this one is lost (the resend carries this frame too)."""
        window = self._window
        if window is None:
            assert self._link.ws is not None
            await self._link.ws.send(frame)
            return
        while not window.room_for(len(frame)):
            await self._wait_for_ack()
        window.push(parse_header(frame).seq, frame, asyncio.get_running_loop().time())
        ws = self._link.ws
        if self._moving or ws is None:
            # The resend on the next relay carries this frame; the relay being left would hold
            # the send until its close completes. Wait for the move to end, and fail with it.
            async with self._relinking:
                if self._link.ws is None:
                    raise self._lost or RelayUnavailableError(
                        "the channel found no relay to go on with", channel_id=self.channel_id
                    )
            return
        try:
            await ws.send(frame)
        except ConnectionClosed:
            await self._relink(ws)

    async def _wait_for_ack(self) -> None:
        """Wait for an ACK to make room; a relay that brings none in time is stalled."""
        assert self._failover is not None
        if self._lost is not None or self._cancelled.is_set():
            raise self._lost or ChannelClosedError("channel cancelled", channel_id=self.channel_id)
        self._acked.clear()
        ws = self._link.ws
        try:
            async with asyncio.timeout(self._failover.ack_timeout_s):
                await self._acked.wait()
        except TimeoutError:
            if ws is not None:
                await self._relink(ws)

    async def _relink(self, lost_ws: ClientConnection) -> None:
        """Move the channel to the next relay and resend what is unacknowledged [RP §13.4].

        Several tasks may see the same relay go; the first moves, the others find it done.

        Raises:
            RelayUnavailableError: No other relay took the channel, or too many failovers.
        """
        async with self._relinking:
            try:
                while (
                    self._link.ws is lost_ws and not self._cancelled.is_set() and not self._settled
                ):
                    self._moving = True
                    ws = await self._link.move()
                    self._spawn(self._receive_loop(ws))
                    try:
                        self.resent_frames += await self._resend(ws)
                    except ConnectionClosed:
                        lost_ws = ws  # this one went too: on to the next
            finally:
                self._moving = False

    async def _resend(self, ws: ClientConnection) -> int:
        """Send the window on a new relay, oldest first, with the frames sealed meanwhile;
        return how many went out. The sender resumes once nothing is left to catch up."""
        window = self._window
        assert window is not None
        frames = window.resend(asyncio.get_running_loop().time())
        count = 0
        while frames:
            mark = window.next_seq
            for frame in frames:
                await ws.send(frame)
            count += len(frames)
            frames = window.frames_from(mark)
        return count

    async def _receive_loop(self, ws: ClientConnection) -> None:
        window = self._window
        # Look for a stall four times per ACK timeout: noticed within 1.25 of it.
        check_s = self._failover.ack_timeout_s / 4 if self._failover is not None else None
        loop = asyncio.get_running_loop()
        try:
            while self._link.ws is ws:
                if not await self._link.check(loop.time()):
                    break  # a ping went unanswered: the relay is gone [RP §13.5]
                ping_s = self._link.ping_due_in(loop.time())
                wait_s = check_s if ping_s is None or check_s is None else min(check_s, ping_s)
                try:
                    frame = await within(ws.recv(), wait_s)
                except TimeoutError:
                    if window is not None and window.stalled(loop.time()):
                        break  # frames wait and no ACK comes: a stalled relay [RP §13.5]
                    continue
                self._link.heard(loop.time())
                event = self._opener.open(frame)  # type: ignore[arg-type]
                if isinstance(event, AckEvent):
                    if window is not None:
                        window.ack(event.next_seq, loop.time())
                        self._acked.set()
                elif isinstance(event, CancelEvent):
                    self._consumer_left = True
                    self._set_cancelled(f"consumer cancelled: {event.reason}")
        except ConnectionClosed as exc:
            if self._link.ws is not ws or self._settled:
                return  # a relay this channel already left, or the consumer holds everything
            if window is not None and not self._consumer_left and may_fail_over(exc):
                try:
                    await self._relink(ws)
                except RelayError as error:
                    self._lose(error)
                return
            if exc.rcvd is not None and exc.rcvd.code == CloseCode.CONSUMER_GONE:
                self._consumer_left = True
            self._lose(closed_error(exc, self.channel_id))
            return
        except RelayError as exc:
            # A bad frame from the consumer side means someone tampers: stop, fail closed.
            logger.warning(
                "channel %s: rejected frame from the consumer side: %s", self.channel_id[:8], exc
            )
            self._lose(exc)
            await ws.close()
            return
        if self._link.ws is not ws:
            return  # the channel left this relay already
        try:
            await self._relink(ws)
        except RelayError as error:
            self._lose(error)

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
        self._acked.set()
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
        if not self._connected:
            raise RuntimeError("call connect() first")
        try:
            if self._sender is not None:
                await self._sender
            if self._lost is None and not self._cancelled.is_set():
                try:
                    await self._transmit(terminal())
                    self._terminal_sent = True
                    await self._await_last_ack()
                except ConnectionClosed as exc:
                    self._lose(closed_error(exc, self.channel_id))
                except RelayError as exc:
                    self._lose(exc)
        finally:
            await self._shutdown()
        if self._lost is not None and not self._consumer_left:
            raise self._lost

    async def _await_last_ack(self) -> None:
        """With failover, keep the terminal frame until the consumer holds it [RP §13.1]."""
        window, limits = self._window, self._failover
        if window is None or limits is None:
            return
        try:
            # Enough for the consumer to notice a lost relay and meet us on the next one.
            async with asyncio.timeout(limits.progress_timeout_s + limits.ack_timeout_s):
                while len(window) and not self._cancelled.is_set():
                    await self._wait_for_ack()
        except TimeoutError:
            logger.info(
                "channel %s: the end of the stream was not acknowledged", self.channel_id[:8]
            )

    async def finish(self, usage: Mapping[str, Any] | None = None) -> None:
        """Flush queued tokens, send FINAL with ``usage``, and disconnect.

        Raises:
            ChannelClosedError: If the relay connection was lost before FINAL went out (not
                raised when the consumer cancelled: there is nobody to tell).
            RelayUnavailableError: If failover found no relay to go on with.
        """
        await self._end(lambda: self._sealer.seal_final(usage))

    async def fail(self, message: str) -> None:
        """Flush queued tokens, send ERROR with ``message``, and disconnect."""
        await self._end(lambda: self._sealer.seal_error(message))

    async def _shutdown(self) -> None:
        # ProducerClient stops its private loop next: nothing may be left running on it.
        await self._link.close(drain=True)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def close(self) -> None:
        """Disconnect; if neither :meth:`finish` nor :meth:`fail` ran, send ERROR first."""
        if not self._closing and self._connected:
            with contextlib.suppress(RelayError):
                await self.fail("producer closed without finishing")
        else:
            await self._shutdown()

    async def _leave(self, exc: BaseException | None) -> None:
        if exc is not None and not self._closing:
            with contextlib.suppress(RelayError):
                await self.fail(f"{type(exc).__name__}: {exc}")
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
        failover: Mid-stream failover (see :class:`AsyncProducerClient`); ``None``: off.
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
        failover: FailoverLimits | None = DEFAULT_FAILOVER,
    ) -> None:
        self._args = (relay_urls, channel_id, token, key)
        self._kwargs: dict[str, Any] = {
            "coalesce_s": coalesce_s,
            "open_timeout_s": open_timeout_s,
            "max_frame_bytes": max_frame_bytes,
            "failover": failover,
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

    @property
    def failovers(self) -> int:
        """Times the channel moved to another relay mid-stream."""
        return self._client.failovers if self._client is not None else 0

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


__all__ = ["DEFAULT_COALESCE_S", "DEFAULT_FAILOVER", "AsyncProducerClient", "ProducerClient"]
