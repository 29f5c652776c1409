"""The record of ended channels shared by a relay set [RP §13.6]: in memory and in SQLite,
on a fake clock; which endings are recorded; what the relay's side of it does."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close as CloseFrame

from langchain_stream.errors import ConfigurationError
from langchain_stream.relay.channels import ENDINGS, Close, End, Ending, Forget
from langchain_stream.relay.ended import (
    RECORDED_ENDINGS,
    EndedChannels,
    EndedStore,
    EndedStoreError,
    MemoryEndedStore,
    open_ended_store,
)
from langchain_stream.relay.ended_sql import SqlEndedStore
from langchain_stream.relay.protocol import ChannelSealer
from langchain_stream.relay.routing import may_fail_over
from langchain_stream.relay.tokens import DEFAULT_LEEWAY_S, DEFAULT_TOKEN_TTL_S

T0 = 1_800_000_000.0
A, B, C = "a" * 32, "b" * 32, "c" * 32
KEY = bytes(range(32))


def _final(channel_id: str) -> tuple[bytes, bytes]:
    """A DATA frame and the FINAL after it, sealed as a producer sends them."""
    sealer = ChannelSealer(KEY, channel_id)
    return sealer.seal_tokens(["x"]), sealer.seal_final(None)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _memory(clock: Clock, max_entries: int) -> MemoryEndedStore:
    return MemoryEndedStore(max_entries=max_entries, clock=clock)


StoreFactory = Callable[[Clock, int], EndedStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "memory":
        return _memory
    url = f"sqlite:///{tmp_path / 'state' / 'ended.db'}"

    def sql(clock: Clock, max_entries: int) -> EndedStore:
        return SqlEndedStore(url, max_entries=max_entries, clock=clock)

    return sql


def _held(store: EndedStore) -> int:
    return store.count() if isinstance(store, SqlEndedStore) else len(store)  # type: ignore[arg-type]


async def test_a_recorded_channel_has_ended_until_its_time(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store(clock, 10)
    assert not await store.has_ended(A)
    await store.record_ended(A, T0 + 60)
    assert await store.has_ended(A)
    assert not await store.has_ended(B)
    clock.now = T0 + 60
    assert await store.has_ended(A)  # up to and including its time
    clock.now = T0 + 60.5
    assert not await store.has_ended(A)


async def test_a_later_time_extends_an_earlier_one_never_shortens(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store(clock, 10)
    await store.record_ended(A, T0 + 100)
    await store.record_ended(A, T0 + 50)  # another relay, an earlier token: no effect
    clock.now = T0 + 80
    assert await store.has_ended(A)
    await store.record_ended(A, T0 + 200)
    clock.now = T0 + 150
    assert await store.has_ended(A)
    assert _held(store) == 1


async def test_expired_rows_are_pruned_on_write(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store(clock, 10)
    await store.record_ended(A, T0 + 10)
    await store.record_ended(B, T0 + 20)
    assert _held(store) == 2
    clock.now = T0 + 15
    assert _held(store) == 2  # reading prunes nothing
    await store.record_ended(C, T0 + 100)
    assert _held(store) == 2  # A went; B and C stay
    assert not await store.has_ended(A)
    assert await store.has_ended(B) and await store.has_ended(C)


async def test_a_full_record_refuses_new_channels_rather_than_forget_one(
    make_store: StoreFactory,
) -> None:
    clock = Clock()
    store = make_store(clock, 2)
    await store.record_ended(A, T0 + 10)
    await store.record_ended(B, T0 + 20)
    with pytest.raises(EndedStoreError, match="full"):
        await store.record_ended(C, T0 + 30)
    assert await store.has_ended(A) and await store.has_ended(B)  # nothing forgotten early
    await store.record_ended(A, T0 + 40)  # extending a held one needs no room
    clock.now = T0 + 25  # B expires: its room is free on the next write
    await store.record_ended(C, T0 + 30)
    assert await store.has_ended(C)
    assert _held(store) == 2


def test_a_broken_url_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ended-channel record"):
        SqlEndedStore("nosuchdialect://somewhere/db")
    with pytest.raises(ConfigurationError, match="ended-channel record"):
        SqlEndedStore("not a url")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match="ended-channel record"):
        SqlEndedStore(f"sqlite:///{blocker / 'ended.db'}")  # a file where a directory must be
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryEndedStore(max_entries=0)


@pytest.mark.loopback
def test_an_unreachable_database_is_a_configuration_error() -> None:
    # Nothing listens on port 1: refused at once.
    with pytest.raises(ConfigurationError, match="ended-channel record"):
        SqlEndedStore("postgresql+psycopg://stream@127.0.0.1:1/relay", timeout_s=1)


def test_without_a_url_there_is_no_shared_record(tmp_path: Path) -> None:
    assert open_ended_store(None) is None
    assert open_ended_store("  ") is None
    store = open_ended_store(f"sqlite:///{tmp_path / 'e.db'}")
    assert isinstance(store, SqlEndedStore)


async def test_a_database_that_fails_is_an_ended_store_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    store = SqlEndedStore(f"sqlite:///{path}")
    await store.record_ended(A, T0 + 1e9)
    with sqlite3.connect(path) as db:  # the database loses its table under the relay
        db.execute("DROP TABLE stream_relay_ended")
    with pytest.raises(EndedStoreError, match="failed: OperationalError"):
        await store.has_ended(A)
    with pytest.raises(EndedStoreError, match="failed"):
        await store.record_ended(B, T0 + 1e9)


def test_the_recorded_endings_are_those_no_failover_follows() -> None:
    """A channel's ending is recorded for the whole set exactly when its clients do not fail
    over after it: one definition, seen from both ends of the wire. ("Stream done" is recorded
    when its producer leaves after FINAL, whichever side left first.)"""
    channel_endings = {
        Ending.STREAM_DONE,
        Ending.PRODUCER_GONE,
        Ending.CONSUMER_GONE,
        Ending.FRAME_TOO_LARGE,
        Ending.BUFFER_OVERFLOW,
        Ending.CLIENT_BUFFER,
        Ending.MEMORY_FULL,
        Ending.IDLE,
        Ending.PAIRING,
        Ending.PROTOCOL,
        Ending.SHUTDOWN,
        Ending.INTERNAL,
    }
    assert RECORDED_ENDINGS.issubset(channel_endings)
    for ending in channel_endings:
        code = ENDINGS[ending][0]
        closed = ConnectionClosed(CloseFrame(code, ending.value), None)
        recorded = ending in RECORDED_ENDINGS or ending is Ending.STREAM_DONE
        assert recorded is not may_fail_over(closed), ending


def _end(channel_id: str, ending: Ending) -> End[str]:
    return End(channel_id, ending, 3, (Close("conn", ending),))


async def test_the_relay_records_real_ends_until_the_last_token_expires() -> None:
    clock = Clock()
    store = MemoryEndedStore(clock=clock)
    ended = EndedChannels(store, clock=clock)
    assert not await ended.has_ended(A, T0 + 300)  # a producer admitted
    assert not await ended.has_ended(A, T0 + 600)  # a consumer, with a later token
    assert not await ended.has_ended(B, T0 + 300)
    final = _final(A)[1]
    await ended.record((_end(A, Ending.CONSUMER_GONE), Forget(A)))  # acknowledged FINAL, left
    assert not await store.has_ended(A)
    await ended.producer_left(A, final)  # then the producer, after FINAL: the stream is done
    await ended.record((_end(B, Ending.CONSUMER_GONE),))  # a side left mid-stream
    await ended.producer_left(B, _final(B)[0])  # and the producer, after DATA: it moves on
    await ended.producer_left(B, b"")  # or before sending anything
    assert await store.has_ended(A)
    assert not await store.has_ended(B)
    clock.now = T0 + 600 + DEFAULT_LEEWAY_S
    assert await store.has_ended(A)
    clock.now += 1
    assert not await store.has_ended(A)


@pytest.mark.parametrize(
    "ending", [Ending.PRODUCER_GONE, Ending.SHUTDOWN, Ending.INTERNAL, Ending.IDLE, Ending.PAIRING]
)
async def test_a_failover_ending_is_never_recorded(ending: Ending) -> None:
    store = MemoryEndedStore()
    ended = EndedChannels(store)
    await ended.has_ended(A, T0 + 300)
    await ended.record((_end(A, ending),))
    ended.record_soon((_end(A, ending),))
    await ended.drain()
    assert not await store.has_ended(A)
    assert len(store) == 0


async def test_a_channel_whose_expiry_was_not_noted_is_kept_for_a_token_lifetime() -> None:
    clock = Clock()
    store = MemoryEndedStore(clock=clock)
    ended = EndedChannels(store, max_noted=2, clock=clock)
    for channel_id in (A, B, C):  # A's note is the oldest: dropped for C's
        await ended.has_ended(channel_id, T0 + 300)
    ended.record_soon((_end(A, Ending.BUFFER_OVERFLOW), _end(C, Ending.PROTOCOL)))
    await ended.drain()
    clock.now = T0 + 300 + DEFAULT_LEEWAY_S + 1
    assert not await store.has_ended(C)  # its noted expiry
    assert await store.has_ended(A)  # not noted: the default token lifetime
    clock.now = T0 + DEFAULT_TOKEN_TTL_S + DEFAULT_LEEWAY_S + 1
    assert not await store.has_ended(A)


async def test_a_record_that_fails_is_logged_and_the_relay_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryEndedStore(max_entries=1)
    ended = EndedChannels(store)
    await ended.producer_left(A, _final(A)[1])
    with caplog.at_level(logging.ERROR, logger="langchain_stream.relay"):
        await ended.producer_left(B, _final(B)[1])  # full: not raised
    assert await store.has_ended(A) and not await store.has_ended(B)
    [record] = caplog.records
    assert f"channel {B[:8]} ended (stream done) but was not recorded" in record.getMessage()
    assert "full" in record.getMessage()


async def test_the_sql_bound_holds_exactly_for_one_writer_while_counting_rarely(
    tmp_path: Path,
) -> None:
    """Rows are counted again only after a 64th of the room left was written, so the count's
    cost is paid rarely far from the bound, and every write close to it."""
    clock = Clock()
    store = SqlEndedStore(f"sqlite:///{tmp_path / 'bound.db'}", max_entries=200, clock=clock)
    for i in range(200):
        await store.record_ended(f"{i:032x}", T0 + 60)
    with pytest.raises(EndedStoreError, match="full"):
        await store.record_ended(f"{200:032x}", T0 + 60)
    assert store.count() == 200


def test_streaming_through_a_relay_never_imports_sqlalchemy() -> None:
    """Only a relay given a database loads SQLAlchemy: clients and workers import the relay
    package, and must not pay for it."""
    code = (
        "import sys, langchain_stream.relay, langchain_stream.relay.server;"
        "print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


def _open_at_once(url: str, barrier: Any, failures: Any) -> None:
    barrier.wait()
    try:
        SqlEndedStore(url)
    except ConfigurationError:
        failures.put(url)


def test_relays_opening_a_fresh_sqlite_file_at_once_all_start(tmp_path: Path) -> None:
    """Several relays started together on a new SQLite file race to create its table; the
    loser looks again instead of failing to start."""
    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    for round_ in range(8):
        url = f"sqlite:///{tmp_path / f'fresh-{round_}.db'}"
        barrier = context.Barrier(4)
        relays = [
            context.Process(target=_open_at_once, args=(url, barrier, failures)) for _ in range(4)
        ]
        for relay in relays:
            relay.start()
        for relay in relays:
            relay.join(timeout=60)
            assert relay.exitcode == 0
    assert failures.empty()
