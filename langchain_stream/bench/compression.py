"""``stream bench compression``: do simple follow-ups in long conversations stay local?

Each conversation (:mod:`langchain_stream.bench.conversations`) has 40 turns: scripted filler of
realistic length, facts planted in turns 1–8, and simple probe questions at turns 10, 20, 30 and
40 asking for those facts. The probes go through ``StreamChatModel`` with a conversation id, as
a chat application would send them: the whole history each time, so the router fits it to the
local window, extending the conversation's saved summary. Beside the local tier there is a
cloud tier that cannot be reached, so a probe that did not fit locally would show as an
escalation (and fail).

Per probe: the tier that answered, whether the fact was in the context the tier received and
whether it was in the answer, the history's size against the local budget, and the time spent
compressing against the time the local tier took to answer.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from rich.progress import Progress

from langchain_stream.bench.conversations import PROBE_TURNS, Fact, conversation
from langchain_stream.bench.stats import machine, percentiles
from langchain_stream.chat_model import StreamChatModel
from langchain_stream.context.summary import SUMMARIZE_RUN_NAME
from langchain_stream.tiers.local import ChatLocal

SYSTEM = "You are a helpful assistant. Answer briefly."


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages of the last answering call a chat model received (the summarizer's
    calls, named :data:`~langchain_stream.context.summary.SUMMARIZE_RUN_NAME`, are left out)."""

    def __init__(self) -> None:
        self.last: list[BaseMessage] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        **kwargs: Any,
    ) -> None:
        if kwargs.get("name") != SUMMARIZE_RUN_NAME:
            self.last = list(messages[0])


def _unreachable_cloud() -> Any:
    from langchain_openai import ChatOpenAI

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return ChatOpenAI(
        model="escalation-target",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="unused",
        max_retries=0,
        timeout=5,
    )


def _contains(text: str, answer: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", text, re.IGNORECASE) is not None


def run_compression_bench(
    *,
    conversations: int = 2,
    turns: int = 40,
    n_ctx: int = 2048,
    max_tokens: int = 32,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the probes of ``conversations`` conversations; return the figures.

    Args:
        conversations: how many 40-turn conversations (each plants 8 facts, probes 4).
        turns: turns per conversation.
        n_ctx: the local model's window (the embedded model supports 8192).
        max_tokens: answer tokens per probe.
        progress: show a progress bar on stderr.
    """
    recorder = PromptRecorder()
    local = ChatLocal(temperature=0.0, max_tokens=max_tokens, n_ctx=n_ctx, callbacks=[recorder])
    local.load()
    router = StreamChatModel(local=local, cloud=_unreachable_cloud(), judge="keyword")
    probes: list[dict[str, Any]] = []
    threads = [f"bench-compression-{uuid.uuid4().hex[:12]}-{i}" for i in range(conversations)]
    started = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("bench compression", total=conversations * len(PROBE_TURNS))
        for index, thread in enumerate(threads):
            history: list[BaseMessage] = [SystemMessage(SYSTEM)]
            for number, turn in enumerate(conversation(index, turns=turns), start=1):
                history.append(HumanMessage(turn.user))
                if turn.answer is not None:
                    history.append(AIMessage(turn.answer))
                    continue
                assert turn.fact is not None
                probe, reply = _probe(router, recorder, history, thread, number, turn.fact)
                probes.append(probe)
                history.append(AIMessage(reply))
                bar.advance(task)
    elapsed = time.perf_counter() - started
    _forget(threads)
    return _summarize(probes, conversations, turns, n_ctx, elapsed)


def _probe(
    router: StreamChatModel,
    recorder: PromptRecorder,
    history: list[BaseMessage],
    thread: str,
    number: int,
    fact: Fact,
) -> tuple[dict[str, Any], str]:
    recorder.last = []
    error = None
    record: dict[str, Any] = {}
    text = ""
    try:
        reply = router.invoke(history, config={"configurable": {"thread_id": thread}})
        record, text = dict(reply.response_metadata.get("routing", {})), reply.text
    except Exception as exc:  # an escalation that failed: counted, not fatal
        error = f"{type(exc).__name__}: {exc}"
    context = "\n".join(m.text for m in recorder.last)
    compression = record.get("compression", {})
    tried = record.get("tiers_tried", [])
    tier_call_ms = (
        record["duration_ms"] - record["ttft_ms"] + record["tier_ttft_ms"]
        if {"duration_ms", "ttft_ms", "tier_ttft_ms"} <= record.keys()
        else None
    )
    probe = {
        "turn": number,
        "fact": fact.answer,
        "tier": record.get("tier"),
        "stayed_local": record.get("tier") == "local" and len(tried) == 1,
        "in_context": bool(context) and _contains(context, fact.answer),
        "in_answer": _contains(text, fact.answer),
        "tokens_before": compression.get("tokens_before"),
        "tokens_after": compression.get("tokens_after"),
        "budget": compression.get("budget"),
        "summary": compression.get("summary"),
        "summary_turns": compression.get("summary_turns"),
        "summary_tokens": compression.get("summary_tokens"),
        "compress_ms": compression.get("compress_ms", 0.0),
        "answer_ms": tier_call_ms,
        "answer": text.strip()[:120],
    }
    if error is not None:
        probe["error"] = error
    return probe, text or "I don't know."


def _forget(threads: list[str]) -> None:
    """Delete the benchmark's conversations from the conversation database."""
    from langchain_stream.graph import conversation_graph

    checkpointer = conversation_graph().checkpointer
    for thread in threads:
        checkpointer.delete_thread(thread)  # type: ignore[union-attr]


def _summarize(
    probes: list[dict[str, Any]], conversations: int, turns: int, n_ctx: int, elapsed: float
) -> dict[str, Any]:
    count = len(probes)
    compress_ms = sum(p["compress_ms"] or 0.0 for p in probes)
    answers = [p["answer_ms"] for p in probes if p["answer_ms"] is not None]
    per_turn = compress_ms / (conversations * turns) if conversations * turns else 0.0
    over = [p for p in probes if (p["tokens_before"] or 0) > (p["budget"] or 0)]
    median_answer = percentiles(answers).get("p50") if answers else None
    return {
        "probes": count,
        "stayed_local": sum(p["stayed_local"] for p in probes),
        "fact_recall": round(sum(p["in_context"] for p in probes) / count, 3) if count else 0.0,
        "fact_recall_answer": (
            round(sum(p["in_answer"] for p in probes) / count, 3) if count else 0.0
        ),
        "probes_over_local_budget": len(over),
        "compress_ms_per_turn": round(per_turn, 1),
        "compress_ms_per_probe": percentiles([p["compress_ms"] or 0.0 for p in probes], 1),
        "local_answer_ms": percentiles(answers, 1),
        "compress_per_turn_below_answer": (median_answer is not None and per_turn < median_answer),
        "bench": "compression",
        "conversations": conversations,
        "turns": turns,
        "local_n_ctx": n_ctx,
        "elapsed_s": round(elapsed, 1),
        "machine": machine(),
        "per_probe": probes,
    }
