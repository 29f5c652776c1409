"""``stream bench hpc``: time to first token through the relay against batch mode.

Both modes go through the same executor (a :class:`~langchain_stream.hpc.LocalEndpoint`: a
process pool after a ``ComputeSerializer`` round trip, with its relay in its own process) to
the same backend (llama.cpp in the worker, the embedded model, greedy, ``max_tokens`` long
answers), alternating which goes first, on distinct prompts.

What the relay costs is read on one clock (``time.monotonic``, shared by the processes of one
machine): from the moment the worker's backend produced its first piece to the moment
``ChatHPC.stream`` handed the first token to the caller — sealing, the producer's connection,
the relay hop, opening, and ChatHPC itself. The executor's own dispatch (submit → the task
starts in a worker) is measured alone with an empty task, and inside each request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from langchain_stream.bench.stats import machine, percentiles, samples, story_prompt, with_progress
from langchain_stream.hpc.chat_model import ChatHPC
from langchain_stream.hpc.local_endpoint import LocalEndpoint


class _Recorder(Executor):
    """Passes tasks on and keeps the last future, to read the worker's timings."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.last: Future[Any] | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.last = self.inner.submit(fn, *args, **kwargs)
        return self.last


def _timed_stream(model: ChatHPC, prompt: str) -> dict[str, float]:
    started = time.monotonic()
    first: float | None = None
    output_tokens = 0
    for chunk in model.stream(prompt):
        if first is None and chunk.content:
            first = time.monotonic()
        if chunk.usage_metadata:
            output_tokens = chunk.usage_metadata["output_tokens"]
    ended = time.monotonic()
    return {
        "started": started,
        "first": first if first is not None else ended,
        "ended": ended,
        "output_tokens": output_tokens,
    }


def run_hpc_bench(
    *, runs: int = 6, max_tokens: int = 256, dispatch_runs: int = 20, progress: bool = False
) -> dict[str, Any]:
    """Measure ``runs`` requests per mode; return TTFTs, the relay's cost and the dispatch."""
    endpoint = LocalEndpoint(workers=1)
    try:
        endpoint.start()
        recorder = _Recorder(endpoint)
        common: dict[str, Any] = {
            "executor": recorder,
            "relay_urls": endpoint.relay_urls,
            "relay_secret": endpoint.relay_secret,
            "temperature": 0.0,
            "max_tokens": max_tokens,
            "first_token_timeout_s": 600.0,
        }
        models = {"relay": ChatHPC(**common), "batch": ChatHPC(**common, mode="batch")}
        for model in models.values():  # warm both paths
            model.invoke("Hi", max_tokens=4)
        dispatch = []
        for _ in range(dispatch_runs):
            submitted = time.monotonic()
            began = endpoint.submit(time.monotonic).result()
            dispatch.append((began - submitted) * 1e3)
        ttft: dict[str, list[float]] = {"relay": [], "batch": []}
        tokens: list[int] = []
        relay_added: list[float] = []
        request_dispatch: list[float] = []
        backend_ttft: list[float] = []
        for run in with_progress(range(runs), "bench hpc", progress):
            prompt = story_prompt(run)
            order = ["relay", "batch"] if run % 2 == 0 else ["batch", "relay"]
            for mode in order:
                timing = _timed_stream(models[mode], prompt)
                ttft[mode].append((timing["first"] - timing["started"]) * 1e3)
                assert recorder.last is not None
                worker = recorder.last.result()["timing"]
                if mode == "relay":
                    tokens.append(int(timing["output_tokens"]))
                    relay_added.append((timing["first"] - worker["first_piece"]) * 1e3)
                    request_dispatch.append((worker["started"] - timing["started"]) * 1e3)
                    backend_ttft.append(worker["backend_ttft_ms"])
    finally:
        endpoint.shutdown(cancel_futures=True)
    relay_p, batch_p = percentiles(ttft["relay"]), percentiles(ttft["batch"])
    return {
        "bench": "hpc",
        "runs": runs,
        "max_tokens": max_tokens,
        "ttft_relay_ms": relay_p["p50"],
        "ttft_batch_ms": batch_p["p50"],
        "speedup": round(batch_p["p50"] / relay_p["p50"], 1),
        "relay_added_ms": percentiles(relay_added),
        "dispatch_ms": percentiles(dispatch),
        "dispatch_in_request_ms": percentiles(request_dispatch),
        "backend_ttft_ms": percentiles(backend_ttft),
        "ttft_ms": {"relay": relay_p, "batch": batch_p},
        "ttft_samples_ms": {mode: samples(values) for mode, values in ttft.items()},
        "relay_added_samples_ms": samples(relay_added),
        "output_tokens": percentiles(tokens, 1),
        "executor": "LocalEndpoint (process pool + ComputeSerializer), relay in its own process",
        "backend": "llama.cpp in the worker, embedded SmolLM2-135M, greedy",
        "machine": machine(),
    }


__all__ = ["run_hpc_bench"]
