"""Opening a SQL database through SQLAlchemy, the one way every store of the package does it.

SQLite (a file, shared safely by several processes in WAL mode) or PostgreSQL
(``postgresql+psycopg://...``). Engines are cached per URL and purpose, and a store's tables
are created on first use; PostgreSQL serializes that step across processes with an advisory
lock, so processes opening a fresh database at once do not race.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, func, select
from sqlalchemy.exc import OperationalError

from langchain_stream.errors import ConfigurationError

_ENGINES: dict[tuple[str, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def open_engine(
    url: str, metadata: MetaData, *, purpose: str, lock_key: int, timeout_s: float = 30.0
) -> Engine:
    """The engine of ``url`` with ``metadata``'s tables created (cached per URL and purpose).

    Args:
        url: A SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
        metadata: The tables the store needs.
        purpose: What the database is for, in error messages ("the policy database").
        lock_key: PostgreSQL advisory lock held while the tables are created; any constant
            shared by every process that opens this store.
        timeout_s: SQLite's wait for a locked database; PostgreSQL's connection timeout.

    Raises:
        ConfigurationError: The URL names an unknown dialect or a missing driver, or the
            database cannot be reached or its tables created.
    """
    with _ENGINES_LOCK:
        engine = _ENGINES.get((url, purpose))
        if engine is not None:
            return engine
        try:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(
                    parents=True, exist_ok=True
                )
            engine = create_engine(url, **_engine_args(url, timeout_s))
        except Exception as exc:  # unknown dialect, missing driver, unusable path
            raise ConfigurationError(f"cannot open {purpose} {url!r}: {exc}") from exc
        if url.startswith("sqlite"):
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            _create_tables(engine, metadata, lock_key)
        except Exception as exc:  # unreachable server, bad credentials, read-only file
            engine.dispose()
            raise ConfigurationError(f"cannot open {purpose} {url!r}: {exc}") from exc
        _ENGINES[(url, purpose)] = engine
        return engine


def _create_tables(engine: Engine, metadata: MetaData, lock_key: int) -> None:
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # PostgreSQL's DDL is transactional, so the lock holds until commit.
                    conn.execute(select(func.pg_advisory_xact_lock(lock_key)))
                metadata.create_all(conn)
            return
        except OperationalError:
            # SQLite has no such lock: another process created a table between this one's
            # look and its CREATE ("already exists"). Look again; it is there now.
            if attempt == 2 or engine.dialect.name == "postgresql":
                raise


def _engine_args(url: str, timeout_s: float) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": timeout_s, "check_same_thread": False}}
    args: dict[str, Any] = {"pool_pre_ping": True}  # a server restart kills pooled connections
    if url.startswith("postgresql+psycopg"):
        args["connect_args"] = {"connect_timeout": max(int(timeout_s), 1)}
    return args


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; many processes
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


__all__ = ["open_engine"]
