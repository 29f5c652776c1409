"""``stream bench relay --relays 3 --kill-every S``: answers streaming through relays that die.

Three relay processes (this package's relay) share one token secret, each on its own address
(distinct hosts for the rendezvous order). ``isolation`` says how they are kept apart:

- ``netns``: each relay in its own network namespace, reached from the root namespace over a
  veth pair on a private address (:mod:`langchain_stream.bench.netns`; Linux, root, iproute2);
  the partition drops every packet to and from one relay on its link (``"partition":
  "dropped"``): a cut network, its connections neither refused nor reset, the relay running.
- ``loopback``: each relay on its own loopback address (127.0.0.2, .3, .4); the partition stops
  the relay with SIGSTOP, so that its kernel keeps its connections open and ACKs what it is sent
  while it forwards nothing (``"partition": "stalled"``).
- ``auto`` (the default): ``netns`` when the namespaces can be set up (tried, and the partition
  too), else ``loopback`` with the reason in ``isolation_note``.

``streams`` concurrent streams of ``tokens`` tokens at ``rate`` tokens/s run through them while,
every ``kill_every_s`` seconds, one relay is killed with SIGKILL and restarted on the same
address (in the same namespace), and then one relay is partitioned for ``partition_s``. Every
token is numbered, so the consumer side counts what was lost, duplicated or reordered; each
failover's gap is the time from the last frame on the lost relay to the first new frame on the
next one [RP §13].

Run it with failover on and off (``--no-failover``) to compare.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import multiprocessing
import secrets
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_stream.bench.netns import Namespaces, NetnsUnavailableError
from langchain_stream.bench.stats import machine, tail
from langchain_stream.errors import ConfigurationError, RelayError, RelayUnavailableError
from langchain_stream.relay import (
    AsyncProducerClient,
    ConsumerClient,
    mint_channel_tokens,
    new_channel_id,
    new_channel_key,
)
from langchain_stream.relay.failover import FailoverLimits

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
NETNS_PORT = 8700  # each namespace has its own ports: the same one for every relay
ISOLATIONS = ("netns", "loopback", "auto")

BENCH_FAILOVER = FailoverLimits(
    heartbeat_s=0.25,
    progress_timeout_s=0.8,
    resume_timeout_s=3.0,
    ack_interval_s=0.25,
    ack_timeout_s=0.8,
    ping_interval_s=0.15,
    ping_timeout_s=0.25,
)
"""Detection tuned for relays on one machine: a relay silent for 0.15 s (three token periods) is
pinged, and one that does not answer within 0.25 s more is left, so a stopped relay is noticed
within 0.4 s of the last thing it sent. The progress and ACK timeouts (0.8 s) are the backstop
for a relay that answers pings but forwards nothing: tighter, on a busy machine, they would
mistake a late frame for a stall, and each needless move costs a relay the channel cannot
return to (it ended there)."""


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# A relay as ``stream relay`` runs one, with the per-client limits off (all load comes from
# one address); the fewest imports, so that a restart is quick.
_RELAY_MAIN = (
    "import sys\n"
    "from langchain_stream.relay.limits import RelayLimits\n"
    "from langchain_stream.relay.server import run_relay\n"
    "run_relay(sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(),"
    " limits=RelayLimits(max_channels_per_client=None))\n"
)


class _Relay:
    """One relay process on its own address, restartable on the same port (``prefix`` runs
    it inside its namespace)."""

    def __init__(self, host: str, port: int, secret: str, prefix: list[str]) -> None:
        self.host, self.port, self._prefix = host, port, prefix
        self._args = [host, str(port), secret]
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        # `ip netns exec` enters the namespace and execs the command: the process is the relay.
        self._proc = subprocess.Popen(
            [*self._prefix, sys.executable, "-c", _RELAY_MAIN, *self._args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1):
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RelayUnavailableError(f"relay {self.url} did not start")

    def signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()


class _Relays:
    """The relay set: start, kill and restart, partition and heal, by address. With ``net``
    each relay runs in its namespace, else on a loopback address."""

    def __init__(self, count: int, secret: str, net: Namespaces | None = None) -> None:
        if not 2 <= count <= len(HOSTS):
            raise ConfigurationError(f"--relays must be between 2 and {len(HOSTS)}")
        self._net = net
        if net is None:
            self.procs = [_Relay(h, _free_port(h), secret, []) for h in HOSTS[:count]]
        else:
            self.procs = [
                _Relay(site.relay_addr, NETNS_PORT, secret, net.exec_prefix(i))
                for i, site in enumerate(net.sites[:count])
            ]
        self.down: set[int] = set()
        try:
            for relay in self.procs:
                relay.start()
        except BaseException:
            self.close()
            raise

    @property
    def isolation(self) -> str:
        return "loopback" if self._net is None else "netns"

    @property
    def partition_kind(self) -> str:
        """What a partition does: ``dropped`` (packets dropped on the link) or ``stalled``
        (the relay stopped, its kernel still accepting and ACKing)."""
        return "stalled" if self._net is None else "dropped"

    @property
    def urls(self) -> list[str]:
        return [relay.url for relay in self.procs]

    def kill_and_restart(self, i: int, down_s: float) -> None:
        self.down.add(i)  # (already, by the caller, so the next fault waits for this one)
        try:
            self.procs[i].kill()
            time.sleep(down_s)
            self.procs[i].start()
        finally:
            self.down.discard(i)

    def partition(self, i: int, duration_s: float) -> None:
        if self._net is not None:
            self._net.drop(i)
        else:
            self.procs[i].signal(signal.SIGSTOP)
        try:
            time.sleep(duration_s)
        finally:
            if self._net is not None:
                self._net.restore(i)
            else:
                self.procs[i].signal(signal.SIGCONT)

    def close(self) -> None:
        for relay in self.procs:
            relay.signal(signal.SIGCONT)
            relay.kill()


@dataclass
class _Outcome:
    received: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    gaps_s: list[float] = field(default_factory=list)
    error: str | None = None
    failovers: int = 0
    resent: int = 0
    window_bytes_max: int = 0


async def _stream(
    urls: list[str],
    secret: str,
    tokens: int,
    rate: float,
    failover: FailoverLimits | None,
) -> _Outcome:
    cid, key = new_channel_id(), new_channel_key()
    pair = mint_channel_tokens(secret, cid)
    out = _Outcome()
    producer = AsyncProducerClient(urls, cid, pair.producer, key, failover=failover)
    consumer = ConsumerClient(
        urls,
        cid,
        pair.consumer,
        key,
        first_token_timeout_s=30,
        idle_timeout_s=10,
        failover=failover,
    )

    async def produce() -> None:
        await producer.connect()
        start = time.monotonic()
        for i in range(tokens):
            if producer.cancelled:
                return
            producer.send(f"{i} ")
            out.window_bytes_max = max(out.window_bytes_max, producer.unacked_bytes)
            await asyncio.sleep(max(start + (i + 1) / rate - time.monotonic(), 0.0))
        await producer.finish()

    try:
        await consumer.connect()
        task = asyncio.create_task(produce())
        try:
            async for token in consumer:
                out.received.append(int(token))
                out.arrivals.append(time.monotonic())
        finally:
            await consumer.close()
            with contextlib.suppress(RelayError, TimeoutError):
                await asyncio.wait_for(task, 10)
            if not task.done():
                task.cancel()
    except RelayError as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    with contextlib.suppress(RelayError):
        await producer.close()
    out.gaps_s = consumer.failover_gaps_s
    out.failovers = consumer.failovers
    out.resent = producer.resent_frames
    return out


async def _faults(
    relays: _Relays, kill_every_s: float, kills: int, partition_s: float, log: list[dict[str, Any]]
) -> None:
    """Kill one relay every ``kill_every_s`` (restarting it in the background), then partition
    the next one. Like a rolling restart, no fault starts while a killed relay is still coming
    back, so all relays but one stay up; the next fault comes ``kill_every_s`` after that."""
    t0 = time.monotonic()
    n = len(relays.procs)
    pending = []
    for k in range(kills + 1):
        await asyncio.sleep(kill_every_s)
        while relays.down:  # noqa: ASYNC110 - set by a thread; polled a few times per fault
            await asyncio.sleep(0.05)
        i = k % n
        entry: dict[str, Any] = {"at_s": round(time.monotonic() - t0, 3), "relay": i}
        log.append(entry)
        if k < kills:
            entry["fault"] = "kill"
            relays.down.add(i)

            async def restart(i: int = i, entry: dict[str, Any] = entry) -> None:
                await asyncio.to_thread(relays.kill_and_restart, i, 0.2)
                entry["back_at_s"] = round(time.monotonic() - t0, 3)

            pending.append(asyncio.create_task(restart()))
        else:
            entry["fault"] = "partition"
            pending.append(asyncio.create_task(asyncio.to_thread(relays.partition, i, partition_s)))
    await asyncio.gather(*pending)


def _count(received: list[int], tokens: int) -> tuple[int, int, int]:
    """(lost, duplicated, reordered) of one stream's received token numbers."""
    unique = set(received)
    lost = tokens - len(unique & set(range(tokens)))
    duplicated = len(received) - len(unique)
    reordered = sum(1 for a, b in itertools.pairwise(received) if b < a)
    return lost, duplicated, reordered


def _stalls_by_fault(
    outcomes: list[_Outcome], t0: float, rate: float, faults: list[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """The answers' pauses as a reader sees them, by the fault they began at.

    A pause is an interval between two tokens of one stream longer than three token periods;
    it belongs to a fault that struck within 0.3 s of its start ("other" if none did).
    """
    pauses: dict[str, list[float]] = collections.defaultdict(list)
    for out in outcomes:
        for a, b in itertools.pairwise(out.arrivals):
            if b - a <= 3 / rate:
                continue
            kinds = [f["fault"] for f in faults if abs(f["at_s"] - (a - t0)) <= 0.3]
            pauses[kinds[0] if kinds else "other"].append(b - a)
    return {kind: {**tail(v, scale=1000), "count": len(v)} for kind, v in sorted(pauses.items())}


def _warm() -> None:
    """Nothing: running it in a generator process imports this module and the clients."""


def _generate(
    urls: list[str],
    secret: str,
    streams: int,
    tokens: int,
    rate: float,
    failover: FailoverLimits | None,
) -> list[_Outcome]:
    """One load-generator process: ``streams`` concurrent streams on its own event loop."""

    async def main() -> list[_Outcome]:
        return list(
            await asyncio.gather(
                *(_stream(urls, secret, tokens, rate, failover) for _ in range(streams))
            )
        )

    return asyncio.run(main())


async def _run(
    relays: _Relays,
    secret: str,
    streams: int,
    tokens: int,
    rate: float,
    kill_every_s: float,
    kills: int,
    partition_s: float,
    failover: bool,
    generators: int,
    isolation_note: str | None,
) -> dict[str, Any]:
    limits = BENCH_FAILOVER if failover else None
    faults: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    shares = [streams // generators + (i < streams % generators) for i in range(generators)]
    pool = ProcessPoolExecutor(generators, mp_context=multiprocessing.get_context("spawn"))
    try:
        # Warm the generator processes (this module and the clients load) before the clock.
        await asyncio.gather(*(loop.run_in_executor(pool, _warm) for _ in shares))
        t0 = time.monotonic()
        injector = asyncio.create_task(_faults(relays, kill_every_s, kills, partition_s, faults))
        batches = await asyncio.gather(
            *(
                loop.run_in_executor(pool, _generate, relays.urls, secret, n, tokens, rate, limits)
                for n in shares
                if n
            )
        )
        outcomes = [out for batch in batches for out in batch]
        with contextlib.suppress(Exception):
            await injector
        elapsed = time.monotonic() - t0
    finally:
        pool.shutdown()
    timeline = [t for out in outcomes for t in out.arrivals]
    lost = duplicated = reordered = 0
    for out in outcomes:
        counts = _count(out.received, tokens)
        lost, duplicated, reordered = (
            lost + counts[0],
            duplicated + counts[1],
            reordered + counts[2],
        )
    gaps = [g for out in outcomes for g in out.gaps_s]
    buckets = [0] * (int(elapsed * 2) + 1)
    for t in timeline:
        buckets[min(int((t - t0) * 2), len(buckets) - 1)] += 1
    errors = sorted({out.error for out in outcomes if out.error})[:5]
    return {
        "failover": failover,
        "isolation": relays.isolation,
        "partition": relays.partition_kind,
        "isolation_note": isolation_note,
        "streams": streams,
        "tokens": streams * tokens,
        "received": sum(len(out.received) for out in outcomes),
        "lost": lost,
        "duplicated": duplicated,
        "reordered": reordered,
        "relay_kills": sum(1 for f in faults if f["fault"] == "kill"),
        "partitions": sum(1 for f in faults if f["fault"] == "partition"),
        "faults_inside_streams": all(f["at_s"] + 1 < tokens / rate for f in faults),
        "failover_gap_ms": tail(gaps, scale=1000),
        "failovers": sum(out.failovers for out in outcomes),
        "streams_by_failovers": dict(
            sorted(collections.Counter(out.failovers for out in outcomes).items())
        ),
        "pauses_ms_by_fault": _stalls_by_fault(outcomes, t0, rate, faults),
        "failed_streams": sum(1 for out in outcomes if out.error),
        "errors": errors,
        "resent_frames": sum(out.resent for out in outcomes),
        "resend_window_bytes_max": max((out.window_bytes_max for out in outcomes), default=0),
        "faults": faults,
        "tokens_per_s_by_half_second": [2 * b for b in buckets],
        "elapsed_s": round(elapsed, 2),
        "config": {
            "relays": len(relays.procs),
            "relay_urls": relays.urls,
            "rate": rate,
            "tokens_per_stream": tokens,
            "kill_every_s": kill_every_s,
            "partition_s": partition_s,
            "generators": generators,
            "limits": asdict(BENCH_FAILOVER) if failover else None,
        },
        "machine": machine(),
    }


def run_failover_bench(
    *,
    streams: int = 50,
    tokens: int = 500,
    rate: float = 20.0,
    relays: int = 3,
    kill_every_s: float = 3.0,
    kills: int = 3,
    partition_s: float = 2.0,
    failover: bool = True,
    generators: int = 2,
    isolation: str = "auto",
) -> dict[str, Any]:
    """Run the failover bench once; see the module docstring. Returns the JSON result.

    The faults must fall inside the streams' lifetime (``tokens / rate`` seconds): with the
    defaults, kills from 3 s on, each at least 3 s after the last and once the killed relay is
    back, and the partition after them, in 25-second answers. The result says when each fault
    struck and whether all fell inside the streams (``faults_inside_streams``).

    ``isolation="netns"`` on a machine that does not allow it is a ``ConfigurationError`` saying
    why; ``"auto"`` falls back to loopback and says why in ``isolation_note``. The namespaces
    are removed whatever happens (an error, Ctrl-C), the relays killed first.
    """
    if isolation not in ISOLATIONS:
        raise ConfigurationError(f"--isolation must be one of {', '.join(ISOLATIONS)}")
    if not 2 <= relays <= len(HOSTS):
        raise ConfigurationError(f"--relays must be between 2 and {len(HOSTS)}")
    if (kills + 1) * kill_every_s + partition_s > tokens / rate:
        raise ConfigurationError(
            "the faults would outlast the streams: raise --tokens or lower --kill-every"
        )
    secret = secrets.token_hex(32)
    note: str | None = None
    with contextlib.ExitStack() as cleanup:
        net: Namespaces | None = None
        if isolation != "loopback":
            try:
                net = cleanup.enter_context(Namespaces(relays))
            except NetnsUnavailableError as exc:
                if isolation == "netns":
                    raise ConfigurationError(
                        f"--isolation netns: network namespaces cannot be set up here: {exc}"
                    ) from None
                note = f"loopback: network namespaces cannot be set up here: {exc}"
        relay_set = _Relays(relays, secret, net)
        cleanup.callback(relay_set.close)  # runs before the namespaces go
        result = asyncio.run(
            _run(
                relay_set,
                secret,
                streams,
                tokens,
                rate,
                kill_every_s,
                kills,
                partition_s,
                failover,
                generators,
                note,
            )
        )
        result["config"]["namespaces"] = [site.namespace for site in net.sites] if net else []
    return result


def plot_failover(result: dict[str, Any], path: str) -> None:
    """Draw tokens/s over time with the kills and the partition marked, to ``path`` (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rates = result["tokens_per_s_by_half_second"]
    partition = "SIGSTOP" if result.get("partition", "stalled") == "stalled" else "drop"
    fig = Figure(figsize=(8, 3.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.step([i / 2 for i in range(len(rates))], rates, where="post", color="tab:blue")
    for fault in result["faults"]:
        kill = fault["fault"] == "kill"
        ax.axvline(fault["at_s"], color="tab:red" if kill else "tab:orange", linestyle="--")
        ax.annotate(
            f"{'SIGKILL' if kill else partition} relay {fault['relay']}",
            (fault["at_s"], max(rates, default=1)),
            rotation=90,
            fontsize=7,
            va="top",
            ha="right",
        )
    p99 = (result.get("failover_gap_ms") or {}).get("p99", "-")
    ax.set_title(
        f"{result['streams']} answers through {result['config']['relays']} relays, failover "
        f"{'on' if result['failover'] else 'off'}: lost {result['lost']}, duplicated "
        f"{result['duplicated']}, reordered {result['reordered']}, gap p99 {p99} ms",
        fontsize=8,
    )
    ax.set_xlabel("time since the streams started (s)")
    ax.set_ylabel("tokens/s received (all streams)")
    fig.tight_layout()
    fig.savefig(path)


__all__ = [
    "BENCH_FAILOVER",
    "ISOLATIONS",
    "plot_failover",
    "run_failover_bench",
]
