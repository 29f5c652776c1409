"""Relay clients: the consumer here; the producers, re-exported, in :mod:`.producer`.

They are thin layers over :mod:`langchain_stream.relay.protocol` (sealing, opening, checks) and
:mod:`langchain_stream.relay.routing` (relay choice, failover, error mapping) [RP §7, §10].
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from langchain_stream.errors import (
    ChannelClosedError,
    RelayError,
    RelayProtocolError,
    RelayTimeoutError,
)
from langchain_stream.limits import DEFAULT_TIMEOUTS
from langchain_stream.relay.producer import (
    DEFAULT_COALESCE_S,
    AsyncProducerClient,
    ProducerClient,
)
from langchain_stream.relay.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    ChannelOpener,
    ChannelSealer,
    CloseCode,
    Direction,
    ErrorEvent,
    FinalEvent,
    TokensEvent,
)
from langchain_stream.relay.routing import (
    DEFAULT_OPEN_TIMEOUT_S,
    channel_url,
    closed_error,
    dial,
    pick_relays,
)

DEFAULT_FIRST_TOKEN_TIMEOUT_S = DEFAULT_TIMEOUTS.first_token_s
"""Default wait for the first token: an HPC queue or a cold start may take this long."""

DEFAULT_IDLE_TIMEOUT_S = DEFAULT_TIMEOUTS.idle_s
"""Default wait between frames once tokens flow."""

_T = TypeVar("_T")


async def _within(awaitable: Awaitable[_T], timeout_s: float | None) -> _T:
    # asyncio.timeout, unlike wait_for, does not wrap each receive in a new task.
    async with asyncio.timeout(timeout_s):
        return await awaitable


# ---------------------------------------------------------------------------- consumer


class ConsumerClient:
    """Receive and open one channel's tokens.

    Use as ``async with ConsumerClient(...) as consumer: async for token in consumer: ...``.
    Leaving the block before the answer is complete sends CANCEL, so the producer stops.

    Args:
        relay_urls: One relay base URL or several (chosen by :func:`pick_relays`).
        channel_id: The channel id.
        token: The consumer token of this channel.
        key: The request's 32-byte key (``None`` only for an unsealed test channel).
        first_token_timeout_s: Raise :class:`RelayTimeoutError` if no token arrives this long
            after connecting (``None``: wait forever).
        idle_timeout_s: Raise :class:`RelayTimeoutError` if, after the first token, no frame
            arrives for this long (``None``: wait forever).
        open_timeout_s: Bound on connecting to each relay.
        max_frame_bytes: Largest frame accepted.
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
    ) -> None:
        self.channel_id = channel_id
        self._urls = relay_urls
        self._token = token
        self._key = key
        self._first_token_timeout_s = first_token_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._open_timeout_s = open_timeout_s
        self._max_frame_bytes = max_frame_bytes
        self._opener = ChannelOpener(key, channel_id, max_frame_bytes=max_frame_bytes)
        self._ws: ClientConnection | None = None
        self._ready: deque[str] = deque()
        self._deadline = math.inf
        self._got_token = False
        self._done = False
        self._error: RelayError | None = None
        self.relay_url: str | None = None
        """The relay this consumer is connected to."""
        self.final: FinalEvent | None = None
        """The FINAL frame's contents once the answer is complete."""

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
        if self._ws is not None:
            return
        self._ws, self.relay_url = await dial(
            self._urls,
            self.channel_id,
            "consumer",
            self._token,
            open_timeout_s=self._open_timeout_s,
            max_frame_bytes=self._max_frame_bytes,
        )
        if self._first_token_timeout_s is not None:
            self._deadline = asyncio.get_running_loop().time() + self._first_token_timeout_s

    async def __aenter__(self) -> ConsumerClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
                event = self._opener.open(await self._receive())
            except RelayError as exc:
                await self._fail(exc)
                raise
            if type(event) is TokensEvent:
                if event.tokens:
                    self._got_token = True
                    self._ready.extend(event.tokens)
                    return self._ready.popleft()
            elif type(event) is FinalEvent:
                self.final = event
                self._done = True
                await self._close()
            else:
                assert isinstance(event, ErrorEvent)
                exc = ChannelClosedError(
                    f"producer failed: {event.message}", channel_id=self.channel_id
                )
                await self._fail(exc)
                raise exc

    async def _receive(self) -> bytes:
        if self._ws is None:
            raise RuntimeError("call connect() before iterating")
        if self._got_token:
            timeout_s, which = self._idle_timeout_s, "idle"
        else:
            timeout_s, which = self._deadline - asyncio.get_running_loop().time(), "first-token"
            timeout_s = None if timeout_s == math.inf else max(timeout_s, 0.0)
        try:
            frame = await _within(self._ws.recv(), timeout_s)
        except TimeoutError:
            limit = self._idle_timeout_s if self._got_token else self._first_token_timeout_s
            raise RelayTimeoutError(
                f"{which} timeout: no frame within {limit} s",
                channel_id=self.channel_id,
                timeout_s=float(limit or 0.0),
            ) from None
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CloseCode.NORMAL:
                self._opener.end_of_stream()  # raises: closed normally, but no FINAL came
            raise closed_error(exc, self.channel_id) from None
        if type(frame) is not bytes:
            raise RelayProtocolError("text message on a binary channel", channel_id=self.channel_id)
        return frame

    async def collect(self) -> str:
        """Read the whole answer and return its text."""
        return "".join([token async for token in self])

    async def cancel(self, reason: str = "cancelled by consumer") -> None:
        """Ask the producer to stop (a sealed CANCEL frame), then disconnect.

        Does nothing once the answer is complete or the channel has failed; iteration ends.
        """
        if self._ws is not None and not self._done and self._error is None:
            sealer = ChannelSealer(self._key, self.channel_id, direction=Direction.TO_PRODUCER)
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(sealer.seal_cancel(reason))
        self._done = True
        await self._close()

    async def _fail(self, exc: RelayError) -> None:
        self._error = exc
        self._done = True
        await self._close()

    async def _close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def close(self) -> None:
        """Disconnect; same as :meth:`cancel` if the answer is not complete."""
        await self.cancel("consumer closed")


__all__ = [
    "DEFAULT_COALESCE_S",
    "DEFAULT_FIRST_TOKEN_TIMEOUT_S",
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_OPEN_TIMEOUT_S",
    "AsyncProducerClient",
    "ConsumerClient",
    "ProducerClient",
    "channel_url",
    "pick_relays",
]
