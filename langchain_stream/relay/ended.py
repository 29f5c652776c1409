"""The record of ended channels that the relays of a set share [RP §13.6].

Each relay already refuses the tokens of a channel it saw end (``ChannelTable``'s own memory,
[RP §12.3]). Relays given one shared record also refuse a channel that ended on *another* relay
of the set, so a token is good for one channel, on whichever relay of its set, and not after the
channel ends.

The record is a store of channel ids, each with the Unix time until which it is refused (the
channel's tokens' expiry plus the clock leeway): in memory (:class:`MemoryEndedStore`, for relays
in one process) or in SQL (:class:`~langchain_stream.relay.ended_sql.SqlEndedStore`: PostgreSQL
for relays on several machines, SQLite for one machine), opened by :func:`open_ended_store`.
Rows past their time are pruned on write, and the store is bounded.

Only a *real* end is recorded: the stream finished (its producer left after its terminal frame,
FINAL or ERROR, went through; with failover the consumer usually leaves first, once it has
acknowledged FINAL, so the table's ending is then "consumer gone"), or the channel failed in a way
no other relay would change (:data:`RECORDED_ENDINGS`). A side leaving mid-stream, a relay
shutting down, a relay fault or a timeout is not an end: in a failover the channel leaves a dying
or partitioned relay, and must open on the next one.

:class:`EndedChannels` is what a :class:`~langchain_stream.relay.server.RelayServer` does with a
store: ask it when a side joins, tell it when a channel ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from langchain_stream.errors import ConfigurationError, RelayError
from langchain_stream.relay.channels import Action, End, Ending, is_terminal
from langchain_stream.relay.tokens import DEFAULT_LEEWAY_S, DEFAULT_TOKEN_TTL_S

if TYPE_CHECKING:
    from langchain_stream.relay.ended_sql import SqlEndedStore

logger = logging.getLogger("langchain_stream.relay")

DEFAULT_MAX_ENDED = 1_000_000
"""Unexpired ended channels a store holds; size it above the set's channel ends per token
lifetime (one hour by default)."""

DEFAULT_STORE_TIMEOUT_S = 2.0
"""Bound on one read or write of the record (and on connecting to a PostgreSQL server)."""

RECORDED_ENDINGS = frozenset(
    {
        Ending.PROTOCOL,  # a side broke the protocol (4002)
        Ending.FRAME_TOO_LARGE,  # a frame over the size bound (4003)
        Ending.BUFFER_OVERFLOW,  # the pre-consumer buffer overflowed (4004)
        Ending.CLIENT_BUFFER,
        Ending.MEMORY_FULL,
    }
)
"""The failures that end a channel for the whole set: with "stream done" (recorded when the
producer leaves after its terminal frame, see :meth:`EndedChannels.producer_left`), exactly the
endings after which the clients do not fail over (1000 and the protocol, size and limit closes,
[RP §13.4]). Every other ending (a side gone, shutdown, fault, timeout) leaves the channel free
to go on elsewhere."""


class EndedStoreError(RelayError):
    """The shared record of ended channels cannot be read or written (or is full)."""


class EndedStore(Protocol):
    """A record of ended channels: which channel ids are refused, and until when."""

    async def has_ended(self, channel_id: str) -> bool:
        """Whether ``channel_id`` ended and its time has not passed.

        Raises:
            EndedStoreError: The record cannot be read.
        """
        ...

    async def record_ended(self, channel_id: str, until_wall_s: float) -> None:
        """Refuse ``channel_id`` until Unix time ``until_wall_s`` (a later time only extends).

        Raises:
            EndedStoreError: The record cannot be written, or holds ``max_entries`` unexpired
                channels (none is forgotten early: that would let an id open again).
        """
        ...


class MemoryEndedStore:
    """The record in this process's memory: shared by the relays of one process only.

    Args:
        max_entries: Unexpired channels held at most.
        clock: Unix time (a parameter for tests).
    """

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENDED, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries must be positive, not {max_entries!r}")
        self._max = max_entries
        self._clock = clock
        self._until: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap: pruning costs O(log n) per row

    def __len__(self) -> int:
        return len(self._until)

    async def has_ended(self, channel_id: str) -> bool:
        until = self._until.get(channel_id)
        return until is not None and until >= self._clock()

    async def record_ended(self, channel_id: str, until_wall_s: float) -> None:
        self._prune(self._clock())
        known = self._until.get(channel_id)
        if known is None and len(self._until) >= self._max:
            raise EndedStoreError(f"the ended-channel record is full ({self._max} channels)")
        if known is None or until_wall_s > known:
            self._until[channel_id] = until_wall_s
            heapq.heappush(self._expiries, (until_wall_s, channel_id))

    def _prune(self, now: float) -> None:
        heap, until = self._expiries, self._until
        while heap and heap[0][0] < now:
            expiry, channel_id = heapq.heappop(heap)
            if until.get(channel_id) == expiry:  # not extended since
                del until[channel_id]


def open_ended_store(
    url: str | None,
    *,
    max_entries: int = DEFAULT_MAX_ENDED,
    timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
) -> SqlEndedStore | None:
    """The shared record at ``url`` (``STREAM_RELAY_STATE_URL``), or ``None`` without one: each
    relay then relies on its own memory only [RP §12.3].

    Raises:
        ConfigurationError: The URL is not a usable database (a bad URL, an unknown dialect, a
            missing driver, a server that cannot be reached).
    """
    if url is None or not url.strip():
        return None
    # Imported here: SQLAlchemy stays out of every process that only streams through a relay.
    from langchain_stream.relay.ended_sql import SqlEndedStore

    return SqlEndedStore(url.strip(), max_entries=max_entries, timeout_s=timeout_s)


class EndedChannels:
    """What a relay does with a shared record: ask it when a side joins, tell it a real end.

    It notes each admitted token's expiry, so that a channel is recorded until its last token
    expires (plus the clock leeway), as the relay's own memory keeps it [RP §12.3].

    Args:
        store: The shared record.
        max_noted: Channels whose token expiry is noted at most (oldest dropped first; a channel
            whose expiry was dropped is recorded for the default token lifetime).
        clock: Unix time (a parameter for tests).
    """

    def __init__(
        self,
        store: EndedStore,
        *,
        max_noted: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._max_noted = max_noted
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unreadable_since: float | None = None
        self._refused = 0

    async def has_ended(self, channel_id: str, token_expires_at: float) -> bool:
        """Whether a side admitted by this relay (token expiring at ``token_expires_at``) must be
        refused because ``channel_id`` ended on a relay of the set.

        Raises:
            EndedStoreError: The record cannot be read; the caller refuses the join (503).
                Logged once when reads start failing and once when they work again, with the
                joins refused meanwhile (a flood of joins cannot flood the log).
        """
        self._note(channel_id, token_expires_at)
        try:
            ended = await self.store.has_ended(channel_id)
        except EndedStoreError as exc:
            self._refused += 1
            if self._unreadable_since is None:
                self._unreadable_since = time.monotonic()
                logger.error(
                    "joins refused (503) until the record of ended channels is read: %s", exc
                )
            else:
                logger.debug("join on %s refused: %s", channel_id[:8], exc)
            raise
        if self._unreadable_since is not None:
            logger.warning(
                "the record of ended channels is read again after %.1f s; %d joins were refused",
                time.monotonic() - self._unreadable_since,
                self._refused,
            )
            self._unreadable_since, self._refused = None, 0
        return ended

    async def record(self, actions: tuple[Action[Any], ...]) -> None:
        """Record the channels that ``actions`` end with a failure of :data:`RECORDED_ENDINGS`;
        a failure to record is logged, never raised (the channel's closes must still go out)."""
        for action in actions:
            if isinstance(action, End) and action.ending in RECORDED_ENDINGS:
                await self._record(action.channel_id, action.ending.value)

    async def producer_left(self, channel_id: str, last: bytes | str) -> None:
        """The producer of ``channel_id`` left; ``last`` is the last message it sent. After a
        terminal frame (FINAL or ERROR; the one byte the relay reads) the stream is done,
        whichever side left first: record it."""
        if is_terminal(last):
            await self._record(channel_id, Ending.STREAM_DONE.value)

    async def _record(self, channel_id: str, why: str) -> None:
        expiry = self._expiry.pop(channel_id, None)
        if expiry is None:
            expiry = self._clock() + DEFAULT_TOKEN_TTL_S
        try:
            await self.store.record_ended(channel_id, expiry + DEFAULT_LEEWAY_S)
        except EndedStoreError as exc:
            logger.error(
                "channel %s ended (%s) but was not recorded for the relay set: %s",
                channel_id[:8],
                why,
                exc,
            )

    def record_soon(self, actions: tuple[Action[Any], ...]) -> None:
        """:meth:`record` in the background, for callers that do not wait."""
        if any(isinstance(a, End) and a.ending in RECORDED_ENDINGS for a in actions):
            self._spawn(self.record(actions))

    async def drain(self) -> None:
        """Wait for the records made in the background."""
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _note(self, channel_id: str, expires_at: float) -> None:
        noted = self._expiry
        if expires_at <= noted.get(channel_id, 0.0):
            return
        noted.pop(channel_id, None)  # re-inserted last: the dict's order is the age
        if len(noted) >= self._max_noted:
            now = self._clock()
            for stale in [c for c, e in noted.items() if e + DEFAULT_LEEWAY_S < now]:
                del noted[stale]
            while len(noted) >= self._max_noted:
                del noted[next(iter(noted))]
        noted[channel_id] = expires_at


__all__ = [
    "DEFAULT_MAX_ENDED",
    "DEFAULT_STORE_TIMEOUT_S",
    "RECORDED_ENDINGS",
    "EndedChannels",
    "EndedStore",
    "EndedStoreError",
    "MemoryEndedStore",
    "open_ended_store",
]
