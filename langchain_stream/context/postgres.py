"""Conversation summaries on PostgreSQL: LangGraph's PostgreSQL checkpointer.

See docs/design.md#context.

Imported only when ``STREAM_DATABASE_URL`` names a PostgreSQL database, so the ``postgres``
extra (``langgraph-checkpoint-postgres``, psycopg 3) stays optional.
"""

from __future__ import annotations

import time

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from langchain_stream.context.store import ThreadedAsyncSaver
from langchain_stream.errors import ConfigurationError

# Held while the checkpointer's tables are created or migrated; any constant shared by every
# process of this package (distinct from the policy store's).
_SETUP_LOCK_KEY = 0x5354524543
_SETUP_TIMEOUT_S = 60.0


class PostgresConversationSaver(ThreadedAsyncSaver, PostgresSaver):
    """LangGraph's PostgreSQL checkpointer, usable from async graphs on any event loop.

    ``PostgresSaver`` on a psycopg connection pool is thread-safe, so the async methods run
    the synchronous ones on a worker thread (``AsyncPostgresSaver`` is bound to the loop that
    opened it).
    """


def libpq_conninfo(database_url: str) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL (any driver suffix).

    Raises:
        ConfigurationError: the URL is not a PostgreSQL one.
    """
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigurationError(f"invalid database URL: {exc}") from exc
    if url.get_backend_name() != "postgresql":
        raise ConfigurationError(f"not a PostgreSQL URL: {_shown(url)}")
    # Query parameters (sslmode, host=/run/postgresql, ...) are libpq's own; the URL's parts
    # take precedence over them.
    params: dict[str, object] = {
        key: value if isinstance(value, str) else value[-1] for key, value in url.query.items()
    }
    parts = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    params.update({key: value for key, value in parts.items() if value is not None})
    return make_conninfo("", **params)


def postgres_checkpointer(database_url: str) -> PostgresConversationSaver:
    """LangGraph's PostgreSQL checkpointer on the database of ``database_url``, its tables made.

    Raises:
        ConfigurationError: the URL is not PostgreSQL, or the database cannot be reached.
    """
    conninfo = libpq_conninfo(database_url)
    shown = _shown(make_url(database_url))
    pool: ConnectionPool = ConnectionPool(
        conninfo,
        # The saver runs one statement at a time (a lock around its connection).
        min_size=1,
        max_size=1,
        # What PostgresSaver expects of its connections (autocommit: its migrations include
        # CREATE INDEX CONCURRENTLY, which cannot run inside a transaction).
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        # A server restart or failover kills pooled connections: test each before use.
        check=ConnectionPool.check_connection,
        timeout=_SETUP_TIMEOUT_S,
        name="stream-conversations",
        open=True,
    )
    saver = PostgresConversationSaver(pool)
    try:
        _setup(saver, conninfo)
    except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
        pool.close()
        raise ConfigurationError(f"cannot open the conversation database {shown}: {exc}") from exc
    return saver


def _setup(saver: PostgresSaver, conninfo: str) -> None:
    """Create or migrate the saver's tables, one process at a time.

    ``PostgresSaver.setup`` is not safe to run concurrently on a fresh database: two processes
    would both create the tables and record the same migrations. A session advisory lock on a
    connection of its own serializes them; it is taken by polling rather than by waiting in
    ``pg_advisory_lock``, because a session waiting inside a statement holds a snapshot, which
    the lock holder's ``CREATE INDEX CONCURRENTLY`` would wait for in turn (a deadlock).
    """
    deadline = time.monotonic() + _SETUP_TIMEOUT_S
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as lock:
        while not _try_lock(lock):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"another process kept the checkpointer's setup lock over {_SETUP_TIMEOUT_S} s"
                )
            time.sleep(0.05)
        saver.setup()  # the lock goes with the lock connection's session


def _try_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_SETUP_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)
