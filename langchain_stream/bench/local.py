"""``stream bench local``: the local tier against raw llama-cpp-python on the same model.

Both load the same GGUF with the same context and thread settings, answer the same distinct
prompts greedily (so they produce the same tokens), alternating which goes first. TTFT is the
time to the first text; tokens/s counts the answer's tokens over the time after the first.

Raw llama-cpp-python runs twice over: with llama.cpp's extra buffer types as the local tier
decided for this machine, and with them off, so the report says what turning them off costs
(when the decision is already "off", both raw contenders run with them off).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from langchain_stream.bench.stats import machine, percentiles, samples, story_prompt, with_progress
from langchain_stream.llama.extra_buffers import new_llama
from langchain_stream.tiers.local import ChatLocal

REPEAT_PENALTY = 1.1


def run_local_bench(
    *, runs: int = 8, max_tokens: int = 128, progress: bool = False
) -> dict[str, Any]:
    """Measure both contenders ``runs`` times each; return medians and the throughput ratio."""
    ours = ChatLocal(temperature=0.0, max_tokens=max_tokens, repeat_penalty=REPEAT_PENALTY)
    loaded = ours.load()

    def raw_contender(extra_buffers: bool) -> Callable[[str], Iterator[str]]:
        raw = new_llama(
            loaded.path,
            extra_buffers=extra_buffers,
            n_ctx=loaded.n_ctx,
            n_threads=loaded.llama.n_threads,
            n_threads_batch=loaded.llama.n_threads,
        )
        raw.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=2)  # warm-up

        def raw_stream(prompt: str) -> Iterator[str]:
            for chunk in raw.create_chat_completion(
                [{"role": "user", "content": prompt}],
                stream=True,
                max_tokens=max_tokens,
                temperature=0.0,
                top_p=0.95,
                repeat_penalty=REPEAT_PENALTY,
            ):
                yield chunk["choices"][0]["delta"].get("content") or ""

        return raw_stream

    def ours_stream(prompt: str) -> Iterator[str]:
        return (c.text for c in ours.stream(prompt))

    contenders: dict[str, Callable[[str], Iterator[str]]] = {
        "langchain_stream": ours_stream,
        "llama_cpp_python": raw_contender(loaded.extra_buffers.enabled),
        "llama_cpp_python_extra_buffers_off": raw_contender(False),
    }
    ttft: dict[str, list[float]] = {name: [] for name in contenders}
    rate: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for run in with_progress(range(runs), "bench local", progress):
        prompt = story_prompt(run)
        for name in order if run % 2 == 0 else reversed(order):
            started = time.perf_counter()
            first: float | None = None
            parts: list[str] = []
            for piece in contenders[name](prompt):
                if piece and first is None:
                    first = time.perf_counter()
                parts.append(piece)
            end = time.perf_counter()
            tokens = len(loaded.tokenize("".join(parts)))
            if first is None or tokens < 2:
                continue
            ttft[name].append((first - started) * 1000.0)
            rate[name].append((tokens - 1) / (end - first))
    ours_rate = percentiles(rate["langchain_stream"])["p50"]
    raw_rate = percentiles(rate["llama_cpp_python"])["p50"]
    off_rate = percentiles(rate["llama_cpp_python_extra_buffers_off"])["p50"]
    return {
        "bench": "local",
        "model": loaded.name,
        "runs": runs,
        "max_tokens": max_tokens,
        "ttft_ms": {name: percentiles(values) for name, values in ttft.items()},
        "tokens_per_s": {name: percentiles(values, 2) for name, values in rate.items()},
        "throughput_ratio": round(ours_rate / raw_rate, 4) if raw_rate else None,
        "extra_buffers": loaded.extra_buffers.to_metadata(),
        "extra_buffers_off_ratio": round(off_rate / raw_rate, 4) if raw_rate else None,
        "ttft_samples_ms": {name: samples(values) for name, values in ttft.items()},
        "tokens_per_s_samples": {name: samples(values, 2) for name, values in rate.items()},
        "machine": machine(),
    }
