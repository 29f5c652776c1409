"""The relays' shared record of ended channels in a SQL database, through SQLAlchemy
[RP §13.6]: PostgreSQL for relays on several machines, SQLite for relays on one.

Apart from :mod:`~langchain_stream.relay.ended` so that SQLAlchemy is imported only by a relay
given a database, never by the processes that merely stream through one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Column, Float, MetaData, String, Table, case, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from langchain_stream.errors import ConfigurationError
from langchain_stream.relay.ended import DEFAULT_MAX_ENDED, DEFAULT_STORE_TIMEOUT_S, EndedStoreError
from langchain_stream.sql import open_engine

T = TypeVar("T")

_metadata = MetaData()

ended_channels = Table(
    "stream_relay_ended",
    _metadata,
    Column("channel_id", String(32), primary_key=True),
    Column("until", Float, nullable=False, index=True),
)

_SCHEMA_LOCK_KEY = 0x5354524552  # any constant shared by every relay (not the policy store's)
_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class SqlEndedStore:
    """The record in a SQL database shared by the relays of a set (through SQLAlchemy).

    PostgreSQL (``postgresql+psycopg://...``) for relays on several machines, SQLite
    (``sqlite:///path``, WAL mode) for relays on one. Calls run on a worker thread, each bounded
    by ``timeout_s``.

    Args:
        url: The SQLAlchemy URL of the database; the table is created if missing.
        max_entries: Unexpired channels held at most, over the whole set.
        timeout_s: Bound on one read or write (and on connecting).
        clock: Unix time (a parameter for tests).

    Raises:
        ConfigurationError: The URL is not a usable database.
    """

    def __init__(
        self,
        url: str,
        *,
        max_entries: int = DEFAULT_MAX_ENDED,
        timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries must be positive, not {max_entries!r}")
        self._engine = open_engine(
            url,
            _metadata,
            purpose="the relays' ended-channel record",
            lock_key=_SCHEMA_LOCK_KEY,
            timeout_s=timeout_s,
        )
        self._max = max_entries
        self._timeout_s = timeout_s
        self._clock = clock
        # Counting the rows costs O(rows): count again only once this relay has written a
        # 64th of the room the last count left (every write, close to the bound).
        self._writes_until_count = 0

    async def has_ended(self, channel_id: str) -> bool:
        return await self._call(self._has_ended, channel_id, self._clock())

    async def record_ended(self, channel_id: str, until_wall_s: float) -> None:
        await self._call(self._record, channel_id, until_wall_s, self._clock())

    def count(self) -> int:
        """Rows held, expired or not (for operators and tests; blocking)."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ended_channels)).scalar_one())

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await asyncio.to_thread(fn, *args)
        except EndedStoreError:
            raise
        except TimeoutError as exc:
            raise EndedStoreError(
                f"the ended-channel record did not answer within {self._timeout_s:g} s"
            ) from exc
        except Exception as exc:  # the database is down, unreachable or refusing
            raise EndedStoreError(f"the ended-channel record failed: {type(exc).__name__}") from exc

    def _has_ended(self, channel_id: str, now: float) -> bool:
        t = ended_channels
        query = select(t.c.until).where(t.c.channel_id == channel_id, t.c.until >= now)
        with self._engine.connect() as conn:
            return conn.execute(query).first() is not None

    def _record(self, channel_id: str, until: float, now: float) -> None:
        t = ended_channels
        with self._engine.begin() as conn:
            conn.execute(delete(t).where(t.c.until < now))  # prune on write (indexed)
            known = conn.execute(select(t.c.until).where(t.c.channel_id == channel_id)).first()
            if known is None:
                self._writes_until_count -= 1
                if self._writes_until_count < 0:
                    held = conn.execute(select(func.count()).select_from(t)).scalar_one()
                    if held >= self._max:
                        raise EndedStoreError(
                            f"the ended-channel record is full ({self._max} channels)"
                        )
                    self._writes_until_count = (self._max - held) // 64
            upsert = _UPSERT.get(conn.dialect.name)
            if upsert is not None:
                # Two relays may record one channel at once: insert or extend, never shorten.
                stmt = upsert(t).values(channel_id=channel_id, until=until)
                later = case(
                    (t.c.until > stmt.excluded.until, t.c.until), else_=stmt.excluded.until
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[t.c.channel_id], set_={"until": later}
                    )
                )
            elif known is None:
                conn.execute(insert(t).values(channel_id=channel_id, until=until))
            elif until > known[0]:
                conn.execute(t.update().where(t.c.channel_id == channel_id).values(until=until))


__all__ = ["SqlEndedStore", "ended_channels"]
