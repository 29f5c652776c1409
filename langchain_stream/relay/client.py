"""Relay clients: the consumer here; the producers, re-exported, in :mod:`.producer`.

They are thin layers over :mod:`langchain_stream.relay.protocol` (sealing, opening, checks),
:mod:`langchain_stream.relay.link` (the connection to the relay set: dial, pings, failover
moves) and :mod:`langchain_stream.relay.routing` (relay choice, error mapping) [RP §7, §10].
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed

from langchain_stream.errors import (
    ChannelClosedError,
    RelayError,
    RelayProtocolError,
    RelayTimeoutError,
)
from langchain_stream.limits import DEFAULT_TIMEOUTS
from langchain_stream.relay.failover import AckSchedule, FailoverLimits
from langchain_stream.relay.link import ChannelEnd, RelayLink, within
from langchain_stream.relay.producer import (
    DEFAULT_COALESCE_S,
    DEFAULT_FAILOVER,
    AsyncProducerClient,
    ProducerClient,
)
from langchain_stream.relay.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    ChannelOpener,
    ChannelSealer,
    CloseCode,
    Direction,
    DuplicateEvent,
    ErrorEvent,
    FinalEvent,
    TokensEvent,
)
from langchain_stream.relay.routing import (
    DEFAULT_OPEN_TIMEOUT_S,
    channel_url,
    closed_error,
    may_fail_over,
    pick_relays,
)

logger = logging.getLogger("langchain_stream.relay.client")

DEFAULT_FIRST_TOKEN_TIMEOUT_S = DEFAULT_TIMEOUTS.first_token_s
"""Default wait for the first token: an HPC queue or a cold start may take this long."""

DEFAULT_IDLE_TIMEOUT_S = DEFAULT_TIMEOUTS.idle_s
"""Default wait between frames once tokens flow."""


# ---------------------------------------------------------------------------- consumer


class ConsumerClient(ChannelEnd):
    """Receive and open one channel's tokens.

    Use as ``async with ConsumerClient(...) as consumer: async for token in consumer: ...``.
    Leaving the block before the answer is complete sends CANCEL, so the producer stops.

    With ``failover`` (the default), a relay that dies or stalls mid-stream is replaced by the
    next one of the channel's rendezvous order: the consumer acknowledges what it holds, the
    producer resends the rest, and duplicates are dropped [RP §13].

    Args:
        relay_urls: One relay base URL or several (chosen by :func:`pick_relays`).
        channel_id: The channel id.
        token: The consumer token of this channel (valid on every relay of the set).
        key: The request's 32-byte key (``None`` only for an unsealed test channel).
        first_token_timeout_s: Raise :class:`RelayTimeoutError` if no frame arrives this long
            after connecting (``None``: wait forever).
        idle_timeout_s: Without failover, raise :class:`RelayTimeoutError` if, after the first
            frame, none arrives for this long (``None``: wait forever).
        open_timeout_s: Bound on connecting to each relay.
        max_frame_bytes: Largest frame accepted.
        failover: Mid-stream failover bounds and timings; ``None`` turns failover off (a relay
            lost mid-stream is then a :class:`ChannelClosedError`).
    """

    def __init__(
        self,
        relay_urls: str | Sequence[str],
        channel_id: str,
        token: str,
        key: bytes | None,
        *,
        first_token_timeout_s: float | None = DEFAULT_FIRST_TOKEN_TIMEOUT_S,
        idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
        open_timeout_s: float | None = DEFAULT_OPEN_TIMEOUT_S,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        failover: FailoverLimits | None = DEFAULT_FAILOVER,
    ) -> None:
        super().__init__(
            RelayLink(
                relay_urls,
                channel_id,
                "consumer",
                token,
                open_timeout_s=open_timeout_s,
                max_frame_bytes=max_frame_bytes,
                failover=failover,
            )
        )
        self._key = key
        self._first_token_timeout_s = first_token_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._opener = ChannelOpener(key, channel_id, max_frame_bytes=max_frame_bytes)
        # One sealer for everything sent back (ACKs and CANCEL): one nonce sequence [RP §3.2].
        self._back = ChannelSealer(key, channel_id, direction=Direction.TO_PRODUCER)
        self._acks = AckSchedule(failover)
        self._ready: deque[str] = deque()
        self._deadline = math.inf
        self._got_frame = False
        self._done = False
        self._error: RelayError | None = None
        self.final: FinalEvent | None = None
        """The FINAL frame's contents once the answer is complete."""
        self.duplicates = 0
        """Resent frames dropped because they were already held."""
        self.failover_gaps_s: list[float] = []
        """For each failover: seconds from the last frame on the lost relay to the first new
        frame on the next one."""
        self._gap_from: float | None = None
        self._last_frame_at = 0.0

    @property
    def usage(self) -> dict[str, Any] | None:
        """Usage reported in the FINAL frame, or ``None`` before it."""
        return self.final.usage if self.final is not None else None

    async def connect(self) -> None:
        """Connect to the channel's relay, failing over in rendezvous order.

        Raises:
            RelayAuthError: The relay refused the token.
            RelayLimitError: A relay limit refused the connection.
            RelayUnavailableError: No relay could be reached.
        """
        if self._connected:
            return
        await self._link.connect()
        self._connected = True
        if self._first_token_timeout_s is not None:
            self._deadline = asyncio.get_running_loop().time() + self._first_token_timeout_s

    async def _leave(self, exc: BaseException | None) -> None:
        await self.cancel("consumer left")

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        if self._ready:
            return self._ready.popleft()
        while True:
            if self._error is not None:
                raise self._error
            if self._done:
                raise StopAsyncIteration
            try:
                frame = await self._receive()
                if frame is None:
                    await self._fail_over()
                    continue
                event = self._opener.open(frame)
                await self._count(type(event) is not DuplicateEvent)
            except RelayError as exc:
                await self._fail(exc)
                raise
            if type(event) is TokensEvent:
                if event.tokens:
                    self._ready.extend(event.tokens)
                    return self._ready.popleft()
            elif type(event) is DuplicateEvent:
                self.duplicates += 1
            elif type(event) is FinalEvent:
                self.final = event
                self._done = True
                if self._failover is not None:
                    # The producer holds FINAL until this ACK: it may stop now [RP §13.1].
                    await self._send_ack()
                await self._close()
            else:
                assert isinstance(event, ErrorEvent)
                exc = ChannelClosedError(
                    f"producer failed: {event.message}", channel_id=self.channel_id
                )
                await self._fail(exc)
                raise exc

    async def _count(self, new: bool) -> None:
        """Note a frame opened: progress, failover gap, and the ACK schedule."""
        now = asyncio.get_running_loop().time()
        self._got_frame = True
        self._last_frame_at = now
        if new and self._gap_from is not None:
            self.failover_gaps_s.append(now - self._gap_from)
            self._gap_from = None
        if self._failover is not None and self._acks.received(now):
            await self._send_ack()

    async def _send_ack(self) -> None:
        self._acks.sent()
        # An ACK lost with a relay is made good by the next one [RP §13.2].
        await self._link.send(self._back.seal_ack(self._opener.next_seq))

    def _wait_bound(self, now: float) -> tuple[float | None, str]:
        """How long the next receive may wait, and what its expiry means."""
        bounds: list[tuple[float | None, str]] = []
        if not self._got_frame:
            timeout_s = None if self._deadline == math.inf else max(self._deadline - now, 0.0)
            bounds.append((timeout_s, "first-token"))
        elif self._failover is None:
            bounds.append((self._idle_timeout_s, "idle"))
        else:
            # On a relay just failed over to, give the producer time to notice and come too.
            limit_s = (
                self._failover.resume_timeout_s
                if self._gap_from is not None
                else self._failover.progress_timeout_s
            )
            bounds.append((max(self._last_frame_at + limit_s - now, 0.0), "progress"))
            bounds.append((self._acks.due_in(now), "ack"))
        bounds.append((self._link.ping_due_in(now), "ping"))
        timed = [bound for bound in bounds if bound[0] is not None]
        return min(timed, key=lambda bound: bound[0] or 0.0) if timed else bounds[0]

    async def _receive(self) -> bytes | None:
        """The next frame, or ``None`` when the relay is lost and failover may resume."""
        if not self._connected:
            raise RuntimeError("call connect() before iterating")
        loop = asyncio.get_running_loop()
        while True:
            ws = self._link.ws
            assert ws is not None
            if not await self._link.check(loop.time()):
                return None  # a ping went unanswered: the relay is gone [RP §13.5]
            timeout_s, which = self._wait_bound(loop.time())
            try:
                frame = await within(ws.recv(), timeout_s)
            except TimeoutError:
                if which == "ack":
                    await self._send_ack()
                    continue
                if which == "ping":
                    continue
                if which == "progress":
                    return None  # a stalled relay [RP §13.5]
                limit = self._idle_timeout_s if self._got_frame else self._first_token_timeout_s
                raise RelayTimeoutError(
                    f"{which} timeout: no frame within {limit} s",
                    channel_id=self.channel_id,
                    timeout_s=float(limit or 0.0),
                ) from None
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == CloseCode.NORMAL:
                    self._opener.end_of_stream()  # raises: closed normally, but no FINAL came
                if self._failover is not None and may_fail_over(exc):
                    return None
                raise closed_error(exc, self.channel_id) from None
            self._link.heard(loop.time())
            if type(frame) is not bytes:
                raise RelayProtocolError(
                    "text message on a binary channel", channel_id=self.channel_id
                )
            return frame

    async def _fail_over(self) -> None:
        """Move to the next relay of the channel's rendezvous order [RP §13.4].

        Raises:
            RelayUnavailableError: No other relay could be reached, or too many failovers.
        """
        if self._gap_from is None:
            self._gap_from = self._last_frame_at if self._got_frame else None
        await self._link.move()
        self._opener.resync()
        self._last_frame_at = asyncio.get_running_loop().time()
        await self._send_ack()  # where to resume; lost harmlessly if the producer is not there

    async def collect(self) -> str:
        """Read the whole answer and return its text."""
        return "".join([token async for token in self])

    async def cancel(self, reason: str = "cancelled by consumer") -> None:
        """Ask the producer to stop (a sealed CANCEL frame), then disconnect.

        Does nothing once the answer is complete or the channel has failed; iteration ends.
        """
        if self._connected and not self._done and self._error is None:
            await self._link.send(self._back.seal_cancel(reason))
        self._done = True
        await self._close()

    async def _fail(self, exc: RelayError) -> None:
        self._error = exc
        self._done = True
        await self._close()

    async def _close(self) -> None:
        await self._link.close()

    async def close(self) -> None:
        """Disconnect; same as :meth:`cancel` if the answer is not complete."""
        await self.cancel("consumer closed")


__all__ = [
    "DEFAULT_COALESCE_S",
    "DEFAULT_FAILOVER",
    "DEFAULT_FIRST_TOKEN_TIMEOUT_S",
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_OPEN_TIMEOUT_S",
    "AsyncProducerClient",
    "ConsumerClient",
    "FailoverLimits",
    "ProducerClient",
    "channel_url",
    "pick_relays",
]
