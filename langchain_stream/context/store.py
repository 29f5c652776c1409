"""Where conversation summaries live between requests (docs/design.md#context, #serving).

- A conversation with an id (a LangGraph ``thread_id``) keeps its summary in the router graph's
  state, saved by a LangGraph checkpointer on the policy database (``STREAM_DATABASE_URL``):
  LangGraph's SQLite saver on its SQLite file (by default
  ``~/.local/share/langchain-stream/stream.db``), or LangGraph's PostgreSQL saver on its
  PostgreSQL database, so a new process picks the conversation up where the last one left it.
  With the database turned off (``none``) the checkpointer is LangGraph's in-memory one.
- A conversation without an id still gets its summary extended rather than recomputed within
  one process: recent summaries are remembered by the digest of the history they cover.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver

from langchain_stream.context.summary import ConversationSummary
from langchain_stream.errors import ConfigurationError

# Summaries of conversations without an id, remembered per process.
RECENT_SUMMARIES = 256


class ThreadedAsyncSaver(BaseCheckpointSaver[str]):
    """A synchronous LangGraph checkpointer whose async methods run the sync ones on a thread.

    LangGraph's async savers are bound to the event loop that opened them, while this package
    runs graphs from whichever loop calls it (and from none). A thread-safe sync saver serves
    them all with one connection (or pool) per database for the whole process.
    """

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)


class ConversationSaver(ThreadedAsyncSaver, SqliteSaver):
    """LangGraph's SQLite checkpointer, usable from async graphs.

    ``SqliteSaver`` implements only the synchronous interface; its connection is thread-safe
    (one lock around every statement), so the async methods run the synchronous ones on a
    worker thread (``AsyncSqliteSaver`` is bound to the loop that opened it).
    """


@lru_cache(maxsize=8)
def conversation_checkpointer(database_url: str | None) -> BaseCheckpointSaver:
    """The checkpointer conversations are saved with, one per database for the process.

    Args:
        database_url: the policy database's URL (as ``STREAM_DATABASE_URL``): ``sqlite:///PATH``
            or ``postgresql+psycopg://...``; ``None`` keeps conversations in this process's
            memory only.

    Raises:
        ConfigurationError: the database is neither SQLite nor PostgreSQL, its driver is not
            installed, or it cannot be opened.
    """
    if database_url is None:
        from langgraph.checkpoint.memory import InMemorySaver

        return InMemorySaver()
    scheme = database_url.split(":", 1)[0]
    if scheme.split("+", 1)[0] == "postgresql":
        try:
            from langchain_stream.context.postgres import postgres_checkpointer
        except ImportError as exc:  # the optional extra is not installed
            raise ConfigurationError(
                "conversation summaries on PostgreSQL need LangGraph's PostgreSQL "
                f'checkpointer: pip install "langchain-stream[postgres]" ({exc})'
            ) from exc
        return postgres_checkpointer(database_url)
    if not database_url.startswith("sqlite:///"):
        raise ConfigurationError(
            f"conversation summaries are saved with LangGraph's SQLite or PostgreSQL "
            f"checkpointer; {scheme!r} databases are not supported for them (set "
            "STREAM_DATABASE_URL to a sqlite:/// or postgresql+psycopg:// URL, or to none to "
            "keep them in memory)"
        )
    path = Path(database_url.removeprefix("sqlite:///")).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")  # several processes may share the file
        conn.execute("PRAGMA synchronous=NORMAL")
    except (OSError, sqlite3.Error) as exc:
        raise ConfigurationError(f"cannot open the conversation database {path}: {exc}") from exc
    saver = ConversationSaver(conn)
    saver.setup()
    return saver


class RecentSummaries:
    """Summaries of conversations without an id, by the digest of the history they cover."""

    def __init__(self, size: int = RECENT_SUMMARIES) -> None:
        self._items: OrderedDict[str, ConversationSummary] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def remember(self, summary: ConversationSummary) -> None:
        """Keep ``summary`` for a later request on the same conversation."""
        with self._lock:
            self._items[summary.digest] = summary
            self._items.move_to_end(summary.digest)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def longest(self, digests: Sequence[str]) -> ConversationSummary | None:
        """The summary covering the longest prefix whose digest is in ``digests``."""
        with self._lock:
            for index in range(len(digests) - 1, 0, -1):
                found = self._items.get(digests[index])
                if found is not None and found.covered == index:
                    self._items.move_to_end(digests[index])
                    return found
        return None


recent_summaries = RecentSummaries()
"""The process's memory of summaries of conversations without an id."""
