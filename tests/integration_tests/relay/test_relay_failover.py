"""Mid-stream failover with real relays: three relay processes on 127.0.0.2-4, killed with
SIGKILL or stopped with SIGSTOP while an answer streams through them [RP §13]; and the failure
bench, on loopback and (where the machine allows it: Linux, root, iproute2) with each relay in
its own network namespace.

Every wait is a multiple of ``UNIT_S`` (scaled by ``STREAM_TEST_TIME_UNIT_S``); traffic stays
on loopback or on the bench's private veth pairs, and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_stream.bench.netns import PREFIX, remove_stale, why_unavailable
from langchain_stream.errors import ChannelClosedError, RelayAuthError, RelayUnavailableError
from langchain_stream.hpc.local_endpoint import RelayProcess
from langchain_stream.relay import (
    AsyncProducerClient,
    ConsumerClient,
    mint_channel_tokens,
    new_channel_id,
    new_channel_key,
    pick_relays,
)
from langchain_stream.relay.failover import FailoverLimits
from tests.conftest import TIME_UNIT_S

UNIT_S = 0.5 * TIME_UNIT_S
SECRET = "failover-relay-secret-0123456789abcdef"
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(90)

# Quick detection so the tests stay short; the bounds asserted below derive from these.
FAST = FailoverLimits(
    heartbeat_s=UNIT_S,
    progress_timeout_s=3 * UNIT_S,
    resume_timeout_s=6 * UNIT_S,
    ack_interval_s=UNIT_S / 5,
    ack_timeout_s=2 * UNIT_S,
    ping_interval_s=UNIT_S,
    ping_timeout_s=UNIT_S,
)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RelaySet:
    """Three relay processes sharing one token secret, each on its own loopback address."""

    def __init__(self) -> None:
        self.relays = {}
        for host in HOSTS:
            relay = RelayProcess(SECRET, host=host, port=_free_port(host))
            relay.start()
            self.relays[relay.url] = relay

    @property
    def urls(self) -> list[str]:
        return list(self.relays)

    def kill(self, url: str) -> None:
        self.relays[url].kill()

    def signal(self, url: str, sig: signal.Signals) -> None:
        pid = self.relays[url].pid
        assert pid is not None
        os.kill(pid, sig)

    def close(self) -> None:
        for relay in self.relays.values():
            if relay.alive and relay.pid is not None:
                os.kill(relay.pid, signal.SIGCONT)
            relay.kill()


@pytest.fixture(scope="module")
def relay_set() -> Iterator[RelaySet]:
    relays = RelaySet()
    yield relays
    relays.close()


class Stream:
    """One channel over the relay set: a paced producer and a consumer, in this event loop."""

    def __init__(self, urls: list[str], failover: FailoverLimits | None = FAST) -> None:
        self.id = new_channel_id()
        key = new_channel_key()
        tokens = mint_channel_tokens(SECRET, self.id)
        self.tokens = tokens
        self.order = pick_relays(urls, self.id)
        self.producer = AsyncProducerClient(urls, self.id, tokens.producer, key, failover=failover)
        self.consumer = ConsumerClient(
            urls,
            self.id,
            tokens.consumer,
            key,
            first_token_timeout_s=20 * UNIT_S,
            idle_timeout_s=20 * UNIT_S,
            failover=failover,
        )

    async def produce(self, n: int, interval_s: float) -> None:
        await self.producer.connect()
        for i in range(n):
            self.producer.send(f"<{i}>")
            await asyncio.sleep(interval_s)
        await self.producer.finish()

    async def run(self, n: int, interval_s: float, *, after: int, fault: object) -> list[str]:
        """Stream ``n`` tokens; call ``fault()`` once ``after`` of them have arrived."""
        await self.consumer.connect()
        producing = asyncio.create_task(self.produce(n, interval_s))
        got: list[str] = []
        try:
            async for token in self.consumer:
                got.append(token)
                if len(got) == after:
                    fault()  # type: ignore[operator]
        finally:
            await self.consumer.close()
            await asyncio.wait_for(producing, 20 * UNIT_S)
        return got


async def test_sigkill_mid_stream_answer_completes_once_in_order(relay_set: RelaySet) -> None:
    stream = Stream(relay_set.urls)
    first = stream.order[0]
    assert stream.order[0] in relay_set.urls
    got = await stream.run(120, 0.005, after=40, fault=lambda: relay_set.kill(first))
    assert got == [f"<{i}>" for i in range(120)]  # every token, once, in order
    assert stream.consumer.final is not None and stream.consumer.final.tokens == 120
    assert stream.consumer.failovers == 1 and stream.producer.failovers == 1
    assert stream.consumer.relay_url == stream.order[1] == stream.producer.relay_url
    [gap] = stream.consumer.failover_gaps_s
    assert gap < 2 * UNIT_S  # a killed relay closes its sockets: noticed at once
    # The relays share the secret: the same tokens opened the channel on the second relay, and
    # after the end they open nothing there.
    with pytest.raises(RelayAuthError, match="HTTP 403"):
        await ConsumerClient(stream.order[1], stream.id, stream.tokens.consumer, None).connect()
    relay_set.relays[first] = _restart(relay_set.relays.pop(first))


def _restart(dead: RelayProcess) -> RelayProcess:
    relay = RelayProcess(dead.secret, host=dead.host, port=dead.port)
    relay.start()
    return relay


async def test_stopped_relay_is_noticed_by_ping_within_the_bound(relay_set: RelaySet) -> None:
    """SIGSTOP: the relay's sockets stay open but nothing moves, not even pongs. The progress
    and ACK timeouts are long here, so only the pings can notice it in time."""
    by_ping = dataclasses.replace(
        FAST, progress_timeout_s=8 * UNIT_S, ack_timeout_s=8 * UNIT_S, resume_timeout_s=10 * UNIT_S
    )
    bound_s = by_ping.ping_bound_s
    assert bound_s is not None and bound_s + 2 * UNIT_S < by_ping.progress_timeout_s
    stream = Stream(relay_set.urls, failover=by_ping)
    first = stream.order[0]
    try:
        got = await stream.run(
            60, 0.01, after=20, fault=lambda: relay_set.signal(first, signal.SIGSTOP)
        )
    finally:
        relay_set.signal(first, signal.SIGCONT)
    assert got == [f"<{i}>" for i in range(60)]
    # One move each: the producer does not hang on the relay it left, so the stream does not
    # stall again on the next one.
    assert stream.consumer.failovers == 1 and stream.producer.failovers == 1
    [gap] = stream.consumer.failover_gaps_s
    # Silence for ping_interval_s, a ping unanswered for ping_timeout_s, then at once the next
    # relay (no wait for the stopped one's close); slack for the reconnection on a busy machine.
    assert gap < bound_s + 2 * UNIT_S


async def test_a_stopped_relay_next_in_line_costs_one_dial_timeout(relay_set: RelaySet) -> None:
    """The relay a channel fails over to is itself stopped: each side gives up on it after
    ``dial_timeout_s`` and meets the other on the third relay."""
    limits = dataclasses.replace(FAST, dial_timeout_s=2 * UNIT_S)
    stream = Stream(relay_set.urls, failover=limits)
    first, second, third = stream.order
    relay_set.signal(second, signal.SIGSTOP)
    try:
        got = await stream.run(120, 0.005, after=40, fault=lambda: relay_set.kill(first))
    finally:
        relay_set.signal(second, signal.SIGCONT)
        relay_set.relays[first] = _restart(relay_set.relays.pop(first))
    assert got == [f"<{i}>" for i in range(120)]
    assert stream.consumer.relay_url == third == stream.producer.relay_url
    [gap] = stream.consumer.failover_gaps_s
    assert limits.dial_timeout_s <= gap < limits.dial_timeout_s + 2 * UNIT_S


async def test_stalled_relay_is_noticed_by_progress_and_ack_timeouts(relay_set: RelaySet) -> None:
    """Without pings, only the consumer's progress timeout and the producer's ACK timeout can
    tell that a relay which keeps its connections open forwards nothing."""
    quiet = FailoverLimits(
        heartbeat_s=UNIT_S,
        progress_timeout_s=2 * UNIT_S,
        resume_timeout_s=4 * UNIT_S,
        ack_interval_s=UNIT_S / 5,
        ack_timeout_s=2 * UNIT_S,
        ping_interval_s=None,
        ping_timeout_s=None,
    )
    stream = Stream(relay_set.urls, failover=quiet)
    first = stream.order[0]
    try:
        got = await stream.run(
            60, 0.01, after=20, fault=lambda: relay_set.signal(first, signal.SIGSTOP)
        )
    finally:
        relay_set.signal(first, signal.SIGCONT)
    assert got == [f"<{i}>" for i in range(60)]
    [gap] = stream.consumer.failover_gaps_s
    assert quiet.progress_timeout_s <= gap < quiet.progress_timeout_s + quiet.ack_timeout_s * 2


async def test_every_relay_down_is_a_clear_error_and_nothing_hangs() -> None:
    relays = RelaySet()
    try:
        stream = Stream(relays.urls)

        def kill_all() -> None:
            for url in relays.urls:
                relays.kill(url)

        started = time.monotonic()
        with pytest.raises(RelayUnavailableError, match="no relay reachable"):
            await stream.run(200, 0.005, after=10, fault=kill_all)
        assert time.monotonic() - started < 10 * UNIT_S
        assert stream.producer.cancelled
    finally:
        relays.close()


async def test_without_failover_a_killed_relay_loses_the_answer(relay_set: RelaySet) -> None:
    """The comparison: with failover off, the same fault ends the answer with an error."""
    stream = Stream(relay_set.urls, failover=None)
    first = stream.order[0]
    with pytest.raises(ChannelClosedError):
        await stream.run(120, 0.005, after=40, fault=lambda: relay_set.kill(first))
    relay_set.relays[first] = _restart(relay_set.relays.pop(first))


@pytest.mark.timeout(120)
def test_the_failure_bench_counts_every_token(tmp_path: Path) -> None:
    """`stream bench relay --relays 3 --kill-every S`, small: a kill and a partition while four
    answers stream, every token accounted for, and the plot drawn."""
    plot = tmp_path / "failover.png"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "langchain_stream.cli",
            "bench",
            "relay",
            "--relays",
            "3",
            "--kill-every",
            "1",
            "--kills",
            "1",
            "--partition-s",
            "0.5",
            "--streams",
            "4",
            "--tokens",
            "240",
            "--generators",
            "1",
            "--isolation",
            "loopback",
            "--plot",
            str(plot),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert (result["isolation"], result["partition"]) == ("loopback", "stalled")
    assert (result["relay_kills"], result["partitions"]) == (1, 1)
    assert result["faults_inside_streams"]
    assert (result["lost"], result["duplicated"], result["reordered"]) == (0, 0, 0)
    assert result["received"] == result["tokens"] == 4 * 240
    assert result["failovers"] >= 1 and result["failed_streams"] == 0
    assert plot.stat().st_size > 10_000


def test_the_failure_bench_refuses_faults_that_outlast_the_answers() -> None:
    run = subprocess.run(
        [
            sys.executable,
            *("-m", "langchain_stream.cli", "bench", "relay"),
            "--kill-every",
            "5",
            "--tokens",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 2  # a usage error
    assert "the faults would outlast the streams" in run.stderr
    assert "Traceback" not in run.stderr


# A few seconds of streams: 4 answers of 100 tokens at 20 tokens/s, one kill and one partition.
SHORT_BENCH = (
    *("-m", "langchain_stream.cli", "bench", "relay", "--relays", "3"),
    *("--kill-every", "1", "--kills", "1", "--partition-s", "0.8"),
    *("--streams", "4", "--tokens", "100", "--generators", "1"),
)
NETNS_UNAVAILABLE = why_unavailable()
needs_netns = pytest.mark.skipif(
    NETNS_UNAVAILABLE is not None,
    reason=f"the bench's network namespaces cannot be set up here: {NETNS_UNAVAILABLE}",
)


def _bench_namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listing.stdout.splitlines() if line.startswith(PREFIX)}


def _links() -> set[str]:
    listing = subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True
    )
    return {link["ifname"] for link in json.loads(listing.stdout)}


@needs_netns
@pytest.mark.timeout(60)
def test_the_failure_bench_in_network_namespaces_drops_a_relays_packets(tmp_path: Path) -> None:
    """`--isolation netns`: each relay in its own namespace behind a veth pair; the partition
    drops its traffic (the relay keeps running); every token is still counted once, in order,
    and the namespaces and their veth pairs are gone afterwards."""
    plot = tmp_path / "failover.png"
    run = subprocess.run(
        [sys.executable, *SHORT_BENCH, "--isolation", "netns", "--plot", str(plot), "--json"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert (result["isolation"], result["partition"]) == ("netns", "dropped")
    assert result["isolation_note"] is None
    assert (result["relay_kills"], result["partitions"]) == (1, 1)
    assert (result["lost"], result["duplicated"], result["reordered"]) == (0, 0, 0)
    assert result["received"] == result["tokens"] == 4 * 100
    assert result["failovers"] >= 1 and result["failed_streams"] == 0
    assert plot.stat().st_size > 10_000
    # Three namespaces, each relay on a private veth address of its own.
    namespaces = result["config"]["namespaces"]
    assert len(namespaces) == 3 and all(ns.startswith(f"{PREFIX}-") for ns in namespaces)
    hosts = [url.split("//")[1].split(":")[0] for url in result["config"]["relay_urls"]]
    assert len(set(hosts)) == 3
    assert all(ipaddress.ip_address(h) in ipaddress.ip_network("10.192.0.0/10") for h in hosts)
    run_id = namespaces[0].split("-")[2]
    assert not _bench_namespaces() & set(namespaces)
    assert not {link for link in _links() if run_id in link}


@needs_netns
@pytest.mark.timeout(60)
def test_the_failure_bench_removes_its_namespaces_on_ctrl_c() -> None:
    bench = subprocess.Popen(
        [sys.executable, *SHORT_BENCH, "--isolation", "netns", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        # A shell without job control starts its background jobs with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    mine = f"{PREFIX}-{bench.pid}-"
    try:
        deadline = time.monotonic() + 30 * TIME_UNIT_S
        while len({ns for ns in _bench_namespaces() if ns.startswith(mine)}) < 3:
            assert bench.poll() is None, "the bench ended before its namespaces were up"
            assert time.monotonic() < deadline, "the bench's namespaces did not come up"
            time.sleep(0.1)
        time.sleep(2)  # the streams are running
        bench.send_signal(signal.SIGINT)
        _, err = bench.communicate(timeout=30)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 130, err[-2000:]
    assert not {ns for ns in _bench_namespaces() if ns.startswith(mine)}


@needs_netns
@pytest.mark.timeout(30)
def test_a_crashed_runs_namespaces_are_removed_by_the_next_run() -> None:
    """What a run killed outright leaves (its namespace, a veth pair not yet moved into it) is
    removed before the next run sets up its own; a live run's namespaces are left alone."""
    dead = subprocess.Popen(["true"])  # its process id no longer runs once it is waited for
    dead.wait()
    run_id = secrets.token_hex(3)
    stale = f"{PREFIX}-{dead.pid}-{run_id}-0"
    live = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}-0"
    stray = (f"lsb{run_id}h1", f"lsb{run_id}n1")
    subprocess.run(["ip", "netns", "add", stale], check=True)
    subprocess.run(["ip", "netns", "add", live], check=True)
    try:
        subprocess.run(
            ["ip", "link", "add", stray[0], "type", "veth", "peer", "name", stray[1]], check=True
        )
        removed = remove_stale()
        assert stale in removed and set(stray) & set(removed)  # either end takes the pair
        assert stale not in _bench_namespaces() and live in _bench_namespaces()
        assert not set(stray) & _links()
    finally:
        for ns in (stale, live):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", stray[0]], capture_output=True, check=False)


@pytest.mark.timeout(60)
def test_without_namespaces_the_bench_says_why_and_falls_back_to_loopback() -> None:
    """No `ip` on the PATH (as on a machine without iproute2): auto runs on loopback and says
    why; `--isolation netns` is refused with the reason, before anything starts."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": "/nonexistent"}
    auto = subprocess.run(
        [sys.executable, *SHORT_BENCH, "--json"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
        env=env,
    )
    assert auto.returncode == 0, auto.stderr[-2000:]
    result = json.loads(auto.stdout.strip().splitlines()[-1])
    assert (result["isolation"], result["partition"]) == ("loopback", "stalled")
    assert "cannot be set up here" in result["isolation_note"]
    assert result["isolation_note"] in auto.stderr  # said on the terminal too
    assert (result["lost"], result["duplicated"], result["reordered"]) == (0, 0, 0)
    netns = subprocess.run(
        [sys.executable, *SHORT_BENCH, "--isolation", "netns"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
    )
    assert netns.returncode == 2  # a usage error
    assert "--isolation netns: network namespaces cannot be set up here" in netns.stderr
    assert "Traceback" not in netns.stderr
