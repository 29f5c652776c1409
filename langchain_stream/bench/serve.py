"""``stream bench serve``: what an OpenAI-compatible gateway adds in front of a model server.

One backend — ``python -m llama_cpp.server`` on the embedded model, on loopback — and, in
front of it, in the same run:

- ``stream serve``, its ``stream-cloud`` tier being ``ChatOpenAI`` pointed at that backend;
- ``hpc-as-api`` in its direct mode (its gateway → its buffer proxy → the backend), when the
  package is installed;
- LiteLLM's proxy, when a ``litellm`` command is found (next to this Python, or on ``PATH``).

Every gateway runs as shipped, in a process of its own, behind an API key. The added time to
first token of a gateway is its TTFT minus the TTFT of the backend called directly, paired
within each round; each request has a prompt of its own, and the order of the contenders
rotates from round to round, so the backend's prompt cache favours none of them. Then
requests/s at each concurrency level, on shorter answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from langchain_stream.bench.stats import machine, median_ci, percentiles, samples
from langchain_stream.errors import ConfigurationError
from langchain_stream.llama.embedded import embedded_model_path

BACKEND_MODEL = "bench-model"
START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 300.0
WARM_UP_REQUESTS = 8


@dataclass
class Contender:
    """One way to reach the backend."""

    name: str
    base_url: str
    model: str
    api_key: str | None = None
    ttft_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    requests_per_s: dict[str, float] = field(default_factory=dict)
    router_ms: list[float] = field(default_factory=list)
    """``stream serve`` only: the router's share, from the routing record of each answer."""
    outside_router_ms: list[float] = field(default_factory=list)
    """``stream serve`` only: client TTFT minus the router's own TTFT (HTTP, server, client)."""
    failures: dict[str, str] = field(default_factory=dict)
    """Per concurrency level: how many requests failed, and the first error."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def prompt(index: int) -> str:
    """The ``index``-th prompt: all of one length in tokens, none the same.

    They share everything but a number, so the backend's prompt cache serves every request
    the same prefix and no contender gains from following another.
    """
    return f"Write a long story about a lighthouse keeper. Story number {10000 + index}."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Processes:
    """Started servers, each logging to a file; all stopped (by their own pid) at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def tail(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], name: str, procs: _Processes, **kwargs: Any
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(url, timeout=5, **kwargs).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise ConfigurationError(f"{name} did not start:\n{procs.tail(name)}")
        time.sleep(0.25)


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}


BACKENDS = ("llama", "instant")
"""``llama``: llama.cpp's server on the embedded model; ``instant``: a backend that answers at
once (:mod:`langchain_stream.bench.instant_backend`), so only the gateways' own time varies."""


def _start_backend(procs: _Processes, kind: str = "llama") -> Contender:
    port = _free_port()
    if kind == "instant":
        command = [sys.executable, "-m", "langchain_stream.bench.instant_backend"]
        command += ["--port", str(port)]
    else:
        command = [
            *(sys.executable, "-m", "langchain_stream.llama.server"),
            *("--model", str(embedded_model_path()), "--model_alias", BACKEND_MODEL),
            *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"),
            # Queue concurrent requests; by default a new request cuts the running one short.
            *("--interrupt_requests", "False"),
            # One thread: on two shared cores, threads spinning at llama.cpp's barriers make the
            # backend's own TTFT vary by 100x, drowning what the gateways add.
            *("--n_threads", "1", "--n_threads_batch", "1"),
        ]
    process = procs.start("backend", command, _base_env())
    url = f"http://127.0.0.1:{port}"
    _wait_ready(f"{url}/v1/models", process, "backend", procs)
    return Contender("direct", url, BACKEND_MODEL)


def _start_stream(procs: _Processes, backend: Contender) -> Contender:
    port, key = _free_port(), f"sk-{secrets.token_hex(24)}"
    empty = procs.workdir / "empty.toml"
    empty.write_text("")
    env = _base_env() | {
        "STREAM_CONFIG": str(empty),
        "STREAM_DATABASE_URL": f"sqlite:///{procs.workdir / 'stream.db'}",
        "STREAM_CLOUD_MODEL": BACKEND_MODEL,
        "STREAM_CLOUD_BASE_URL": f"{backend.base_url}/v1",
        "STREAM_CLOUD_API_KEY": "unused",
        "STREAM_API_KEYS": key,
        "STREAM_RATE_LIMIT_RPM": "0",
    }
    command = [sys.executable, "-m", "langchain_stream.cli", "serve", "--port", str(port)]
    process = procs.start("stream", command, env)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(f"{url}/healthz", process, "stream", procs)
    return Contender("stream serve", url, "stream-cloud", key)


def _start_hpc_as_api(procs: _Processes, backend: Contender) -> Contender:
    import importlib.util

    if importlib.util.find_spec("hpc_as_api") is None:
        raise ConfigurationError(
            "hpc-as-api is not installed (pip install 'langchain-stream[bench]')"
        )
    proxy_port, port, key = _free_port(), _free_port(), f"sk-stream-{secrets.token_hex(24)}"
    proxy_env = _base_env() | {"VLLM_URL": backend.base_url, "BUFFER_PROXY_PORT": str(proxy_port)}
    proxy = procs.start(
        "hpc-buffer-proxy", [sys.executable, "-m", "hpc_as_api.hpc_buffer_proxy"], proxy_env
    )
    _wait_ready(f"http://127.0.0.1:{proxy_port}/health", proxy, "hpc-buffer-proxy", procs)
    env = _base_env() | {
        "USE_GLOBUS_COMPUTE": "false",
        "LAKESHORE_VLLM_ENDPOINT": f"http://127.0.0.1:{proxy_port}",
        "HPC_PROXY_HOST": "127.0.0.1",
        "HPC_PROXY_PORT": str(port),
        "PROXY_API_KEY_BENCH": key,
        "PROXY_RATE_LIMIT_REQUESTS": "100000000",
    }
    process = procs.start("hpc-as-api", [sys.executable, "-m", "hpc_as_api.app"], env)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(f"{url}/health", process, "hpc-as-api", procs)
    return Contender("hpc-as-api", url, BACKEND_MODEL, key)


LITELLM_REQUIREMENT = "litellm[proxy]==1.108.7"
"""LiteLLM's proxy pins versions (``rich<14``) that cannot live beside this package, so it gets
an environment of its own: :func:`install_litellm` creates it, :func:`litellm_command` finds it."""


def peer_env_dir(name: str) -> Path | None:
    """Where the benchmark keeps the virtual environment of a peer that needs its own."""
    from langchain_stream.config import get_settings

    cache = get_settings().cache_dir
    return cache / "peers" / name if cache is not None else None


def litellm_command() -> str | None:
    """The ``litellm`` command: next to this Python, in the benchmark's own environment for it
    (``stream bench peers``), then on ``PATH``."""
    env = peer_env_dir("litellm")
    for candidate in (
        Path(sys.executable).parent / "litellm",
        env / "bin" / "litellm" if env is not None else None,
    ):
        if candidate is not None and candidate.exists():
            return str(candidate)
    return shutil.which("litellm")


def install_litellm() -> Path:
    """Create the peer environment for LiteLLM's proxy and install it there; return its command.

    Raises:
        ConfigurationError: there is no cache directory, or the install failed.
    """
    env = peer_env_dir("litellm")
    if env is None:
        raise ConfigurationError("STREAM_CACHE_DIR=none: no place for the peers' environments")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run(
            [str(env / "bin" / "python"), "-m", "pip", "install", "-q", LITELLM_REQUIREMENT],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        message = f"could not install {LITELLM_REQUIREMENT} in {env}: {exc}"
        raise ConfigurationError(message) from exc
    return env / "bin" / "litellm"


def _start_litellm(procs: _Processes, backend: Contender) -> Contender:
    command = litellm_command()
    if command is None:
        raise ConfigurationError("no litellm command: `stream bench peers` installs it")
    port, key = _free_port(), f"sk-{secrets.token_hex(24)}"
    env = _base_env() | {
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download at start-up
        "HF_HUB_OFFLINE": "1",  # nor tokenizer look-ups on a machine that may be offline
        "OPENAI_API_KEY": "unused",
    }
    model = f"openai/{BACKEND_MODEL}"
    args = ["--model", model, "--api_base", f"{backend.base_url}/v1"]
    process = procs.start(
        "litellm", [command, *args, "--host", "127.0.0.1", "--port", str(port)], env
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(f"{url}/health/liveliness", process, "litellm", procs)
    return Contender("litellm", url, model, key)


async def _one(
    client: httpx.AsyncClient, who: Contender, prompt: str, max_tokens: int
) -> tuple[float, float, dict[str, Any] | None]:
    """TTFT and total time (ms) of one streamed request, and its routing record if any."""
    body = {
        "model": who.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    started = time.perf_counter()
    ttft = None
    routing = None
    done = False
    async with client.stream(
        "POST", f"{who.base_url}/v1/chat/completions", json=body, headers=who.headers
    ) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            raise ConfigurationError(f"{who.name} answered {response.status_code}: {text[:300]}")
        async for line in response.aiter_lines():
            if ttft is None and line.startswith("data: {") and '"content"' in line:
                data = json.loads(line[6:])
                delta = data["choices"]
                if delta and delta[0].get("delta", {}).get("content"):
                    ttft = (time.perf_counter() - started) * 1000.0
                    routing = data.get("routing")
            elif line.startswith("event: error") or line.startswith('data: {"error"'):
                raise ConfigurationError(f"{who.name} sent an error event")
            done = done or line == "data: [DONE]"
    if not done:  # a stream cut short is a failed request, not a fast one
        raise ConfigurationError(f"{who.name} ended its stream without [DONE]")
    total = (time.perf_counter() - started) * 1000.0
    return (ttft if ttft is not None else total), total, routing


@dataclass(frozen=True)
class ServeSizes:
    """How much ``stream bench serve`` measures (see :func:`run_serve_bench`)."""

    runs: int
    requests: int
    concurrency: list[int]
    max_tokens: int
    throughput_max_tokens: int


async def _measure(contenders: list[Contender], sizes: ServeSizes, progress: bool) -> None:
    runs, requests, concurrency = sizes.runs, sizes.requests, sizes.concurrency
    max_tokens, throughput_max_tokens = sizes.max_tokens, sizes.throughput_max_tokens
    prompts = (prompt(i) for i in itertools.count())
    limits = httpx.Limits(max_connections=max(concurrency) * 2, max_keepalive_connections=256)
    with Progress(disable=not progress, transient=True) as bar:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            task = bar.add_task(
                "bench serve: warm-up", total=runs + len(concurrency) * len(contenders)
            )
            for who in contenders:  # warm up each path (connections, caches, lazy imports)
                for _ in range(WARM_UP_REQUESTS):
                    await _one(client, who, next(prompts), max_tokens)
            bar.update(task, description="bench serve: TTFT rounds")
            for run in range(runs):
                shift = run % len(contenders)
                for who in contenders[shift:] + contenders[:shift]:
                    ttft, total, routing = await _one(client, who, next(prompts), max_tokens)
                    who.ttft_ms.append(ttft)
                    who.total_ms.append(total)
                    if routing and "tier_ttft_ms" in routing:
                        who.router_ms.append(routing["ttft_ms"] - routing["tier_ttft_ms"])
                        who.outside_router_ms.append(ttft - routing["ttft_ms"])
                bar.advance(task)
            for level in concurrency:
                for who in contenders:
                    bar.update(task, description=f"bench serve: {who.name}, {level} clients")
                    count = max(requests, level)
                    gate = asyncio.Semaphore(level)
                    batch = [next(prompts) for _ in range(count)]

                    failed: list[str] = []

                    async def call(
                        prompt: str,
                        who: Contender = who,
                        gate: asyncio.Semaphore = gate,
                        failed: list[str] = failed,
                    ) -> None:
                        async with gate:
                            try:
                                await _one(client, who, prompt, throughput_max_tokens)
                            except (httpx.HTTPError, ConfigurationError) as exc:
                                failed.append(f"{type(exc).__name__}: {exc}"[:200])

                    started = time.perf_counter()
                    await asyncio.gather(*(call(p) for p in batch))
                    elapsed = time.perf_counter() - started
                    done = count - len(failed)
                    who.requests_per_s[str(level)] = round(done / elapsed, 2)
                    if failed:
                        who.failures[str(level)] = f"{len(failed)} of {count} failed; {failed[0]}"
                    bar.advance(task)


def _report(contenders: list[Contender], skipped: dict[str, str], **params: Any) -> dict[str, Any]:
    direct = contenders[0]
    gateways: dict[str, Any] = {}
    for who in contenders[1:]:
        added = [g - d for g, d in zip(who.ttft_ms, direct.ttft_ms, strict=True)]
        added_total = [g - d for g, d in zip(who.total_ms, direct.total_ms, strict=True)]
        gateways[who.name] = {
            "ttft_ms": percentiles(who.ttft_ms),
            "added_ttft_ms": percentiles(added),
            "added_ttft_ms_p50": percentiles(added)["p50"],
            "added_ttft_ms_p50_ci95": median_ci(added),
            "added_total_ms_p50": percentiles(added_total)["p50"],
            "requests_per_s": who.requests_per_s,
            "failures": who.failures,
            "ttft_samples_ms": samples(who.ttft_ms),
            "added_ttft_samples_ms": samples(added),
        }
        if who.router_ms:  # where stream serve's added time goes, within each request
            gateways[who.name]["router_ms_p50"] = percentiles(who.router_ms)["p50"]
            gateways[who.name]["outside_router_ms_p50"] = percentiles(who.outside_router_ms)["p50"]
    ours = gateways.get("stream serve", {}).get("added_ttft_ms_p50")
    peers = [g["added_ttft_ms_p50"] for name, g in gateways.items() if name != "stream serve"]
    return {
        "bench": "serve",
        **params,
        "direct": {
            "ttft_ms": percentiles(direct.ttft_ms),
            "total_ms": percentiles(direct.total_ms),
            "requests_per_s": direct.requests_per_s,
            "failures": direct.failures,
            "ttft_samples_ms": samples(direct.ttft_ms),
        },
        "gateways": gateways,
        "stream_added_ttft_ms_p50": ours,
        "lowest_overhead": bool(peers) and ours is not None and ours < min(peers),
        "skipped": skipped,
        "machine": machine(),
    }


def run_serve_bench(
    *,
    runs: int = 120,
    requests: int = 64,
    concurrency: list[int] | None = None,
    max_tokens: int = 32,
    throughput_max_tokens: int = 8,
    peers: bool = True,
    progress: bool = False,
    backend: str = "llama",
) -> dict[str, Any]:
    """Start the backend and the gateways, measure them, stop them; return the figures.

    Args:
        runs: measured TTFT rounds (one request per contender each).
        requests: requests per contender and concurrency level for requests/s (at least the
            level).
        concurrency: the concurrency levels.
        max_tokens: answer length of the TTFT rounds.
        throughput_max_tokens: answer length of the requests/s runs.
        peers: also start hpc-as-api and LiteLLM (each skipped, with the reason, when absent).
        progress: print progress on stderr.
        backend: one of :data:`BACKENDS`.

    Raises:
        ConfigurationError: an unknown backend, or a server that did not start.
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"unknown backend {backend!r}: use {' or '.join(BACKENDS)}")
    sizes = ServeSizes(
        runs, requests, concurrency or [1, 16, 64], max_tokens, throughput_max_tokens
    )
    skipped: dict[str, str] = {}
    # A terminated benchmark still stops the servers it started (SystemExit runs `finally`).
    with contextlib.ExitStack() as restore:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            restore.callback(signal.signal, signal.SIGTERM, previous)
        return _run(backend, sizes, peers, progress, skipped)


def _run(
    backend_kind: str, sizes: ServeSizes, peers: bool, progress: bool, skipped: dict[str, str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stream-bench-serve-") as tmp:
        procs = _Processes(Path(tmp))
        try:
            backend = _start_backend(procs, backend_kind)
            contenders = [backend, _start_stream(procs, backend)]
            if peers:
                for name, start in (("hpc-as-api", _start_hpc_as_api), ("litellm", _start_litellm)):
                    try:
                        contenders.append(start(procs, backend))
                    except ConfigurationError as exc:
                        skipped[name] = str(exc).splitlines()[0]
            asyncio.run(_measure(contenders, sizes, progress))
        finally:
            procs.stop_all()
    return _report(contenders, skipped, backend=backend_kind, **asdict(sizes))
