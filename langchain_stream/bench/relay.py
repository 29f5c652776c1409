"""``stream bench relay``: this package's relay against the published ``streamrelay``.

Each relay runs alone in its own process; the load generator (producers and consumers, with
their sealing and opening) runs in other processes, so what is measured is the relay. Both
relays get the same harness in the same run: the same streams, tokens, pacing and processes,
each driven by clients that speak its own protocol the way its own clients do (ours:
:class:`~langchain_stream.relay.AsyncProducerClient` and
:class:`~langchain_stream.relay.ConsumerClient`, AES-256-GCM per frame with coalescing;
``streamrelay``: one JSON message per token, encrypted with its ``crypto`` module, over
websockets' default connection).

Two phases per relay:

- **paced**: ``streams`` streams of ``tokens`` tokens at ``rate`` tokens/s each → hop latency
  (producer ``send`` → consumer receive, one clock: both ends live in one generator process),
  tokens lost and reordered.
- **saturation**: ``saturation_streams`` streams sending as fast as the generators can →
  tokens/s and relay CPU per token (the relay process's CPU time over the phase, connection
  set-up excluded).

Both relays run with their per-client limits off: all load comes from one address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import secrets
import time
from multiprocessing.connection import Connection
from typing import Any

from rich.progress import Progress

from langchain_stream.bench.stats import machine, tail
from langchain_stream.hpc.local_endpoint import RelayProcess, serve_control

RELAYS = ("langchain_stream", "streamrelay")

# How much of the CPU each relay takes is read over the streaming window only.
_PHASE_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------- the relays


def _serve_streamrelay(
    conn: Connection, host: str, port: int, secret: str, limits: dict[str, Any]
) -> None:
    """Run streamrelay's connection handler exactly as its ``start_relay`` does."""
    import streamrelay.server as published
    from websockets.asyncio.server import serve

    logging.basicConfig(level=logging.WARNING)
    published._RELAY_SECRET = secret

    async def main() -> None:
        async with serve(published.handle_connection, host, port) as server:
            await serve_control(conn, int(server.sockets[0].getsockname()[1]))

    asyncio.run(main())


def _start_relay(kind: str, secret: str) -> RelayProcess:
    if kind == "streamrelay":
        relay = RelayProcess(secret, target=_serve_streamrelay)
    else:
        relay = RelayProcess(
            secret, max_channels_per_client=None, max_buffered_frames=None, idle_timeout_s=None
        )
    relay.start()
    return relay


# --------------------------------------------------------------------------- load generator


class _Tally:
    """What the consumers of one generator process saw."""

    def __init__(self) -> None:
        self.received = 0
        self.reordered = 0
        self.hops_ms: list[float] = []

    def token(self, token: str, expected: int) -> int:
        now = time.perf_counter_ns()
        seq, _, sent = token.partition(":")
        self.hops_ms.append((now - int(sent)) / 1e6)
        self.received += 1
        if int(seq) != expected:
            self.reordered += 1
        return int(seq) + 1


async def _pace(start: float, seq: int, rate: float | None) -> None:
    if rate is None:
        await asyncio.sleep(0)  # let every stream have its turn
        return
    delay = start + (seq + 1) / rate - asyncio.get_running_loop().time()
    await asyncio.sleep(max(delay, 0.0))


def _token(seq: int) -> str:
    return f"{seq}:{time.perf_counter_ns()}"


class _OursStream:
    def __init__(self, url: str, secret: str) -> None:
        from langchain_stream.relay import (
            AsyncProducerClient,
            ConsumerClient,
            mint_channel_tokens,
            new_channel_id,
            new_channel_key,
        )

        channel_id, key = new_channel_id(), new_channel_key()
        tokens = mint_channel_tokens(secret, channel_id)
        self.consumer = ConsumerClient(
            url, channel_id, tokens.consumer, key, first_token_timeout_s=None, idle_timeout_s=None
        )
        self.producer = AsyncProducerClient(url, channel_id, tokens.producer, key)

    async def connect(self) -> None:
        await self.consumer.connect()
        await self.producer.connect()

    async def produce(self, count: int, rate: float | None, offset_s: float) -> None:
        await asyncio.sleep(offset_s)
        start = asyncio.get_running_loop().time()
        for seq in range(count):
            self.producer.send(_token(seq))
            await _pace(start, seq, rate)
        await self.producer.finish()

    async def consume(self, tally: _Tally) -> None:
        expected = 0
        async for token in self.consumer:
            expected = tally.token(token, expected)

    @property
    def frames(self) -> int:
        return self.producer.frames_sent

    async def close(self) -> None:
        await self.consumer.close()


class _PublishedStream:
    """streamrelay's wire protocol, spoken as its RelayProducer and RelayConsumer speak it."""

    def __init__(self, url: str, secret: str) -> None:
        from streamrelay.crypto import generate_key

        self.url = url
        self.secret = secret
        self.channel_id = secrets.token_hex(16)
        self.key = generate_key()
        self.frames = 0
        self._producer: Any = None
        self._consumer: Any = None

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        auth = json.dumps({"type": "auth", "secret": self.secret})
        self._consumer = await connect(f"{self.url}/consume/{self.channel_id}")
        await self._consumer.send(auth)
        self._producer = await connect(f"{self.url}/produce/{self.channel_id}")
        await self._producer.send(auth)

    async def produce(self, count: int, rate: float | None, offset_s: float) -> None:
        from streamrelay.crypto import encrypt_message

        await asyncio.sleep(offset_s)
        start = asyncio.get_running_loop().time()
        for seq in range(count):
            message = json.dumps({"type": "token", "content": _token(seq)})
            await self._producer.send(encrypt_message(self.key, message))
            self.frames += 1
            await _pace(start, seq, rate)
        await self._producer.send(encrypt_message(self.key, json.dumps({"type": "done"})))

    async def consume(self, tally: _Tally) -> None:
        from streamrelay.crypto import decrypt_message

        expected = 0
        async for raw in self._consumer:
            message = json.loads(decrypt_message(self.key, raw))
            if message["type"] == "done":
                return
            expected = tally.token(message["content"], expected)

    async def close(self) -> None:
        for ws in (self._producer, self._consumer):
            with contextlib.suppress(Exception):
                await ws.close()


async def _generate(
    conn: Connection,
    kind: str,
    url: str,
    secret: str,
    streams: int,
    tokens: int,
    rate: float | None,
) -> None:
    loop = asyncio.get_running_loop()
    maker = _PublishedStream if kind == "streamrelay" else _OursStream
    channels = [maker(url, secret) for _ in range(streams)]
    for batch in range(0, streams, 50):  # no connection storm: the relay is measured, not that
        await asyncio.gather(*(c.connect() for c in channels[batch : batch + 50]))
    conn.send("ready")
    await loop.run_in_executor(None, conn.recv)  # "go"
    tally = _Tally()
    started = time.perf_counter()
    spread_s = 1.0 / rate if rate else 0.0
    await asyncio.gather(
        *(c.consume(tally) for c in channels),
        *(c.produce(tokens, rate, spread_s * i / streams) for i, c in enumerate(channels)),
    )
    elapsed = time.perf_counter() - started
    conn.send(
        {
            "sent": streams * tokens,
            "received": tally.received,
            "reordered": tally.reordered,
            "frames": sum(c.frames for c in channels),
            "hops_ms": tally.hops_ms,
            "elapsed_s": elapsed,
        }
    )
    await loop.run_in_executor(None, conn.recv)  # "close"
    await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)


def _generator_main(
    conn: Connection,
    kind: str,
    url: str,
    secret: str,
    streams: int,
    tokens: int,
    rate: float | None,
) -> None:
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_generate(conn, kind, url, secret, streams, tokens, rate))
    conn.send("closed")


def _phase(
    relay: RelayProcess,
    kind: str,
    *,
    streams: int,
    tokens: int,
    rate: float | None,
    generators: int,
) -> dict[str, Any]:
    """Run one phase against a running relay; return its figures."""
    context = multiprocessing.get_context("spawn")
    shares = [streams // generators + (i < streams % generators) for i in range(generators)]
    pipes, processes = [], []
    for share in (s for s in shares if s):
        parent, child = context.Pipe()
        process = context.Process(
            target=_generator_main,
            args=(child, kind, relay.url, relay.secret, share, tokens, rate),
            daemon=True,
        )
        process.start()
        pipes.append(parent)
        processes.append(process)
    try:
        for pipe in pipes:
            if not pipe.poll(_PHASE_TIMEOUT_S):
                raise TimeoutError(f"{kind}: a load generator did not connect")
            pipe.recv()
        cpu_before = relay.cpu_time_s()
        started = time.perf_counter()
        for pipe in pipes:
            pipe.send("go")
        results = []
        for pipe in pipes:
            if not pipe.poll(_PHASE_TIMEOUT_S):
                raise TimeoutError(f"{kind}: a load generator did not finish")
            results.append(pipe.recv())
        wall_s = time.perf_counter() - started
        cpu_s = relay.cpu_time_s() - cpu_before
        for pipe in pipes:
            pipe.send("close")
            pipe.poll(30.0)
    finally:
        for process in processes:
            process.join(30.0)
            if process.is_alive():
                process.kill()
    sent = sum(r["sent"] for r in results)
    received = sum(r["received"] for r in results)
    frames = sum(r["frames"] for r in results)
    hops = [h for r in results for h in r["hops_ms"]]
    return {
        "streams": streams,
        "tokens_per_stream": tokens,
        "rate_per_stream": rate,
        "tokens_per_s": round(received / wall_s, 1),
        "relay_cpu_us_per_token": round(cpu_s / max(received, 1) * 1e6, 3),
        "relay_cpu_share": round(cpu_s / wall_s, 3),
        "tokens_per_message": round(received / max(frames, 1), 2),
        "hop_ms": tail(hops, 3),
        "lost": sent - received,
        "reordered": sum(r["reordered"] for r in results),
    }


def _bench_one(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    secret = secrets.token_hex(32)
    relay = _start_relay(kind, secret)
    try:
        paced = _phase(
            relay,
            kind,
            streams=args["streams"],
            tokens=args["tokens"],
            rate=args["rate"],
            generators=args["generators"],
        )
        saturated = _phase(
            relay,
            kind,
            streams=args["saturation_streams"],
            tokens=args["saturation_tokens"],
            rate=None,
            generators=args["generators"],
        )
    finally:
        relay.stop()
    return {
        "streams": paced["streams"],
        "tokens_per_s": saturated["tokens_per_s"],
        "relay_cpu_us_per_token": saturated["relay_cpu_us_per_token"],
        "hop_ms": paced["hop_ms"],
        "lost": paced["lost"] + saturated["lost"],
        "reordered": paced["reordered"] + saturated["reordered"],
        "paced": paced,
        "saturation": saturated,
    }


def _ratio(ours: dict[str, Any], published: dict[str, Any]) -> float | None:
    """Our relay's CPU per token over streamrelay's (``None`` without streamrelay's figure)."""
    if not published.get("relay_cpu_us_per_token"):
        return None
    return round(ours["relay_cpu_us_per_token"] / published["relay_cpu_us_per_token"], 3)


def run_relay_bench(
    *,
    streams: int = 50,
    rate: float = 20.0,
    tokens: int = 60,
    saturation_streams: int = 50,
    saturation_tokens: int = 400,
    generators: int = 2,
    progress: bool = False,
) -> dict[str, Any]:
    """Measure both relays; return ours at the top level and ``streamrelay``'s beside it.

    Top-level ``hop_ms``, ``lost`` and ``reordered`` come from the paced phase (``lost`` and
    ``reordered`` add the saturation phase's); ``tokens_per_s`` and ``relay_cpu_us_per_token``
    from the saturation phase. Each phase's full figures are under ``paced`` and
    ``saturation``.
    """
    args = {
        "streams": streams,
        "rate": rate,
        "tokens": tokens,
        "saturation_streams": saturation_streams,
        "saturation_tokens": saturation_tokens,
        "generators": generators,
    }
    figures: dict[str, dict[str, Any]] = {}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"bench relay, {streams} streams", total=len(RELAYS))
        for kind in RELAYS:
            bar.update(task, description=f"bench relay, {streams} streams: {kind}")
            if kind == "streamrelay":
                try:
                    import streamrelay  # noqa: F401
                except ImportError:
                    missing = "not installed: pip install 'langchain-stream[bench]'"
                    figures[kind] = {"error": missing}
                    bar.advance(task)
                    continue
            figures[kind] = _bench_one(kind, args)
            bar.advance(task)
    ours, published = figures["langchain_stream"], figures["streamrelay"]
    return {
        "bench": "relay",
        **ours,
        "streamrelay": published,
        # Saturated figures (the top-level relay_cpu_us_per_token), then the paced ones: the
        # load real answers produce, one token per message.
        "cpu_per_token_vs_streamrelay": _ratio(ours, published),
        "paced_cpu_per_token_vs_streamrelay": _ratio(
            ours.get("paced", {}), published.get("paced", {})
        ),
        "conditions": {**args, "generator_processes": generators, "machine": machine()},
    }


__all__ = ["RELAYS", "run_relay_bench"]
