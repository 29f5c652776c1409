"""A real relay on 127.0.0.1 with real producers and consumers (threads and subprocesses).

Every wait is a multiple of ``UNIT_S``, itself scaled from the suite's ``TIME_UNIT_S``
(``STREAM_TEST_TIME_UNIT_S``). Network traffic stays on loopback and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from langchain_stream.errors import (
    ChannelClosedError,
    RelayAuthError,
    RelayIntegrityError,
    RelayLimitError,
    RelayProtocolError,
    RelayTimeoutError,
    RelayUnavailableError,
)
from langchain_stream.relay import (
    AsyncProducerClient,
    ChannelSealer,
    ConsumerClient,
    ProducerClient,
    RelayLimits,
    RelayServer,
    channel_url,
    mint_channel_tokens,
    mint_token,
    new_channel_id,
    new_channel_key,
    pick_relays,
)
from tests.conftest import TIME_UNIT_S

UNIT_S = 0.5 * TIME_UNIT_S
"""Every wait in this module is a multiple of this."""

SECRET = b"loopback-relay-secret-0123456789"
ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(60)


class Channel:
    """Everything one request needs: id, key, and both tokens."""

    def __init__(self, ttl_s: float = 600) -> None:
        self.id = new_channel_id()
        self.key = new_channel_key()
        self.tokens = mint_channel_tokens(SECRET, self.id, ttl_s)

    def consumer(self, url: str | list[str], **kwargs: Any) -> ConsumerClient:
        kwargs.setdefault("first_token_timeout_s", 10 * UNIT_S)
        kwargs.setdefault("idle_timeout_s", 10 * UNIT_S)
        return ConsumerClient(url, self.id, self.tokens.consumer, self.key, **kwargs)

    def producer(self, url: str | list[str], **kwargs: Any) -> ProducerClient:
        return ProducerClient(url, self.id, self.tokens.producer, self.key, **kwargs)

    def async_producer(self, url: str | list[str], **kwargs: Any) -> AsyncProducerClient:
        return AsyncProducerClient(url, self.id, self.tokens.producer, self.key, **kwargs)


async def _drain_into(consumer: ConsumerClient, received: list[str]) -> None:
    async for token in consumer:
        received.append(token)


@contextlib.asynccontextmanager
async def relay_server(**limits: Any) -> AsyncIterator[RelayServer]:
    bounds = RelayLimits(**limits)
    async with RelayServer(SECRET, host="127.0.0.1", port=0, limits=bounds) as relay:
        yield relay


async def raw_connect(url: str, channel_id: str, role: str, token: str) -> ClientConnection:
    """A bare WebSocket to the relay, for sending frames a real client never would."""
    return await connect(
        channel_url(url, channel_id, role),  # type: ignore[arg-type]
        additional_headers={"Authorization": f"Bearer {token}"},
        compression=None,
        max_size=None,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_in_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target(*args)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, errors


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@contextlib.contextmanager
def killable(args: list[str], stdin: str = "") -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, *args], stdin=subprocess.PIPE, env=subprocess_env(), text=True
    )
    try:
        if stdin:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------- the happy path


async def test_end_to_end_encrypted_stream_with_a_sync_producer_thread() -> None:
    words = [f"word{i} " for i in range(200)]
    async with relay_server() as relay:
        ch = Channel()

        def worker() -> None:
            with ch.producer(relay.url) as producer:
                for i, word in enumerate(words):
                    producer.send(word)
                    if i % 20 == 0:
                        time.sleep(0.01)
                producer.finish({"prompt_tokens": 7, "completion_tokens": len(words)})

        async with ch.consumer(relay.url) as consumer:
            thread, errors = run_in_thread(worker)
            received = [token async for token in consumer]
        await asyncio.to_thread(thread.join, 10 * UNIT_S)
        assert errors == []
        assert received == words
        assert consumer.usage == {"prompt_tokens": 7, "completion_tokens": len(words)}
        assert consumer.final is not None
        assert consumer.final.tokens == len(words)
        assert consumer.final.frames <= len(words)


async def test_frames_sent_before_the_consumer_arrives_are_delivered() -> None:
    async with relay_server() as relay:
        ch = Channel()
        async with ch.async_producer(relay.url, coalesce_s=0) as producer:
            for i in range(5):
                producer.send(f"{i},")
                await asyncio.sleep(0.005)
            await producer.finish({"n": 5})
        async with ch.consumer(relay.url) as consumer:
            assert await consumer.collect() == "0,1,2,3,4,"
        assert consumer.usage == {"n": 5}


async def test_slow_tokens_go_one_per_frame_and_bursts_coalesce() -> None:
    async with relay_server() as relay:
        ch = Channel()
        async with ch.consumer(relay.url) as consumer, ch.async_producer(relay.url) as producer:
            for i in range(5):  # idle: one token per frame
                producer.send(f"s{i}")
                await asyncio.sleep(0.02)
            assert producer.frames_sent == 5
            for i in range(300):  # a burst: far fewer frames than tokens
                producer.send(f"b{i}")
                if i % 10 == 0:
                    await asyncio.sleep(0)
            await producer.finish()
            tokens = [t async for t in consumer]
        assert tokens == [f"s{i}" for i in range(5)] + [f"b{i}" for i in range(300)]
        assert producer.frames_sent < 5 + 300 // 3


async def test_health_endpoint_says_ok_and_nothing_else() -> None:
    async with relay_server() as relay:
        ch = Channel()
        async with ch.async_producer(relay.url):  # a live channel must not show

            def get(path: str) -> tuple[int, bytes, str | None]:
                conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=5)
                conn.request("GET", path)
                response = conn.getresponse()
                return response.status, response.read(), response.getheader("Content-Type")

            status, body, content_type = await asyncio.to_thread(get, "/healthz")
            assert (status, body, content_type) == (200, b'{"status":"ok"}', "application/json")
            status, body, _ = await asyncio.to_thread(get, "/v1/channels")
            assert status == 404
            assert ch.id.encode() not in body


# ---------------------------------------------------------------------------- tokens


async def test_consumer_with_a_producer_token_is_refused() -> None:
    async with relay_server() as relay:
        ch = Channel()
        consumer = ConsumerClient(relay.url, ch.id, ch.tokens.producer, ch.key)
        with pytest.raises(RelayAuthError, match="HTTP 403"):
            await consumer.connect()


@pytest.mark.parametrize("case", ["expired", "forged", "other channel", "missing"])
async def test_bad_tokens_are_refused(case: str) -> None:
    async with relay_server() as relay:
        ch = Channel()
        if case == "expired":
            token = mint_token(SECRET, ch.id, "producer", ttl_s=1, now=time.time() - 60)
        elif case == "forged":
            token = mint_token(b"not-the-relay-secret-0123456789!", ch.id, "producer")
        elif case == "other channel":
            token = mint_token(SECRET, new_channel_id(), "producer")
        else:
            token = ""
        producer = AsyncProducerClient(relay.url, ch.id, token, ch.key)
        with pytest.raises(RelayAuthError, match=r"HTTP 40[13]"):
            await producer.connect()


async def test_a_role_connects_once() -> None:
    async with relay_server() as relay:
        ch = Channel()
        async with ch.async_producer(relay.url):
            with pytest.raises(RelayProtocolError, match="HTTP 409"):
                await ch.async_producer(relay.url).connect()


@pytest.mark.parametrize("junk", ["!", "=", "%%", "~"])
async def test_a_token_with_junk_appended_is_refused(junk: str) -> None:
    async with relay_server() as relay:
        ch = Channel()
        producer = AsyncProducerClient(relay.url, ch.id, ch.tokens.producer + junk, ch.key)
        with pytest.raises(RelayAuthError, match="HTTP 403"):
            await producer.connect()
        assert relay.live_channels == 0


async def test_tokens_and_channel_ids_are_single_use() -> None:
    async with relay_server() as relay:
        ch = Channel()
        async with ch.consumer(relay.url) as consumer, ch.async_producer(relay.url) as producer:
            producer.send("once")
            await producer.finish()
            assert await consumer.collect() == "once"
        await _until(lambda: relay.live_channels == 0)
        # Neither token opens the ended channel again, so a reused consumer token cannot read
        # what a new producer sends ...
        with pytest.raises(RelayAuthError, match="HTTP 403"):
            await ch.consumer(relay.url).connect()
        with pytest.raises(RelayAuthError, match="HTTP 403"):
            await ch.async_producer(relay.url).connect()
        # ... and a fresh pair for the same id does not reopen it (a retried task would restart
        # its sequence numbers under the same key).
        fresh = mint_channel_tokens(SECRET, ch.id)
        retried = AsyncProducerClient(relay.url, ch.id, fresh.producer, ch.key)
        with pytest.raises(RelayAuthError, match="HTTP 403"):
            await retried.connect()
        assert relay.live_channels == 0


async def test_a_channel_left_unattended_is_forgotten_with_its_buffer() -> None:
    async with relay_server(unattended_timeout_s=UNIT_S) as relay:
        ch = Channel()
        raw = await raw_connect(relay.url, ch.id, "producer", ch.tokens.producer)
        await raw.send(ChannelSealer(ch.key, ch.id).seal_token("left behind"))
        await raw.close()
        await _until(lambda: relay.buffered_bytes > 0)
        await _until(lambda: relay.live_channels == 0, within_s=4 * UNIT_S)
        assert relay.buffered_bytes == 0
        with pytest.raises(RelayAuthError, match="HTTP 403"):
            await ch.consumer(relay.url).connect()


async def test_a_channel_whose_other_side_never_comes_ends_at_the_pairing_timeout() -> None:
    async with relay_server(pairing_timeout_s=UNIT_S) as relay:
        ch = Channel()
        started = time.monotonic()
        async with ch.consumer(relay.url, first_token_timeout_s=None) as consumer:
            with pytest.raises(RelayLimitError, match="4005"):
                await consumer.collect()
        assert UNIT_S <= time.monotonic() - started < 3 * UNIT_S
        assert relay.live_channels == 0


async def test_the_buffer_memory_ceiling_is_a_clear_refusal() -> None:
    frame_bytes = 5_000
    async with relay_server(max_buffered_bytes_total=2 * frame_bytes) as relay:
        a, b = Channel(), Channel()
        raw_a = await raw_connect(relay.url, a.id, "producer", a.tokens.producer)
        raw_b = await raw_connect(relay.url, b.id, "producer", b.tokens.producer)
        await raw_a.send(bytes(frame_bytes))
        await raw_b.send(bytes(frame_bytes))
        await _until(lambda: relay.buffered_bytes == 2 * frame_bytes)
        # Full: a new producer is refused before the upgrade (503, so clients try another relay)
        with pytest.raises(RelayUnavailableError, match="HTTP 503"):
            await Channel().async_producer(relay.url).connect()
        # ... and a frame that would pass the ceiling ends its channel with 4004 and a reason.
        await raw_a.send(b"x")
        with pytest.raises(ConnectionClosed) as info:
            await raw_a.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4004, "relay buffer memory full")
        assert relay.buffered_bytes == frame_bytes  # what the ended channel held is freed
        async with Channel().async_producer(relay.url):
            pass  # room again
        await raw_b.close()


async def _until(condition: Any, within_s: float = 2 * UNIT_S) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------- attacks in transit


def _attack_frames(ch: Channel, attack: str) -> list[bytes]:
    sealer = ChannelSealer(ch.key, ch.id)
    a, b, c = (sealer.seal_token(t) for t in ("a", "b", "c"))
    final = sealer.seal_final()
    other = Channel()
    if attack == "tampered":
        return [a, b[:-1] + bytes([b[-1] ^ 1]), c, final]
    if attack == "replayed":
        return [a, b, a, c, final]
    if attack == "reordered":
        return [a, c, b, final]
    if attack == "dropped":
        return [a, c, final]
    if attack == "spliced":
        return [a, ChannelSealer(other.key, other.id).seal_token("x"), b, c, final]
    assert attack == "downgrade"
    return [a, ChannelSealer(None, ch.id).seal_token("x")]


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        ("tampered", "failed authentication"),
        ("replayed", "replayed frame: sequence 0, expected 2"),
        ("reordered", "missing or reordered frames: sequence 2, expected 1"),
        ("dropped", "missing or reordered frames: sequence 2, expected 1"),
        ("spliced", "another channel"),
        ("downgrade", "unsealed frame rejected"),
    ],
)
async def test_attacks_in_transit_are_detected(
    attack: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with relay_server() as relay:
        ch = Channel()
        async with ch.consumer(relay.url) as consumer:
            raw = await raw_connect(relay.url, ch.id, "producer", ch.tokens.producer)
            for frame in _attack_frames(ch, attack):
                await raw.send(frame)
            await raw.close()
            received: list[str] = []
            with pytest.raises(RelayIntegrityError, match=message):
                await _drain_into(consumer, received)
            assert received == ["a", "b"][: len(received)]  # nothing forged got through
    relay_log = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("langchain_stream.relay")
    )
    assert "BINARY" in relay_log  # the relay's wire log was captured ...
    assert ch.tokens.producer not in relay_log  # ... without the token


@contextlib.asynccontextmanager
async def hostile_relay(frames: list[bytes]) -> AsyncIterator[str]:
    """A relay turned attacker: plays ``frames`` to whoever connects, then closes normally."""

    async def play(ws: ServerConnection) -> None:
        for frame in frames:
            await ws.send(frame)

    async with serve(play, "127.0.0.1", 0, compression=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_relay_that_cuts_the_tail_is_caught() -> None:
    ch = Channel()
    sealer = ChannelSealer(ch.key, ch.id)
    frames = [sealer.seal_token(t) for t in ("a", "b", "c")] + [sealer.seal_final()]
    async with hostile_relay(frames[:2]) as url, ch.consumer(url) as consumer:
        received: list[str] = []
        with pytest.raises(RelayIntegrityError, match="ended without FINAL after 2 frames"):
            await _drain_into(consumer, received)
        assert received == ["a", "b"]


async def test_a_producer_that_leaves_without_final_is_reported_gone() -> None:
    async with relay_server() as relay:
        ch = Channel()
        sealer = ChannelSealer(ch.key, ch.id)
        async with ch.consumer(relay.url) as consumer:
            raw = await raw_connect(relay.url, ch.id, "producer", ch.tokens.producer)
            await raw.send(sealer.seal_token("a"))
            await raw.close()  # a clean close, but no FINAL
            assert await consumer.__anext__() == "a"
            with pytest.raises(ChannelClosedError, match="producer gone"):
                await consumer.__anext__()


# ---------------------------------------------------------------------------- limits


async def test_oversized_frame_closes_the_channel_with_a_limit_error() -> None:
    async with relay_server(max_frame_bytes=1_024) as relay:
        ch = Channel()
        async with ch.consumer(relay.url) as consumer, ch.async_producer(relay.url) as producer:
            producer.send("x" * 4_000)  # one 4 kB frame
            with pytest.raises(RelayLimitError, match="4003"):
                await consumer.collect()
            await asyncio.wait_for(producer.wait_cancelled(), 4 * UNIT_S)
            assert "1009" in (producer.cancel_reason or "")


async def test_oversized_frame_for_the_consumer_is_refused_by_the_consumer() -> None:
    async with relay_server() as relay:
        ch = Channel()
        consumer = ch.consumer(relay.url, max_frame_bytes=256)
        async with consumer, ch.async_producer(relay.url) as producer:
            producer.send("y" * 1_000)
            with pytest.raises(RelayLimitError, match="size limit"):
                await consumer.collect()


async def test_pre_consumer_buffer_overflow_is_an_error_to_both_sides() -> None:
    async with relay_server(max_buffered_frames=5) as relay:
        ch = Channel()
        producer = ch.async_producer(relay.url, coalesce_s=0)
        await producer.connect()
        for i in range(10):
            producer.send(f"t{i}")
            await asyncio.sleep(0.005)  # one frame each
        await asyncio.wait_for(producer.wait_cancelled(), 4 * UNIT_S)
        with pytest.raises(RelayLimitError, match="buffer overflow"):
            await producer.finish()
        async with ch.consumer(relay.url) as consumer:
            with pytest.raises(RelayLimitError, match="buffer overflow"):
                await consumer.collect()


async def test_a_flood_of_channels_from_one_client_is_limited() -> None:
    async with relay_server(max_channels_per_client=5, unattended_timeout_s=UNIT_S) as relay:
        producers = [Channel().async_producer(relay.url) for _ in range(6)]
        for producer in producers[:5]:
            await producer.connect()
        with pytest.raises(RelayLimitError, match="HTTP 429"):
            await producers[5].connect()
        for producer in producers[:5]:
            await producer.close()
        await asyncio.sleep(UNIT_S / 5)
        # What they left behind still counts against this client ...
        with pytest.raises(RelayLimitError, match="HTTP 429"):
            await Channel().async_producer(relay.url).connect()
        await asyncio.sleep(1.5 * UNIT_S)
        fresh = Channel().async_producer(relay.url)
        await fresh.connect()  # ... until the relay forgot it
        await fresh.close()


async def test_live_channel_limit_is_refused() -> None:
    async with relay_server(max_channels=2) as relay:
        first, second = Channel().async_producer(relay.url), Channel().async_producer(relay.url)
        await first.connect()
        await second.connect()
        with pytest.raises(RelayUnavailableError, match="HTTP 503"):
            await Channel().async_producer(relay.url).connect()
        await first.close()
        await second.close()


async def test_relay_idle_timeout_closes_both_sides() -> None:
    async with relay_server(idle_timeout_s=UNIT_S) as relay:
        ch = Channel()
        consumer = ch.consumer(relay.url, first_token_timeout_s=None)
        async with consumer, ch.async_producer(relay.url) as producer:
            started = time.monotonic()
            with pytest.raises(RelayLimitError, match="idle"):
                await consumer.collect()
            assert time.monotonic() - started < 4 * UNIT_S
            await asyncio.wait_for(producer.wait_cancelled(), 2 * UNIT_S)
        assert relay.live_channels == 0


# ---------------------------------------------------------------------------- liveness


async def test_first_token_timeout_when_no_producer_comes() -> None:
    async with relay_server() as relay:
        ch = Channel()
        started = time.monotonic()
        async with ch.consumer(relay.url, first_token_timeout_s=UNIT_S) as consumer:
            with pytest.raises(RelayTimeoutError, match="first-token timeout") as info:
                await consumer.collect()
        assert info.value.timeout_s == UNIT_S
        assert UNIT_S <= time.monotonic() - started < 3 * UNIT_S


async def test_idle_timeout_after_the_first_token() -> None:
    async with relay_server() as relay:
        ch = Channel()
        consumer = ch.consumer(relay.url, idle_timeout_s=UNIT_S)
        async with consumer, ch.async_producer(relay.url) as producer:
            producer.send("one")
            assert await consumer.__anext__() == "one"
            with pytest.raises(RelayTimeoutError, match="idle timeout"):
                await consumer.__anext__()
            # The consumer went away, so the worker is told to stop.
            await asyncio.wait_for(producer.wait_cancelled(), 4 * UNIT_S)


async def test_producer_error_reaches_the_consumer() -> None:
    async with relay_server() as relay:
        ch = Channel()

        def worker() -> None:
            with ch.producer(relay.url) as producer:
                producer.send("partial ")
                raise RuntimeError("backend returned HTTP 500")

        async with ch.consumer(relay.url) as consumer:
            thread, errors = run_in_thread(worker)
            assert await consumer.__anext__() == "partial "
            with pytest.raises(ChannelClosedError, match="producer failed: RuntimeError: backend"):
                await consumer.__anext__()
        await asyncio.to_thread(thread.join, 10 * UNIT_S)
        assert len(errors) == 1
        assert isinstance(errors[0], RuntimeError)


_PRODUCER_SCRIPT = """
import sys, time
from langchain_stream.relay import ProducerClient
url, cid, token = sys.argv[1:4]
key = bytes.fromhex(sys.stdin.readline().strip())
with ProducerClient(url, cid, token, key) as producer:
    for i in range(100_000):
        producer.send(f"t{i} ")
        time.sleep(0.02)
"""


async def test_producer_killed_mid_stream_is_reported_to_the_consumer() -> None:
    async with relay_server() as relay:
        ch = Channel()
        consumer = ch.consumer(
            relay.url, first_token_timeout_s=30 * UNIT_S, idle_timeout_s=4 * UNIT_S
        )
        async with consumer:
            args = ["-c", _PRODUCER_SCRIPT, relay.url, ch.id, ch.tokens.producer]
            with killable(args, stdin=ch.key.hex() + "\n") as proc:
                for i in range(3):
                    assert await consumer.__anext__() == f"t{i} "
                proc.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                with pytest.raises(ChannelClosedError, match="producer gone"):
                    async for _ in consumer:
                        pass
                assert time.monotonic() - killed < 4 * UNIT_S


async def test_consumer_cancel_reaches_the_producer() -> None:
    async with relay_server() as relay:
        ch = Channel()
        backend_stopped = threading.Event()
        sent: list[int] = []

        def worker() -> None:
            with ch.producer(relay.url, on_cancel=backend_stopped.set) as producer:
                for i in range(1_000):
                    if producer.cancelled:
                        break
                    producer.send(f"t{i}")
                    sent.append(i)
                    time.sleep(0.01)
                assert producer.cancelled
                assert "consumer cancelled: user pressed stop" in (producer.cancel_reason or "")

        async with ch.consumer(relay.url) as consumer:
            thread, errors = run_in_thread(worker)
            for _ in range(3):
                await consumer.__anext__()
            await consumer.cancel("user pressed stop")
            assert [t async for t in consumer] == []
        assert await asyncio.to_thread(backend_stopped.wait, 4 * UNIT_S)
        await asyncio.to_thread(thread.join, 4 * UNIT_S)
        assert errors == []
        assert len(sent) < 1_000


async def test_consumer_leaving_early_stops_the_producer() -> None:
    async with relay_server() as relay:
        ch = Channel()
        async with ch.async_producer(relay.url) as producer:
            async with ch.consumer(relay.url) as consumer:
                producer.send("first")
                async for _ in consumer:
                    break
            await asyncio.wait_for(producer.wait_cancelled(), 4 * UNIT_S)


_RELAY_SCRIPT = """
import sys
from langchain_stream.relay.server import run_relay
run_relay("127.0.0.1", int(sys.argv[1]), sys.stdin.readline().strip())
"""


async def _wait_until_listening(port: int) -> None:
    deadline = time.monotonic() + 30 * UNIT_S
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise AssertionError("relay subprocess did not start")


async def test_relay_killed_mid_stream_is_a_clear_error() -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    with killable(["-c", _RELAY_SCRIPT, str(port)], stdin=SECRET.decode() + "\n") as relay:
        await _wait_until_listening(port)
        ch = Channel()
        async with ch.consumer(url) as consumer, ch.async_producer(url) as producer:
            producer.send("before")
            assert await consumer.__anext__() == "before"
            relay.send_signal(signal.SIGKILL)
            with pytest.raises(ChannelClosedError, match="connection to the relay lost"):
                await consumer.__anext__()
            await asyncio.wait_for(producer.wait_cancelled(), 4 * UNIT_S)
            with pytest.raises(ChannelClosedError):
                await producer.finish()


async def test_relay_shutdown_mid_stream_is_a_clear_error() -> None:
    relay = RelayServer(SECRET, port=0)
    await relay.start()
    ch = Channel()
    async with ch.consumer(relay.url) as consumer, ch.async_producer(relay.url) as producer:
        producer.send("before")
        assert await consumer.__anext__() == "before"
        await relay.close()
        with pytest.raises(ChannelClosedError, match="relay shutting down"):
            await consumer.__anext__()
        await asyncio.wait_for(producer.wait_cancelled(), 4 * UNIT_S)
    assert relay.live_channels == 0


async def test_failover_to_the_next_relay_when_one_is_down() -> None:
    dead = f"ws://127.0.0.1:{free_port()}"
    async with relay_server() as relay:
        urls = [dead, relay.url]
        ch = Channel()
        while pick_relays(urls, ch.id)[0] != dead:  # a channel whose first choice is down
            ch = Channel()
        async with ch.consumer(urls) as consumer, ch.async_producer(urls) as producer:
            assert consumer.relay_url == producer.relay_url == relay.url
            producer.send("still ")
            producer.send("here")
            await producer.finish()
            assert await consumer.collect() == "still here"
    with pytest.raises(RelayUnavailableError, match="no relay reachable"):
        await Channel().consumer([dead]).connect()


# ---------------------------------------------------------------------------- logs and load


async def test_relay_logs_hold_no_plaintext_and_no_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret_text = ["The launch code ", "is 7-4-1-9 ", "swordfish."]
    async with relay_server() as relay:
        ch = Channel()

        def worker() -> None:
            with ch.producer(relay.url) as producer:
                for token in secret_text:
                    producer.send(token)
                producer.finish()

        async with ch.consumer(relay.url) as consumer:
            thread, _ = run_in_thread(worker)
            assert await consumer.collect() == "".join(secret_text)
        await asyncio.to_thread(thread.join, 10 * UNIT_S)
        # A refused token is logged with its reason, never its value.
        with pytest.raises(RelayAuthError):
            await ConsumerClient(relay.url, ch.id, ch.tokens.producer, ch.key).connect()
    text = caplog.text
    assert "websockets" in text or "relay" in text  # something was captured
    for needle in [*secret_text, "launch", "swordfish", ch.tokens.producer, ch.tokens.consumer]:
        assert needle not in text
    assert ch.key.hex() not in text
    assert "token is for role 'producer', not 'consumer'" in text


async def test_five_hundred_concurrent_streams_lose_and_reorder_nothing() -> None:
    streams, tokens_each = 500, 8
    async with relay_server(max_channels_per_client=None) as relay:

        async def one(n: int) -> list[str]:
            ch = Channel()
            async with ch.consumer(relay.url, first_token_timeout_s=60 * UNIT_S) as consumer:
                async with ch.async_producer(relay.url) as producer:
                    for i in range(tokens_each):
                        producer.send(f"{n}:{i} ")
                        await asyncio.sleep(0.01)
                    await producer.finish({"stream": n})
                    received = [t async for t in consumer]
                assert consumer.usage == {"stream": n}
                return received

        started = time.monotonic()
        results = await asyncio.gather(*(one(n) for n in range(streams)))
        elapsed = time.monotonic() - started
        for n, received in enumerate(results):
            assert received == [f"{n}:{i} " for i in range(tokens_each)]
        assert elapsed < 40 * UNIT_S
        await asyncio.sleep(UNIT_S / 5)
        assert relay.live_channels == 0
