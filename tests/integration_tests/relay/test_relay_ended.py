"""Relays of a set sharing one record of ended channels (SQLite, PostgreSQL) [RP §13.6].

A channel that finished on one relay is refused on every other; a channel that merely left a
relay (closed, stopped, killed) still opens on the next one. Real relays on loopback (in this
process, and as separate processes for the stopped-relay case); every wait is a multiple of
``UNIT_S`` and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from langchain_stream.errors import RelayUnavailableError
from langchain_stream.hpc.local_endpoint import RelayProcess, serve_control
from langchain_stream.relay import (
    AsyncProducerClient,
    ConsumerClient,
    RelayLimits,
    RelayServer,
    channel_url,
    mint_channel_tokens,
    mint_token,
    new_channel_id,
    new_channel_key,
    pick_relays,
)
from langchain_stream.relay.ended_sql import SqlEndedStore
from langchain_stream.relay.failover import FailoverLimits
from tests.conftest import TIME_UNIT_S

UNIT_S = 0.5 * TIME_UNIT_S
SECRET = "ended-record-relay-secret-0123456789abcdef"
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(90)

FAST = FailoverLimits(
    heartbeat_s=UNIT_S,
    progress_timeout_s=3 * UNIT_S,
    resume_timeout_s=6 * UNIT_S,
    ack_interval_s=UNIT_S / 5,
    ack_timeout_s=2 * UNIT_S,
    ping_interval_s=UNIT_S,
    ping_timeout_s=UNIT_S,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared record's database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'relay-state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@contextlib.asynccontextmanager
async def relay_pair(state_url: str | None) -> AsyncIterator[tuple[RelayServer, RelayServer]]:
    """Relays A and B on 127.0.0.1, sharing ``state_url``'s record (none: each its own)."""

    def relay() -> RelayServer:
        store = SqlEndedStore(state_url) if state_url is not None else None
        return RelayServer(SECRET, host="127.0.0.1", port=0, ended_store=store)

    async with relay() as a, relay() as b:
        yield a, b


class Stream:
    """One channel over ``urls``: a paced producer and a consumer, in this event loop."""

    def __init__(self, urls: list[str], *, first: str | None = None) -> None:
        self.id = new_channel_id()
        while first is not None and pick_relays(urls, self.id)[0] != first:
            self.id = new_channel_id()  # a channel whose rendezvous order starts at ``first``
        key = new_channel_key()
        self.tokens = mint_channel_tokens(SECRET, self.id)
        self.producer = AsyncProducerClient(urls, self.id, self.tokens.producer, key, failover=FAST)
        self.consumer = ConsumerClient(
            urls,
            self.id,
            self.tokens.consumer,
            key,
            first_token_timeout_s=20 * UNIT_S,
            idle_timeout_s=20 * UNIT_S,
            failover=FAST,
        )

    async def produce(self, n: int, interval_s: float) -> None:
        await self.producer.connect()
        for i in range(n):
            self.producer.send(f"<{i}>")
            await asyncio.sleep(interval_s)
        await self.producer.finish()

    async def run(
        self, n: int, interval_s: float, faults: dict[int, Any] | None = None
    ) -> list[str]:
        """Stream ``n`` tokens; once ``k`` have arrived, call ``faults[k]()``."""
        faults = faults or {}
        await self.consumer.connect()
        producing = asyncio.create_task(self.produce(n, interval_s))
        got: list[str] = []
        try:
            async for token in self.consumer:
                got.append(token)
                if len(got) in faults:
                    faults[len(got)]()
        finally:
            await self.consumer.close()
            await asyncio.wait_for(producing, 20 * UNIT_S)
        return got


async def _status(base_url: str, channel_id: str, role: str, token: str) -> int:
    """The HTTP status the relay answers a join with (101: admitted, then closed again)."""
    try:
        ws = await connect(
            channel_url(base_url, channel_id, role),  # type: ignore[arg-type]
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=5 * UNIT_S,
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def _recorded(state_url: str, channel_id: str) -> bool:
    """Whether the shared record holds ``channel_id``, waiting up to 4 units for it."""
    store = SqlEndedStore(state_url)
    deadline = time.monotonic() + 4 * UNIT_S
    while not await store.has_ended(channel_id):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(UNIT_S / 20)
    return True


async def test_a_channel_finished_on_one_relay_is_refused_on_the_other(state_url: str) -> None:
    async with relay_pair(state_url) as (a, b):
        stream = Stream([a.url])  # both sides on relay A only
        got = await stream.run(20, 0.001)
        assert got == [f"<{i}>" for i in range(20)]
        assert await _recorded(state_url, stream.id)
        # Relay B never saw the channel, yet refuses both of its tokens, and a fresh one.
        fresh = mint_token(SECRET, stream.id, "consumer")
        assert await _status(b.url, stream.id, "producer", stream.tokens.producer) == 403
        assert await _status(b.url, stream.id, "consumer", stream.tokens.consumer) == 403
        assert await _status(b.url, stream.id, "consumer", fresh) == 403
        assert b.live_channels == 0
        # The refusal is the record's: another channel opens on B as always.
        other = mint_channel_tokens(SECRET, (other_id := new_channel_id()))
        assert await _status(b.url, other_id, "consumer", other.consumer) == 101


async def test_without_a_shared_record_the_other_relay_still_admits_the_tokens() -> None:
    """The comparison (each relay its own memory, as before): B admits the ended channel's
    token, and only A refuses it."""
    async with relay_pair(None) as (a, b):
        stream = Stream([a.url])
        assert await stream.run(5, 0.001) == [f"<{i}>" for i in range(5)]
        await asyncio.sleep(UNIT_S)  # relay A forgets the channel once both sides have left
        assert await _status(a.url, stream.id, "consumer", stream.tokens.consumer) == 403
        assert await _status(b.url, stream.id, "consumer", stream.tokens.consumer) == 101


async def test_a_channel_whose_relay_closes_mid_stream_opens_on_the_next(state_url: str) -> None:
    """Relay A shuts down under a stream (1001): not an end. Both sides fail over to B, which
    admits them, and the answer completes there; its end is then recorded."""
    async with relay_pair(state_url) as (a, b):
        stream = Stream([a.url, b.url], first=a.url)
        closing: list[asyncio.Task[None]] = []
        got = await stream.run(
            80, 0.005, {20: lambda: closing.append(asyncio.create_task(a.close()))}
        )
        await asyncio.gather(*closing)
        assert got == [f"<{i}>" for i in range(80)]  # every token, once, in order
        assert stream.consumer.failovers == 1 and stream.producer.failovers == 1
        assert stream.consumer.relay_url == b.url == stream.producer.relay_url
        assert await _recorded(state_url, stream.id)  # finished on B
        assert await _status(b.url, stream.id, "consumer", stream.tokens.consumer) == 403


async def test_an_unreadable_record_refuses_joins_and_open_channels_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail closed: with the record unreadable a join gets 503 (clients try another relay),
    while a channel already open streams to its end (its record is logged as missed)."""
    path = tmp_path / "relay-state.db"
    async with relay_pair(f"sqlite:///{path}") as (a, b):
        stream = Stream([a.url])

        def break_the_record() -> None:
            with sqlite3.connect(path) as db:
                db.execute("DROP TABLE stream_relay_ended")

        with caplog.at_level(logging.ERROR, logger="langchain_stream.relay"):
            got = await stream.run(40, 0.002, {10: break_the_record})
            assert got == [f"<{i}>" for i in range(40)]
            other = Stream([b.url])
            assert await _status(b.url, other.id, "consumer", other.tokens.consumer) == 503
            with pytest.raises(RelayUnavailableError):
                await other.consumer.connect()
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            f"channel {stream.id[:8]} ended (stream done) but was not" in m for m in messages
        )
        # Relay B says so once, however many joins it refuses.
        assert await _status(b.url, other.id, "producer", other.tokens.producer) == 503
        refusals = [m for m in messages if m.startswith("joins refused (503)")]
        assert len(refusals) == 1 and "OperationalError" in refusals[0]
        with sqlite3.connect(path) as db:  # the table is back: joins are admitted again
            db.execute(
                "CREATE TABLE stream_relay_ended"
                " (channel_id VARCHAR(32) PRIMARY KEY, until FLOAT NOT NULL)"
            )
        with caplog.at_level(logging.WARNING, logger="langchain_stream.relay"):
            assert await _status(b.url, other.id, "consumer", other.tokens.consumer) == 101
        again = [r.getMessage() for r in caplog.records if "read again" in r.getMessage()]
        assert len(again) == 1 and again[0].endswith("3 joins were refused")


# ---------------------------------------------------------------------------- relay processes


def _serve_relay_with_record(
    conn: Connection, host: str, port: int, secret: str, limits: dict[str, Any]
) -> None:
    """A relay process whose record is the SQLite file ``limits["state_url"]``."""
    state_url = limits.pop("state_url")

    async def main() -> None:
        store = SqlEndedStore(state_url)
        bounds = RelayLimits(**limits)
        async with RelayServer(
            secret, host=host, port=port, limits=bounds, ended_store=store
        ) as relay:
            await serve_control(conn, relay.port)

    asyncio.run(main())


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def relay_processes(tmp_path: Path) -> Iterator[tuple[dict[str, RelayProcess], str]]:
    """Three relay processes on 127.0.0.2-4 sharing one SQLite record."""
    state_url = f"sqlite:///{tmp_path / 'relay-state.db'}"
    relays: dict[str, RelayProcess] = {}
    try:
        for host in HOSTS:
            relay = RelayProcess(
                SECRET,
                host=host,
                port=_free_port(host),
                target=_serve_relay_with_record,
                state_url=state_url,
            )
            relay.start()
            relays[relay.url] = relay
        yield relays, state_url
    finally:
        for relay in relays.values():
            if relay.alive and relay.pid is not None:
                os.kill(relay.pid, signal.SIGCONT)
            relay.kill()


async def test_leaving_a_stopped_relay_records_nothing_and_the_channel_moves_on(
    relay_processes: tuple[dict[str, RelayProcess], str],
) -> None:
    """The first relay is stopped (a partition): both sides leave it for the second. When it
    resumes it sees them gone — not an end. The second relay is then killed, and the third
    must still admit the channel."""
    relays, state_url = relay_processes
    urls = list(relays)
    stream = Stream(urls)
    first, second, third = pick_relays(urls, stream.id)

    def stop_first() -> None:
        os.kill(relays[first].pid or 0, signal.SIGSTOP)

    def resume_first() -> None:
        os.kill(relays[first].pid or 0, signal.SIGCONT)

    got = await stream.run(
        240,
        0.01,
        {30: stop_first, 60: resume_first, 180: lambda: relays[second].kill()},
    )
    assert got == [f"<{i}>" for i in range(240)]
    assert stream.consumer.failovers == 2 and stream.producer.failovers == 2
    assert stream.consumer.relay_url == third == stream.producer.relay_url
    assert await _recorded(state_url, stream.id)  # finished on the third
    assert await _status(first, stream.id, "consumer", stream.tokens.consumer) == 403


# ---------------------------------------------------------------------------- stream relay


def _stream_relay(port: int, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "langchain_stream.cli", "relay", "--port", str(port), *args],
        env={
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "STREAM_RELAY_SECRET": SECRET,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def _listening(relay: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30 * UNIT_S
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if relay.poll() is not None:
                pytest.fail(f"stream relay exited: {relay.communicate()[0]}")
            assert time.monotonic() < deadline, f"stream relay on {port} did not start"
            await asyncio.sleep(UNIT_S / 10)
        else:
            writer.close()
            return


async def test_stream_relay_shares_the_record_given_by_flag_or_environment(tmp_path: Path) -> None:
    state_url = f"sqlite:///{tmp_path / 'relay-state.db'}"
    ports = (_free_port("127.0.0.1"), _free_port("127.0.0.1"))
    relays = [
        _stream_relay(ports[0], "--state-url", state_url, env={}),
        _stream_relay(ports[1], env={"STREAM_RELAY_STATE_URL": state_url}),
    ]
    try:
        for relay, port in zip(relays, ports, strict=True):
            await _listening(relay, port)
        a, b = (f"ws://127.0.0.1:{port}" for port in ports)
        stream = Stream([a])
        assert await stream.run(10, 0.001) == [f"<{i}>" for i in range(10)]
        assert await _recorded(state_url, stream.id)
        assert await _status(b, stream.id, "consumer", stream.tokens.consumer) == 403
    finally:
        for relay in relays:
            relay.send_signal(signal.SIGTERM)
        for relay in relays:
            relay.wait(timeout=10)


def test_stream_relay_refuses_a_broken_state_url_before_listening() -> None:
    port = _free_port("127.0.0.1")
    relay = _stream_relay(port, "--state-url", "nosuchdialect://db", env={})
    output, _ = relay.communicate(timeout=30)
    assert relay.returncode == 1
    assert "cannot open the relays' ended-channel record 'nosuchdialect://db'" in output
    with socket.socket() as sock:  # nothing was bound
        sock.bind(("127.0.0.1", port))
