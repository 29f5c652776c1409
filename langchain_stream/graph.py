"""The router as a LangGraph ``StateGraph``: compress → judge → route → tier, with fallback.

::

    START → compress → judge → route ─route_to_tier─► local | hpc | cloud ─► END
                                          ▲                      │ failed before its first token
                                          └─ route_to_tier ◄─ fallback

Per-run inputs that are not conversation state (the tier models, the judge, the call's
``stop``/``tools`` arguments, the start time) travel in the runtime context,
:class:`RouterContext`. Tokens leave the tier nodes as they are produced, through LangGraph's
custom stream (``stream_mode="custom"``); each tier node also returns the whole answer, so the
graph works with ``invoke`` and inside larger graphs.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
)
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.messages.utils import count_tokens_approximately, message_chunk_to_message
from langchain_core.runnables.config import var_child_runnable_config

# LangGraph's own node wrapper: a sync and an async body, no per-call signature inspection or
# tracing run (RunnableLambda costs more per call than the router's whole node work).
from langgraph._internal._runnable import RunnableCallable
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import get_runtime

from langchain_stream._threads import iterate_async
from langchain_stream.config import TIERS, Tier, get_settings
from langchain_stream.context import (
    ConversationSummary,
    TierFitter,
    conversation_checkpointer,
    load_summary,
)
from langchain_stream.errors import (
    ContextOverflowError,
    InvalidRequestError,
    MidStreamError,
    NoTierAvailableError,
)
from langchain_stream.judge import ComplexityJudge, resolve_judge
from langchain_stream.judge.offload import in_judge_pool
from langchain_stream.policies.decide import RoutingRequest
from langchain_stream.policies.engine import PolicyEngine
from langchain_stream.routing import CompressionReport, RoutingRecord, TierAttempt

COMPRESS, JUDGE, ROUTE, FALLBACK = "compress", "judge", "route", "fallback"
# How many earlier turns the judge sees, for follow-ups such as "why?".
JUDGE_CONTEXT_TURNS = 2


@dataclass
class RouterContext:
    """Per-run inputs of the router graph (LangGraph runtime context)."""

    tiers: dict[Tier, BaseChatModel] | None = None
    """Chat model of each available tier; ``None`` builds them from the settings."""
    judge: ComplexityJudge | None = None
    """The complexity judge; ``None`` uses the one named in the settings."""
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    """Arguments passed on to the tier model's stream call (stop, tools, max_tokens, ...)."""
    started_at: float = field(default_factory=time.perf_counter)
    """When the request entered the router (``time.perf_counter``), for TTFT."""
    policies: PolicyEngine | None = None
    """Privacy, budget, stickiness and health policies; ``None`` builds them from the settings."""
    request: RoutingRequest = field(default_factory=RoutingRequest)
    """Who asks, in which conversation, under which privacy mode."""

    def models(self) -> dict[Tier, BaseChatModel]:
        """The tier models, built from the settings when none were given."""
        return self.tiers if self.tiers is not None else default_tier_models()

    def complexity_judge(self) -> ComplexityJudge:
        """The judge, resolved from the settings when none was given."""
        return self.judge if self.judge is not None else resolve_judge(get_settings().judge)

    def policy_engine(self) -> PolicyEngine:
        """The policy engine, built from the settings when none was given."""
        return self.policies if self.policies is not None else default_policy_engine()


class RouterState(TypedDict):
    """Conversation in, answer appended; plus what the router decided on the way."""

    messages: Annotated[list[AnyMessage], add_messages]
    tier: NotRequired[Tier | None]
    """A user pin: answer on this tier, skipping the judge."""
    candidates: NotRequired[list[Tier]]
    """Tiers still to try, in order."""
    record: NotRequired[dict[str, Any]]
    """The routing record (see :class:`~langchain_stream.routing.RoutingRecord`)."""
    failed: NotRequired[bool]
    """Whether the last tier tried failed before its first token."""
    summary: NotRequired[dict[str, Any] | None]
    """The older turns' summary (:class:`~langchain_stream.context.ConversationSummary`),
    kept with the conversation by a checkpointer and extended as the conversation grows."""
    partial: NotRequired[str | None]
    """The answer a tier left unfinished, which the next tier continues (when configured)."""


@lru_cache(maxsize=1)
def default_tier_models() -> dict[Tier, BaseChatModel]:
    """The tiers configured in the settings (the local tier always)."""
    from langchain_stream.tiers import build_tier_models

    return build_tier_models(get_settings())


@lru_cache(maxsize=1)
def default_policy_engine() -> PolicyEngine:
    """The policies configured in the settings."""
    return PolicyEngine(get_settings())


def _context() -> RouterContext:
    context = get_runtime(RouterContext).context
    return context if context is not None else RouterContext()


# --- the router's steps ------------------------------------------------------------------
#
# Each step takes the state and the run's context and returns a state update. The compiled graph
# runs them as nodes (the context then comes from LangGraph's runtime); `StreamChatModel` walks
# the same steps along the same edges directly when no checkpointer is involved (see
# `_astream_router`).


def compress(state: RouterState, context: RouterContext) -> dict[str, Any]:
    """Prepare what fitting the history needs for any tier: the conversation's summary,
    checked against the history (docs/design.md#context). Each tier node then fits the history
    to its own window, so a fallback to another tier refits it. (It takes the context as every step
    does, and needs none of it.)"""
    summary = load_summary(state["messages"], state.get("summary"))
    record = RoutingRecord(compression=CompressionReport(applied=False))
    return {
        "record": record.model_dump(mode="json", exclude_none=True),
        "summary": summary.model_dump() if summary is not None else None,
    }


def judge(state: RouterState, context: RouterContext) -> dict[str, Any]:
    """Judge the current query; a pinned request skips the judge."""
    if state.get("tier") is not None:
        return {}
    record = RoutingRecord.model_validate(state.get("record", {}))
    query, earlier = _query_and_context(state["messages"])
    judgment = context.complexity_judge().judge(query, earlier)
    record.complexity = judgment.complexity
    record.scores = {k.value: round(v, 4) for k, v in judgment.scores.items()}
    record.judge = judgment.judge
    record.judge_ms = round(judgment.latency_ms, 3)
    return {"record": record.model_dump(mode="json", exclude_none=True)}


def route(state: RouterState, context: RouterContext) -> dict[str, Any]:
    """Order the candidate tiers: the judge's class (or the pin) under the routing policies."""
    models = context.models()
    record = RoutingRecord.model_validate(state.get("record", {}))
    request = context.request
    record.user, record.conversation = request.user, request.conversation_id
    pin = state.get("tier")
    if pin is not None and pin not in models:
        raise NoTierAvailableError(
            f"the request is pinned to the {pin!r} tier, which is not configured "
            f"(configured: {', '.join(models)})"
        )
    engine = context.policy_engine()
    decision, sensitive = engine.decide(
        messages=state["messages"],
        call_kwargs=context.call_kwargs,
        summary=state.get("summary"),
        complexity=record.complexity,
        pin=pin,
        models=models,
        request=request,
    )
    record.reason, record.policies, record.sensitive = (
        decision.reason,
        decision.policies,
        sensitive,
    )
    if not decision.candidates:
        engine.record(record, request, answered=False)
        raise NoTierAvailableError(
            "the routing policies leave no tier: " + "; ".join(decision.policies)
        )
    return {
        "candidates": decision.candidates,
        "failed": False,
        "record": record.model_dump(mode="json", exclude_none=True),
    }


def fallback(state: RouterState, context: RouterContext) -> dict[str, Any]:
    """Drop the tier that failed; give up when none is left."""
    remaining = state.get("candidates", [])[1:]
    record = RoutingRecord.model_validate(state.get("record", {}))
    if not remaining:
        context.policy_engine().record(record, context.request, answered=False)
        attempts = [a.model_dump() for a in record.tiers_tried]
        raise NoTierAvailableError(
            "no tier could answer: " + "; ".join(f"{a['tier']}: {a['error']}" for a in attempts),
            attempts=attempts,
        )
    record.reason = "fallback"
    return {"candidates": remaining, "record": record.model_dump(mode="json", exclude_none=True)}


async def _acompress(state: RouterState, context: RouterContext) -> dict[str, Any]:
    return compress(state, context)


async def _ajudge(state: RouterState, context: RouterContext) -> dict[str, Any]:
    if state.get("tier") is not None:  # pinned: nothing to judge
        return {}
    return await in_judge_pool(judge, state, context)  # a judge may be slow: off the loop


async def _aroute(state: RouterState, context: RouterContext) -> dict[str, Any]:
    engine, available = context.policy_engine(), list(context.models())
    # Database reads, and the privacy check of a long request: off the loop.
    if engine.reads_store(context.request, available) or engine.scans_long(
        state["messages"], context.call_kwargs, available
    ):
        return await asyncio.to_thread(route, state, context)
    return route(state, context)


async def _afallback(state: RouterState, context: RouterContext) -> dict[str, Any]:
    return await asyncio.to_thread(fallback, state, context)  # may write the audit log


def route_to_tier(state: RouterState) -> Tier | Literal["fallback"]:
    """The next candidate tier's node."""
    candidates = state.get("candidates", [])
    return candidates[0] if candidates else FALLBACK


def route_after_tier(state: RouterState) -> Literal["fallback", "__end__"]:
    """End once a tier answered; otherwise fall back."""
    return FALLBACK if state.get("failed") else END


Step = Callable[[RouterState, RouterContext], dict[str, Any]]
AsyncStep = Callable[[RouterState, RouterContext], Awaitable[dict[str, Any]]]

# The steps before and between the tiers, sync and async (the async ones keep database work
# off the event loop).
STEPS: dict[str, tuple[Step, AsyncStep]] = {
    COMPRESS: (compress, _acompress),
    JUDGE: (judge, _ajudge),
    ROUTE: (route, _aroute),
    FALLBACK: (fallback, _afallback),
}

# Where each node leads: the graph's edges, also walked by the direct runner.
NEXT: dict[str, Callable[[RouterState], str]] = {
    COMPRESS: lambda _: JUDGE,
    JUDGE: lambda _: ROUTE,
    ROUTE: route_to_tier,
    FALLBACK: route_to_tier,
    **{tier: route_after_tier for tier in TIERS},
}

# Sent to the next tier when it continues an answer the previous tier left unfinished.
CONTINUE_PROMPT = (
    "Your previous answer was cut off. Continue it from exactly where it stopped, "
    "without repeating any of it."
)


class _TierRun:
    """One tier call: fit the history, stream the tier's chunks with the routing record, turn a
    failure into a fallback, an explicit event or an error. Used by the graph's tier nodes and
    by the direct runner alike."""

    def __init__(self, tier: Tier, context: RouterContext, state: RouterState) -> None:
        self.tier, self.started = tier, context.started_at
        self.record = RoutingRecord.model_validate(state.get("record", {}))
        self.models = context.models()
        self.model = self.models[tier]
        self.engine, self.request = context.policy_engine(), context.request
        self.kwargs = context.call_kwargs
        self.candidates = state.get("candidates", [])
        # A continuation: the previous tier's partial answer is context, and this tier's record
        # travels under its own key (merging two records under one key would garble both).
        self.prefix = state.get("partial") or ""
        self.key = "routing_continuation" if self.prefix else "routing"
        self.history: list[BaseMessage] = list(state["messages"])
        if self.prefix:
            self.history += [AIMessage(content=self.prefix), HumanMessage(content=CONTINUE_PROMPT)]
        self.chunks: list[AIMessageChunk] = []
        self.leading: list[AIMessageChunk] = []
        self.first_token_at: float | None = None
        self.called_at = time.perf_counter()  # the tier is called right after this
        self.kept: dict[str, Any] = {}  # state that outlives this tier call (the summary)
        self.update: dict[str, Any] = {}
        """The state update, once the stream is over."""

    def stream(self, state: RouterState) -> Iterator[AIMessageChunk]:
        """The chunks to pass on; :attr:`update` is set when it ends."""
        try:
            history = self._fit(self._fitter(), state)
            for chunk in self.model.stream(history, **self.kwargs):
                if (out := self._on_chunk(chunk)) is not None:  # type: ignore[arg-type]
                    yield out
        except Exception as exc:
            yield from self._on_error(exc)
            return
        yield from self._finish()
        self._persist()

    async def astream(self, state: RouterState) -> AsyncIterator[AIMessageChunk]:
        """:meth:`stream` for async callers: counting, summarizing and database writes run
        off the event loop."""
        try:
            fitter = self._fitter()
            if fitter.fits_outright(self.history):
                history = self._fit(fitter, state)
            else:
                history = await asyncio.to_thread(self._fit, fitter, state)
            async for chunk in self.model.astream(history, **self.kwargs):
                if (out := self._on_chunk(chunk)) is not None:  # type: ignore[arg-type]
                    yield out
        except Exception as exc:
            for event in self._on_error(exc):
                yield event
            return
        for out in self._finish():
            yield out
        await asyncio.to_thread(self._persist)

    def _fitter(self) -> TierFitter:
        return TierFitter.for_tier(self.tier, self.models, self.kwargs, get_settings())

    def _fit(self, fitter: TierFitter, state: RouterState) -> list[BaseMessage]:
        """Fit the history to this tier's window (docs/design.md#context); keep a summary it
        extended."""
        stored = state.get("summary")
        summary = ConversationSummary.model_validate(stored) if stored else None
        outcome = fitter.fit(self.history, summary)
        self.record.compression = outcome.report
        if outcome.summary_changed and outcome.summary is not None:
            self.kept["summary"] = outcome.summary.model_dump()
        self.history = outcome.messages
        self.called_at = time.perf_counter()  # the tier's own TTFT starts after fitting
        return self.history

    def _on_chunk(self, chunk: AIMessageChunk) -> AIMessageChunk | None:
        """The chunk to pass on (the first with content carries the routing record)."""
        if self.first_token_at is None:
            if not (chunk.content or chunk.tool_call_chunks):
                self.leading.append(chunk)  # an empty role/metadata chunk: fold it forward
                return None
            self.first_token_at = time.perf_counter()
            chunk = self._with_record(add_ai_message_chunks(*self.leading, chunk))
            self.leading = []
        self.chunks.append(chunk)
        return chunk

    def _on_error(self, exc: Exception) -> Iterator[AIMessageChunk]:
        """Before the first token: a fallback update. After it: an explicit event in the
        stream, then either a continuation on the next tier (when configured) or the error."""
        if not isinstance(exc, InvalidRequestError | ContextOverflowError):  # not the tier's fault
            self.engine.health.breaker(self.tier).record_failure()
        if self.first_token_at is None:
            self.record.tiers_tried.append(TierAttempt(tier=self.tier, error=_describe(exc)))
            self.update = {
                "failed": True,
                "record": self.record.model_dump(mode="json", exclude_none=True),
                **self.kept,
            }
            return
        partial = self.prefix + "".join(c.text for c in self.chunks)
        successor = self._successor()
        event: dict[str, Any] = {
            "type": "mid_stream_failure",
            "tier": self.tier,
            "error": _describe(exc),
        }
        if successor is not None:
            event["continues_on"] = successor
        yield AIMessageChunk(content="", response_metadata={f"{self.key}_event": event})
        self.record.tiers_tried[-1] = TierAttempt(tier=self.tier, error=_describe(exc))
        self.engine.record(self.record, self.request, answered=False)
        if successor is None:
            raise MidStreamError(
                f"the {self.tier} tier failed mid-answer: {exc}",
                tier=self.tier,
                partial_text=partial,
            ) from exc
        self.update = {
            "failed": True,
            "partial": partial,
            "record": self.record.model_dump(mode="json", exclude_none=True),
            **self.kept,
        }

    def _successor(self) -> Tier | None:
        """The tier that continues a broken answer: only when configured, only once, and
        only for text (half a tool call cannot be continued)."""
        if not get_settings().continue_after_mid_stream_failure or self.prefix:
            return None
        if any(c.tool_call_chunks for c in self.chunks):
            return None
        remaining = self.candidates[1:]
        return remaining[0] if remaining else None

    def _finish(self) -> Iterator[AIMessageChunk]:
        """The closing chunk(s); sets the node's state update."""
        now = time.perf_counter()
        if self.first_token_at is None:  # an empty answer: still deliver the metadata
            self.first_token_at = now
            if self.leading:
                first = self._with_record(add_ai_message_chunks(*self.leading))
            else:
                first = self._with_record(AIMessageChunk(content=""))
            self.chunks.append(first)
            yield first
        merged = add_ai_message_chunks(*self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        usage = merged.usage_metadata or self._estimated_usage()
        self.record.duration_ms = round((now - self.started) * 1000.0, 3)
        if usage:
            self.record.usage = {k: int(v) for k, v in usage.items() if isinstance(v, int)}
            gen_s = now - self.first_token_at
            if gen_s > 0 and usage.get("output_tokens"):
                self.record.tokens_per_s = round(usage["output_tokens"] / gen_s, 2)
        self.engine.health.breaker(self.tier).record_success()
        cloud = self.models.get("cloud")
        self.engine.price_answer(self.record, _model_name(cloud) if cloud is not None else None)
        closing = AIMessageChunk(
            content="",
            response_metadata={self.key: self.record.final_chunk_metadata()},
        )
        yield closing
        message = message_chunk_to_message(merged + closing)
        if self.prefix:  # the whole answer: what the failed tier wrote, then this tier's part
            message = message.model_copy(update={"content": self.prefix + message.text})
        self.update = {
            "messages": [message],
            "failed": False,
            "partial": None,
            "record": self.record.model_dump(mode="json", exclude_none=True),
            **self.kept,
        }

    def _estimated_usage(self) -> dict[str, int] | None:
        """Usage for tiers that stream none (some OpenAI-compatible servers): the prompt by
        LangChain's approximate count, the answer by its chunks (about one token each)."""
        output = sum(1 for c in self.chunks if c.content or c.tool_call_chunks)
        prompt = count_tokens_approximately(self.history)
        self.record.usage_estimated = True
        return {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}

    def _persist(self) -> None:
        """Write the answer to the ledger and the audit log (after the last token)."""
        self.engine.record(self.record, self.request, answered=True)

    def _with_record(self, chunk: AIMessageChunk) -> AIMessageChunk:
        self.record.tier = self.tier
        self.record.model = _model_name(self.model)
        first = self.first_token_at or 0.0
        self.record.ttft_ms = round((first - self.started) * 1000.0, 3)
        self.record.tier_ttft_ms = round((first - self.called_at) * 1000.0, 3)
        self.record.tiers_tried.append(TierAttempt(tier=self.tier))
        metadata = {**chunk.response_metadata, self.key: self.record.first_chunk_metadata()}
        return chunk.model_copy(update={"response_metadata": metadata})


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _model_name(model: BaseChatModel) -> str:
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


# --- the compiled graph ----------------------------------------------------------------------


def _tier_node(tier: Tier) -> RunnableCallable:
    """A node that streams the answer of ``tier`` through LangGraph's custom stream."""

    def run(state: RouterState) -> dict[str, Any]:
        emit, tier_run = get_stream_writer(), _TierRun(tier, _context(), state)
        for chunk in tier_run.stream(state):
            emit(chunk)
        return tier_run.update

    async def arun(state: RouterState) -> dict[str, Any]:
        emit, tier_run = get_stream_writer(), _TierRun(tier, _context(), state)
        async for chunk in tier_run.astream(state):
            emit(chunk)
        return tier_run.update

    return RunnableCallable(run, arun, name=tier, trace=False)


def _step_node(name: str) -> RunnableCallable:
    """A step as a node; it runs inline under ``astream`` too (LangGraph would otherwise hand a
    plain function to a worker thread, a costly hop for microseconds of work)."""
    step, astep = STEPS[name]

    def run(state: RouterState) -> dict[str, Any]:
        return step(state, _context())

    async def arun(state: RouterState) -> dict[str, Any]:
        return await astep(state, _context())

    return RunnableCallable(run, arun, name=name, trace=False)


def _query_and_context(messages: Sequence[BaseMessage]) -> tuple[str, list[str]]:
    """The text of the latest user turn, and a few turns before it for follow-ups."""
    index = next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)),
        len(messages) - 1,
    )
    earlier = messages[max(0, index - JUDGE_CONTEXT_TURNS) : index]
    return messages[index].text, [m.text for m in earlier]


def tier_node_names() -> list[Tier]:
    """The graph's tier nodes: the configured tiers, and the default ones (which a
    ``StreamChatModel`` may be given as models)."""
    names = get_settings().configured_tiers
    return [*names, *(t for t in TIERS if t not in names)]


def build_router_graph(tiers: Sequence[Tier] | None = None) -> StateGraph:
    """The router graph, uncompiled (for embedding as a subgraph or adding a checkpointer),
    with a node for each of ``tiers`` (by default :func:`tier_node_names`)."""
    graph = StateGraph(RouterState, context_schema=RouterContext)
    tiers = list(tiers) if tiers is not None else tier_node_names()
    for name in STEPS:
        graph.add_node(name, _step_node(name))
    for tier in tiers:
        graph.add_node(tier, _tier_node(tier))
        graph.add_conditional_edges(tier, route_after_tier, {END: END, FALLBACK: FALLBACK})
    graph.add_edge(START, COMPRESS)
    graph.add_edge(COMPRESS, NEXT[COMPRESS]({}))  # type: ignore[arg-type]
    graph.add_edge(JUDGE, NEXT[JUDGE]({}))  # type: ignore[arg-type]
    graph.add_conditional_edges(ROUTE, NEXT[ROUTE], {t: t for t in (*tiers, FALLBACK)})
    graph.add_conditional_edges(FALLBACK, NEXT[FALLBACK], {t: t for t in tiers})
    return graph


@lru_cache(maxsize=1)
def router_graph() -> CompiledStateGraph:
    """The compiled router graph, built once per process."""
    return build_router_graph().compile(name="langchain-stream-router")


def conversation_graph() -> CompiledStateGraph:
    """The router graph with the conversation checkpointer (docs/design.md#context).

    Runs with a ``thread_id`` keep the conversation's summary, so later requests extend it
    rather than recompute it, in this process or the next: LangGraph's SQLite or PostgreSQL
    checkpointer on the database of ``STREAM_DATABASE_URL`` (see
    :mod:`langchain_stream.context.store`).
    """
    from langchain_stream.policies.engine import database_url

    return _conversation_graph(database_url(get_settings()))


@lru_cache(maxsize=8)
def _conversation_graph(url: str | None) -> CompiledStateGraph:
    checkpointer = conversation_checkpointer(url)
    return build_router_graph().compile(checkpointer=checkpointer, name="langchain-stream-router")


# --- running the router for StreamChatModel ----------------------------------------------
#
# When StreamChatModel is called inside another runnable or graph, the caller's config sits in
# a context variable that LangChain merges into every run started below (callbacks and
# `configurable` included): the caller would then see the tier's tokens a second time, and
# LangGraph would treat the router as the caller's subgraph. The router therefore runs in a
# context where no parent config is set; StreamChatModel reports its own tokens to the caller.
#
# A request without a conversation id needs nothing a checkpointer keeps, so the router's steps
# run directly along the graph's edges (`NEXT`): the same functions the graph's nodes run, but
# without the per-superstep work of LangGraph's runtime, which costs more than the router's whole
# TTFT budget. A conversation runs through the compiled graph and its checkpointer, which
# keeps its summary.


def _merge(state: RouterState, update: dict[str, Any]) -> RouterState:
    """Apply a step's update as the graph's channels would (``messages`` by its reducer)."""
    merged: dict[str, Any] = {**state, **update}
    if "messages" in update:
        merged["messages"] = add_messages(state["messages"], update["messages"])
    return merged  # type: ignore[return-value]


def _direct_stream(state: RouterState, context: RouterContext) -> Iterator[AIMessageChunk]:
    node = COMPRESS
    while node != END:
        if node in STEPS:
            update = STEPS[node][0](state, context)
        else:
            tier_run = _TierRun(node, context, state)  # type: ignore[arg-type]
            yield from tier_run.stream(state)
            update = tier_run.update
        state = _merge(state, update)
        node = NEXT.get(node, route_after_tier)(state)


async def _direct_astream(
    state: RouterState, context: RouterContext
) -> AsyncIterator[AIMessageChunk]:
    node = COMPRESS
    while node != END:
        if node in STEPS:
            update = await STEPS[node][1](state, context)
        else:
            tier_run = _TierRun(node, context, state)  # type: ignore[arg-type]
            async for chunk in tier_run.astream(state):
                yield chunk
            update = tier_run.update
        state = _merge(state, update)
        node = NEXT.get(node, route_after_tier)(state)


def isolated_stream(state: RouterState, context: RouterContext) -> Iterator[AIMessageChunk]:
    """Run the router for a synchronous caller, detached from the caller's context."""
    if context.request.conversation_id is not None:
        # The graph runs asynchronously on the background loop, whose thread has a context of
        # its own: LangGraph's sync runner starts threads for every request.
        return iterate_async(lambda: _astream_router(state, context))
    isolated = contextvars.copy_context()
    isolated.run(var_child_runnable_config.set, None)
    return _iterate_in(isolated, _direct_stream(state, context))


def _iterate_in(
    isolated: contextvars.Context, chunks: Iterator[AIMessageChunk]
) -> Iterator[AIMessageChunk]:
    """Each step of ``chunks`` runs in ``isolated``."""
    try:
        while True:
            try:
                chunk = isolated.run(next, chunks)
            except StopIteration:
                return
            yield chunk
    finally:
        isolated.run(chunks.close)  # type: ignore[attr-defined]


async def isolated_astream(
    state: RouterState, context: RouterContext
) -> AsyncIterator[AIMessageChunk]:
    """Run the router for an async caller, detached from the caller's context."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for chunk in _astream_router(state, context):
                queue.put_nowait((False, chunk))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, which raises it
            queue.put_nowait((True, exc))
            return
        queue.put_nowait((True, None))

    task = asyncio.create_task(pump())  # a task of its own: see _astream_router
    try:
        while True:
            done, value = await queue.get()
            if not done:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        if not task.done():
            task.cancel()
            # wait() does not re-raise the task's own cancellation into this clean-up, which
            # under anyio's repeated cancellations left the tier generating.
            await asyncio.wait([task])


async def _astream_router(
    state: RouterState, context: RouterContext
) -> AsyncIterator[AIMessageChunk]:
    # Always iterated by a task of its own (a copy of the caller's context), so forgetting the
    # caller's config here leaves the caller's own context untouched.
    var_child_runnable_config.set(None)
    thread = context.request.conversation_id
    if thread is None:
        async for chunk in _direct_astream(state, context):
            yield chunk
        return
    # The caller sends the whole conversation each time (a chat model's contract): it replaces
    # the saved messages; the saved summary stays. One checkpoint per request.
    state = {**state, "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *state["messages"]]}
    config = {"configurable": {"thread_id": thread}}
    graph, options = conversation_graph(), {"config": config, "durability": "exit"}
    async for chunk in graph.astream(state, context=context, stream_mode="custom", **options):
        yield chunk
