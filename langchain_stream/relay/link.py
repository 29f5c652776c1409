"""One side's connection to a channel's relay set: the producer and the consumer share it.

A :class:`RelayLink` dials the channel's relays in rendezvous order, pings the relay it is on
when that relay has gone quiet, and, when the relay is lost, leaves it without waiting for it
and dials the next one of the channel's failover order [RP §13.4, §13.5]. What each side does
with a new connection (resend, resync, ACK) stays with that side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from langchain_stream.errors import RelayUnavailableError
from langchain_stream.relay.failover import FailoverLimits, PingSchedule
from langchain_stream.relay.routing import dial, pick_relays, redial
from langchain_stream.relay.tokens import Role

logger = logging.getLogger("langchain_stream.relay.client")

_T = TypeVar("_T")


async def within(awaitable: Awaitable[_T], timeout_s: float | None) -> _T:
    """Await ``awaitable`` for at most ``timeout_s`` (``None``: no bound).

    Raises:
        TimeoutError: The bound passed.
    """
    # asyncio.timeout, unlike wait_for, does not wrap each receive in a new task.
    async with asyncio.timeout(timeout_s):
        return await awaitable


class RelayLink:
    """The connection of one side (``role``) of one channel to its relay set.

    Args:
        relay_urls: One relay base URL or several (ordered by :func:`pick_relays`).
        channel_id: The channel id.
        role: ``"producer"`` or ``"consumer"``.
        token: This side's token (valid on every relay of the set).
        open_timeout_s: Bound on connecting to each relay on the first dial.
        max_frame_bytes: Largest frame accepted.
        failover: Failover bounds; ignored (``None``) with a single relay, whose ending is the
            channel's.
    """

    def __init__(
        self,
        relay_urls: str | Sequence[str],
        channel_id: str,
        role: Role,
        token: str,
        *,
        open_timeout_s: float | None,
        max_frame_bytes: int,
        failover: FailoverLimits | None,
    ) -> None:
        self._urls = relay_urls
        self.channel_id = channel_id
        self._role: Role = role
        self._token = token
        self._open_timeout_s = open_timeout_s
        self._max_frame_bytes = max_frame_bytes
        self.failover = failover if len(pick_relays(relay_urls, channel_id)) > 1 else None
        """The failover bounds in force (``None``: failover off)."""
        self.ws: ClientConnection | None = None
        """The connection to the current relay."""
        self.relay_url: str | None = None
        """The relay this side is connected to."""
        self.failovers = 0
        """Times this side moved to another relay."""
        self._pings: PingSchedule | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "open_timeout_s": self._open_timeout_s,
            "max_frame_bytes": self._max_frame_bytes,
        }
        if self.failover is not None:
            # This link pings, and moves on without waiting for a close (see check()):
            # websockets' own keepalive would wait for the dead relay's close handshake.
            options["ping_interval_s"] = None
            options["ping_timeout_s"] = self.failover.ping_timeout_s
        return options

    def _attach(self, ws: ClientConnection, url: str) -> ClientConnection:
        self.ws, self.relay_url = ws, url
        if self.failover is not None:
            self._pings = PingSchedule(self.failover, asyncio.get_running_loop().time())
        return ws

    async def connect(self) -> ClientConnection:
        """Connect to the first relay of the rendezvous order that accepts.

        Raises:
            RelayAuthError: The relay refused the token.
            RelayLimitError: A relay limit refused the connection.
            RelayUnavailableError: No relay could be reached.
        """
        ws, url = await dial(
            self._urls, self.channel_id, self._role, self._token, **self._options()
        )
        return self._attach(ws, url)

    async def move(self) -> ClientConnection:
        """Leave the current relay and connect to the next one of the failover order.

        The connection left is closed in the background: a stopped relay never answers a close,
        and waiting for it would only lengthen the gap.

        Raises:
            RelayUnavailableError: No relay took the channel within ``resume_timeout_s``, or
                ``max_failovers`` were made already.
        """
        limits = self.failover
        assert limits is not None, "failover is off"
        if self.failovers >= limits.max_failovers:
            raise RelayUnavailableError(
                f"channel {self.channel_id[:8]}: gave up after {self.failovers} failovers",
                channel_id=self.channel_id,
            )
        self.failovers += 1
        lost = self.relay_url
        logger.info("channel %s: relay %s lost, failing over", self.channel_id[:8], lost)
        self._close_in_background()
        options = self._options()
        if self._open_timeout_s is None or self._open_timeout_s > limits.dial_timeout_s:
            options["open_timeout_s"] = limits.dial_timeout_s
        ws, url = await redial(
            self._urls,
            self.channel_id,
            self._role,
            self._token,
            lost=lost,
            within_s=limits.resume_timeout_s,
            **options,
        )
        return self._attach(ws, url)

    def heard(self, now: float) -> None:
        """The relay sent a frame: it is alive."""
        if self._pings is not None:
            self._pings.heard(now)

    def ping_due_in(self, now: float) -> float | None:
        """Seconds until :meth:`check` has something to do (``None``: no pings)."""
        return self._pings.due_in(now) if self._pings is not None else None

    async def check(self, now: float) -> bool:
        """Whether the relay is still there: ``False`` once a ping went unanswered for
        ``ping_timeout_s``. Sends the ping when one is due."""
        pings, ws = self._pings, self.ws
        if pings is None or ws is None:
            return True
        if pings.lost(now):
            return False
        if pings.ping_due(now) and ws.state is State.OPEN:
            pings.pinged(now)
            with contextlib.suppress(ConnectionClosed):
                pong = await ws.ping()
                pong.add_done_callback(lambda done: self._ponged(pings, done))
        return True

    def _ponged(self, pings: PingSchedule, pong: asyncio.Future[float]) -> None:
        # A pong after the connection closed carries its exception: read it, so it is not
        # reported as never retrieved.
        if not pong.cancelled() and pong.exception() is None:
            pings.heard(asyncio.get_running_loop().time())

    async def send(self, frame: bytes) -> bool:
        """Send ``frame`` on the current connection if it is open; whether it went out.

        For frames whose loss a failover makes good (ACKs, CANCEL): a connection already closing
        would hold the sender until its close completes.
        """
        ws = self.ws
        if ws is None or ws.state is not State.OPEN:
            return False
        try:
            await ws.send(frame)
        except ConnectionClosed:
            return False
        return True

    def _close_in_background(self) -> None:
        ws, self.ws, self._pings = self.ws, None, None
        if ws is not None:
            task = asyncio.create_task(ws.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self, *, drain: bool = False) -> None:
        """Close the current connection.

        Those left behind by failovers finish closing on their own, each within its close
        timeout; with ``drain``, wait for them too (before stopping the event loop they run on).
        """
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if drain:
            for task in list(self._closing):
                with contextlib.suppress(Exception):
                    await task


__all__ = ["RelayLink", "within"]


class ChannelEnd:
    """What the consumer and the producer share: the ``link`` to the channel's relay set, and
    their use as an async context manager (``connect`` on entry; :meth:`_leave` on exit)."""

    def __init__(self, link: RelayLink) -> None:
        self.channel_id = link.channel_id
        self._link = link
        # With one relay there is nowhere to go: its ending is the channel's.
        self._failover = link.failover
        self._connected = False

    @property
    def relay_url(self) -> str | None:
        """The relay this end is connected to."""
        return self._link.relay_url

    @property
    def failovers(self) -> int:
        """Times the channel moved to another relay mid-stream."""
        return self._link.failovers

    async def connect(self) -> None:
        raise NotImplementedError

    async def _leave(self, exc: BaseException | None) -> None:
        """Leave the channel at the end of an ``async with`` block (``exc``: what ended it)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._leave(exc)
