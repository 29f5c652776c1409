"""``stream bench overhead``: what the router adds to the time to first token.

Two measurements of the same quantity:

- **within each request** (the headline figure): the TTFT the caller of ``StreamChatModel``
  sees, minus the judge's time and minus the tier's own TTFT, both reported by the routing
  record of that same request. Noise from other requests cancels out.
- **across requests**: pairs of requests with distinct prompts of the same shape go to the
  tier model directly and through ``StreamChatModel``, alternating which goes first; the
  difference of the medians (judge excluded). This one includes run-to-run noise.

Beside them, the **LangGraph floor**: the time to the first chunk of a graph of the router's
shape (compress and judge together, route, a tier) whose steps do nothing, run the way the router
runs its own (``stream_mode="custom"`` on the background loop, no checkpointer). The router
cannot go below it while LangGraph runs it (docs/design.md#a-requests-path-through-the-graph).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypedDict

from langchain_core.messages import BaseMessageChunk
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from langchain_stream._threads import iterate_async
from langchain_stream.bench.stats import machine, percentiles, samples, with_progress
from langchain_stream.chat_model import StreamChatModel
from langchain_stream.tiers.local import ChatLocal

QUESTIONS = (
    "What is the capital of Peru?",
    "What is the capital of Chile?",
    "What is the capital of Kenya?",
    "What is the capital of Spain?",
    "What is the capital of Japan?",
    "What is the capital of Egypt?",
    "What is the capital of Italy?",
    "What is the capital of Ghana?",
)


def _ttft(chunks: Iterator[BaseMessageChunk]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    ttft = None
    metadata: dict[str, Any] = {}
    for chunk in chunks:
        if ttft is None and (chunk.content or getattr(chunk, "tool_call_chunks", None)):
            ttft = (time.perf_counter() - started) * 1000.0
            metadata = chunk.response_metadata.get("routing", {})
    return (ttft if ttft is not None else float("nan")), metadata


class _FloorState(TypedDict, total=False):
    summary: int
    record: int
    candidates: int


def _floor_graph() -> Any:
    """The router's shape with steps that do nothing: the tier writes one chunk."""

    def tier(state: _FloorState) -> dict[str, Any]:
        get_stream_writer()("chunk")
        return {}

    graph = StateGraph(_FloorState)
    graph.add_node("compress", lambda state: {"summary": 1})
    graph.add_node("judge", lambda state: {"record": 1})
    graph.add_node("route", lambda state: {"candidates": 1})
    graph.add_node("tier", tier)
    graph.add_edge(START, "compress")
    graph.add_edge(START, "judge")
    graph.add_edge(["compress", "judge"], "route")
    graph.add_conditional_edges("route", lambda state: "tier", ["tier"])
    graph.add_edge("tier", END)
    return graph.compile()


def langgraph_floor_ms(runs: int) -> list[float]:
    """Time to the first chunk of :func:`_floor_graph`, ``runs`` times (after a warm-up)."""
    graph = _floor_graph()
    times: list[float] = []
    for run in range(runs + 5):
        started = time.perf_counter()
        chunks = iterate_async(lambda: graph.astream({}, stream_mode="custom"))
        next(chunks)
        elapsed = (time.perf_counter() - started) * 1000.0
        for _ in chunks:  # finish the run, as the router's caller does
            pass
        if run >= 5:
            times.append(elapsed)
    return times


def run_overhead_bench(*, runs: int = 40, progress: bool = False) -> dict[str, Any]:
    """Measure ``runs`` pairs; return the TTFT medians and the router overhead."""
    tier = ChatLocal(temperature=0.0, max_tokens=8)
    tier.load()
    router = StreamChatModel(local=tier, judge="keyword")
    for warm in (tier, router):
        warm.invoke("Hi")
    direct: list[float] = []
    routed: list[float] = []
    judge_ms: list[float] = []
    within: list[float] = []
    for run in with_progress(range(runs), "bench overhead", progress):
        question = QUESTIONS[run % len(QUESTIONS)]
        pair = [("direct", f"{question} ({run}a)"), ("routed", f"{question} ({run}b)")]
        for kind, prompt in pair if run % 2 == 0 else reversed(pair):
            if kind == "direct":
                direct.append(_ttft(tier.stream(prompt))[0])
            else:
                ttft, record = _ttft(router.stream(prompt))
                routed.append(ttft)
                judge_ms.append(float(record.get("judge_ms", 0.0)))
                within.append(ttft - judge_ms[-1] - float(record["tier_ttft_ms"]))
    routed_minus_judge = [r - j for r, j in zip(routed, judge_ms, strict=True)]
    floor = langgraph_floor_ms(max(runs, 20))
    direct_p = percentiles(direct)
    routed_p = percentiles(routed_minus_judge)
    return {
        "bench": "overhead",
        "runs": runs,
        "tier_ttft_ms": direct_p,
        "router_ttft_minus_judge_ms": routed_p,
        "judge_ms": percentiles(judge_ms),
        "overhead_ms": percentiles(within),
        "overhead_ms_p50": percentiles(within)["p50"],
        "overhead_across_requests_ms_p50": round(routed_p["p50"] - direct_p["p50"], 3),
        "langgraph_floor_ms": percentiles(floor),
        "overhead_samples_ms": samples(within),
        "ttft_samples_ms": {
            "tier": samples(direct),
            "router_minus_judge": samples(routed_minus_judge),
        },
        "machine": machine(),
    }
