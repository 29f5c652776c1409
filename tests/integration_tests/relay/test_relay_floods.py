"""Floods against a real relay process on loopback, from one address or spread over several.

The relay runs in its own process (:class:`RelayProcess`), so its memory is measured from
``/proc``. Flooders bind 127.0.0.2 and up (loopback too, on Linux); legitimate clients use
127.0.0.1. Every flood is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from langchain_stream.hpc.local_endpoint import RelayProcess
from langchain_stream.relay import (
    AsyncProducerClient,
    ConsumerClient,
    channel_url,
    mint_channel_tokens,
    mint_token,
    new_channel_id,
    new_channel_key,
)
from tests.conftest import TIME_UNIT_S

UNIT_S = 0.5 * TIME_UNIT_S
MIB = 1_048_576
FRAME = b"\x01\x01" + bytes(65_000 - 2)  # looks like a DATA frame; the relay never opens it

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="127.0.0.2+ and /proc"),
]


@contextlib.contextmanager
def relay_process(**limits: Any) -> Iterator[RelayProcess]:
    relay = RelayProcess(**limits)
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int:
    """Resident memory (``VmRSS``) or its peak (``VmHWM``) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1_024
    raise AssertionError(f"no {field_name} for process {pid}")


async def flood_connection(relay: RelayProcess, source: str, *, payload_bytes: int = 0) -> bool:
    """One flooding producer from ``source``: connect, send ``payload_bytes``, leave without
    FINAL. Returns whether the relay let it in."""
    channel_id = new_channel_id()
    token = mint_token(relay.secret, channel_id, "producer")
    try:
        ws = await connect(
            channel_url(relay.url, channel_id, "producer"),
            additional_headers={"Authorization": f"Bearer {token}"},
            local_addr=(source, 0),
            compression=None,
            open_timeout=10 * UNIT_S,
        )
    except InvalidStatus:
        return False
    with contextlib.suppress(WebSocketException, OSError):
        for _ in range(payload_bytes // len(FRAME)):
            await ws.send(FRAME)
    with contextlib.suppress(WebSocketException, OSError):
        await ws.close()
    return True


async def flood(
    relay: RelayProcess,
    sources: list[str],
    *,
    connections: int,
    within_s: float,
    workers: int = 8,
    payload_bytes: int = 0,
) -> int:
    """``connections`` flooding producers spread over ``sources``, at most ``within_s`` long.
    Returns how many were let in."""
    deadline = time.monotonic() + within_s
    next_index = iter(range(connections))
    admitted = 0

    async def worker() -> None:
        nonlocal admitted
        for i in next_index:
            if time.monotonic() > deadline:
                return
            source = sources[i % len(sources)]
            let_in = await flood_connection(relay, source, payload_bytes=payload_bytes)
            admitted += let_in  # after the await: ``+= await`` would read a stale count

    await asyncio.gather(*(worker() for _ in range(workers)))
    return admitted


async def round_trip(url: str, secret: str) -> bool:
    """One legitimate request from 127.0.0.1: consumer and producer meet, three tokens, FINAL."""
    channel_id, key = new_channel_id(), new_channel_key()
    tokens = mint_channel_tokens(secret, channel_id)
    words = ["legit ", "round ", "trip"]
    try:
        consumer = ConsumerClient(
            url, channel_id, tokens.consumer, key, first_token_timeout_s=20 * UNIT_S
        )
        async with consumer, AsyncProducerClient(url, channel_id, tokens.producer, key) as p:
            for word in words:
                p.send(word)
            await p.finish({"n": 3})
            return await consumer.collect() == "".join(words)
    except Exception:
        return False


@dataclass
class FloodReport:
    """What a flood did to a relay and to the legitimate traffic beside it."""

    flood_admitted: int = 0
    flood_seconds: float = 0.0
    round_trips: list[bool] = field(default_factory=list)
    rss_before: int = 0
    rss_peak: int = 0

    @property
    def success_rate(self) -> float:
        return sum(self.round_trips) / max(len(self.round_trips), 1)


async def flood_beside_legitimate_traffic(
    relay: RelayProcess,
    sources: list[str],
    *,
    connections: int,
    within_s: float,
    payload_bytes: int = 0,
    settle_s: float = 0.0,
) -> FloodReport:
    """Run a flood and, meanwhile and after it, legitimate round trips; sample the relay's RSS."""
    assert relay.pid is not None
    report = FloodReport(rss_before=rss_bytes(relay.pid))
    done = asyncio.Event()

    async def legitimate() -> None:
        while not done.is_set():
            report.round_trips.append(await round_trip(relay.url, relay.secret))
            report.rss_peak = max(report.rss_peak, rss_bytes(relay.pid))  # type: ignore[arg-type]
            await asyncio.sleep(0.05)

    legit = asyncio.create_task(legitimate())
    started = time.monotonic()
    report.flood_admitted = await flood(
        relay, sources, connections=connections, within_s=within_s, payload_bytes=payload_bytes
    )
    report.flood_seconds = time.monotonic() - started
    await asyncio.sleep(settle_s)
    done.set()
    await legit
    # After the flood, with everything it left behind still held, a request still gets through.
    report.round_trips.append(await round_trip(relay.url, relay.secret))
    report.rss_peak = max(report.rss_peak, rss_bytes(relay.pid, "VmHWM"))
    return report


# ---------------------------------------------------------------------------- the tests


async def test_a_connect_and_close_flood_from_one_address_locks_no_one_else_out() -> None:
    # A small relay, so that the flood could fill it many times over.
    with relay_process(max_channels=100, max_channels_per_client=20) as relay:
        report = await flood_beside_legitimate_traffic(
            relay, ["127.0.0.2"], connections=400, within_s=20 * UNIT_S
        )
    assert len(report.round_trips) >= 2
    assert report.success_rate == 1.0
    # Its own quota, counting what it left behind, renewed only as the relay forgets that
    # (the unattended timeout, 10 s by default).
    assert 20 <= report.flood_admitted <= 20 * (1 + int(report.flood_seconds // 10))


# Frames in flight on the flood's open connections (read ahead by websockets, up to 1 MiB each)
# and the interpreter's own growth come on top of what the relay buffers.
IN_FLIGHT_MARGIN = 32 * MIB


async def test_buffered_bytes_stay_bounded_under_a_departed_producer_flood() -> None:
    # Each flooder sends 1 MiB and leaves; 96 of them from one address would hold 96 MiB.
    with relay_process() as relay:
        report = await flood_beside_legitimate_traffic(
            relay, ["127.0.0.2"], connections=96, within_s=40 * UNIT_S, payload_bytes=MIB
        )
    assert report.success_rate == 1.0
    # The default per-address quota is 16 MiB.
    assert report.rss_peak - report.rss_before < 16 * MIB + IN_FLIGHT_MARGIN


async def test_spreading_a_departed_producer_flood_over_addresses_meets_the_ceiling() -> None:
    sources = [f"127.0.0.{host}" for host in range(2, 10)]
    with relay_process(max_buffered_bytes_per_client=4 * MIB, max_buffered_bytes_total=8 * MIB) as (
        relay
    ):
        report = await flood_beside_legitimate_traffic(
            relay, sources, connections=96, within_s=40 * UNIT_S, payload_bytes=MIB
        )
    assert report.success_rate == 1.0
    assert report.rss_peak - report.rss_before < 8 * MIB + IN_FLIGHT_MARGIN


async def bad_token_attempt(relay: RelayProcess, source: str, token: str) -> int:
    """One producer connection from ``source`` with ``token``; the HTTP status of the refusal
    (101 when it was let in)."""
    channel_id = new_channel_id()
    try:
        ws = await connect(
            channel_url(relay.url, channel_id, "producer"),
            additional_headers={"Authorization": f"Bearer {token}"},
            local_addr=(source, 0),
            open_timeout=10 * UNIT_S,
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_an_address_presenting_bad_tokens_is_refused_early_and_others_are_not() -> None:
    guesses, threshold = 300, 20
    with relay_process(max_failed_auth_per_client=threshold, failed_auth_window_s=60) as relay:
        forged = mint_token("another-secret-of-32-bytes-------", new_channel_id(), "producer")
        started = time.monotonic()
        statuses = [
            await bad_token_attempt(relay, "127.0.0.2", forged + "x" * (n % 3))
            for n in range(guesses)
        ]
        elapsed = time.monotonic() - started
        # Refused before its token is checked: a valid one from that address too.
        channel_id = new_channel_id()
        valid = mint_token(relay.secret, channel_id, "producer")
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                channel_url(relay.url, channel_id, "producer"),
                additional_headers={"Authorization": f"Bearer {valid}"},
                local_addr=("127.0.0.2", 0),
            )
        # Other addresses still get through.
        round_trips = [await round_trip(relay.url, relay.secret) for _ in range(3)]
    assert statuses[:threshold] == [403] * threshold
    assert statuses[threshold:] == [429] * (guesses - threshold)
    assert refused.value.response.status_code == 429
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 60
    assert round_trips == [True, True, True]
    print(f"{guesses} bad tokens from 127.0.0.2 in {elapsed:.2f} s")
