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
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
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


# --- nodes -------------------------------------------------------------------------------------


def compress(state: RouterState) -> dict[str, Any]:
    """Prepare what fitting the history needs for any tier: the conversation's summary,
    checked against the history (DESIGN §5). Each tier node then fits the history to its own
    window, so a fallback to another tier refits it."""
    summary = load_summary(state["messages"], state.get("summary"))
    record = RoutingRecord(compression=CompressionReport(applied=False))
    return {
        "record": record.model_dump(mode="json", exclude_none=True),
        "summary": summary.model_dump() if summary is not None else None,
    }


def judge(state: RouterState) -> dict[str, Any]:
    """Judge the current query; a pinned request skips the judge."""
    if state.get("tier") is not None:
        return {}
    context = _context()
    record = RoutingRecord.model_validate(state.get("record", {}))
    query, earlier = _query_and_context(state["messages"])
    judgment = context.complexity_judge().judge(query, earlier)
    record.complexity = judgment.complexity
    record.scores = {k.value: round(v, 4) for k, v in judgment.scores.items()}
    record.judge = judgment.judge
    record.judge_ms = round(judgment.latency_ms, 3)
    return {"record": record.model_dump(mode="json", exclude_none=True)}


def route(state: RouterState) -> dict[str, Any]:
    """Order the candidate tiers: the judge's class (or the pin) under the routing policies."""
    context = _context()
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
        texts=[m.text for m in state["messages"]],
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


def fallback(state: RouterState) -> dict[str, Any]:
    """Drop the tier that failed before its first token; give up when none is left."""
    remaining = state.get("candidates", [])[1:]
    record = RoutingRecord.model_validate(state.get("record", {}))
    if not remaining:
        context = _context()
        context.policy_engine().record(record, context.request, answered=False)
        attempts = [a.model_dump() for a in record.tiers_tried]
        raise NoTierAvailableError(
            "no tier could answer: " + "; ".join(f"{a['tier']}: {a['error']}" for a in attempts),
            attempts=attempts,
        )
    record.reason = "fallback"
    return {"candidates": remaining, "record": record.model_dump(mode="json", exclude_none=True)}


def route_to_tier(state: RouterState) -> Tier | Literal["fallback"]:
    """The next candidate tier's node."""
    candidates = state.get("candidates", [])
    return candidates[0] if candidates else FALLBACK


def route_after_tier(state: RouterState) -> Literal["fallback", "__end__"]:
    """End once a tier answered; otherwise fall back."""
    return FALLBACK if state.get("failed") else END


class _TierRun:
    """The per-chunk bookkeeping of one tier call, shared by the sync and async nodes."""

    def __init__(self, tier: Tier, context: RouterContext, record: RoutingRecord) -> None:
        self.tier, self.record, self.started = tier, record, context.started_at
        self.models = context.models()
        self.model = self.models[tier]
        self.engine, self.request = context.policy_engine(), context.request
        self.history: list[BaseMessage] | None = None
        self.emit = get_stream_writer()
        self.chunks: list[AIMessageChunk] = []
        self.leading: list[AIMessageChunk] = []
        self.first_token_at: float | None = None
        self.called_at = time.perf_counter()  # the tier is called right after this
        self.kept: dict[str, Any] = {}  # state that outlives this tier call (the summary)

    def fit(self, state: RouterState, kwargs: dict[str, Any]) -> list[BaseMessage]:
        """Fit the history to this tier's window (DESIGN §5); keep a summary it extended."""
        return self._fit(TierFitter.for_tier(self.tier, self.models, kwargs, get_settings()), state)

    async def afit(self, state: RouterState, kwargs: dict[str, Any]) -> list[BaseMessage]:
        """:meth:`fit` for the async node: counting and summarizing run off the event loop."""
        fitter = TierFitter.for_tier(self.tier, self.models, kwargs, get_settings())
        if fitter.fits_outright(self.history or []):
            return self._fit(fitter, state)
        return await asyncio.to_thread(self._fit, fitter, state)

    def _fit(self, fitter: TierFitter, state: RouterState) -> list[BaseMessage]:
        stored = state.get("summary")
        summary = ConversationSummary.model_validate(stored) if stored else None
        outcome = fitter.fit(self.history or [], summary)
        self.record.compression = outcome.report
        if outcome.summary_changed and outcome.summary is not None:
            self.kept["summary"] = outcome.summary.model_dump()
        self.history = outcome.messages
        self.called_at = time.perf_counter()  # the tier's own TTFT starts after fitting
        return self.history

    def on_chunk(self, chunk: AIMessageChunk) -> None:
        """Pass a chunk on; the first one with content carries the routing record."""
        if self.first_token_at is None:
            if not (chunk.content or chunk.tool_call_chunks):
                self.leading.append(chunk)  # an empty role/metadata chunk: fold it forward
                return
            self.first_token_at = time.perf_counter()
            chunk = self._with_record(add_ai_message_chunks(*self.leading, chunk))
            self.leading = []
        self.chunks.append(chunk)
        self.emit(chunk)

    def on_error(self, exc: BaseException) -> dict[str, Any]:
        """Turn a failure into a fallback update, or raise when tokens were already sent."""
        if not isinstance(exc, InvalidRequestError | ContextOverflowError):  # not the tier's fault
            self.engine.health.breaker(self.tier).record_failure()
        if self.first_token_at is not None:
            partial = "".join(c.text for c in self.chunks)
            # An explicit event in the stream, then the error: never another tier's answer
            # glued onto this partial one.
            event = {"type": "mid_stream_failure", "tier": self.tier, "error": _describe(exc)}
            self.emit(AIMessageChunk(content="", response_metadata={"routing_event": event}))
            self.record.tiers_tried[-1] = TierAttempt(tier=self.tier, error=_describe(exc))
            self.engine.record(self.record, self.request, answered=False)
            raise MidStreamError(
                f"the {self.tier} tier failed mid-answer: {exc}",
                tier=self.tier,
                partial_text=partial,
            ) from exc
        self.record.tiers_tried.append(TierAttempt(tier=self.tier, error=_describe(exc)))
        return {
            "failed": True,
            "record": self.record.model_dump(mode="json", exclude_none=True),
            **self.kept,
        }

    def finish(self) -> dict[str, Any]:
        """Emit the closing chunk and return the node's state update."""
        now = time.perf_counter()
        if self.first_token_at is None:  # an empty answer: still deliver the metadata
            self.first_token_at = now
            if self.leading:
                first = self._with_record(add_ai_message_chunks(*self.leading))
            else:
                first = self._with_record(AIMessageChunk(content=""))
            self.chunks.append(first)
            self.emit(first)
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
            response_metadata={"routing": self.record.final_chunk_metadata()},
        )
        self.emit(closing)
        message = message_chunk_to_message(merged + closing)
        return {
            "messages": [message],
            "failed": False,
            "record": self.record.model_dump(mode="json", exclude_none=True),
            **self.kept,
        }

    def _estimated_usage(self) -> dict[str, int] | None:
        """Usage for tiers that stream none (some OpenAI-compatible servers): the prompt by
        LangChain's approximate count, the answer by its chunks (about one token each)."""
        if self.history is None:
            return None
        output = sum(1 for c in self.chunks if c.content or c.tool_call_chunks)
        prompt = count_tokens_approximately(self.history)
        self.record.usage_estimated = True
        return {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}

    def persist(self) -> None:
        """Write the answer to the ledger and the audit log (after the last token)."""
        self.engine.record(self.record, self.request, answered=True)

    def _with_record(self, chunk: AIMessageChunk) -> AIMessageChunk:
        self.record.tier = self.tier
        self.record.model = _model_name(self.model)
        first = self.first_token_at or 0.0
        self.record.ttft_ms = round((first - self.started) * 1000.0, 3)
        self.record.tier_ttft_ms = round((first - self.called_at) * 1000.0, 3)
        self.record.tiers_tried.append(TierAttempt(tier=self.tier))
        metadata = {**chunk.response_metadata, "routing": self.record.first_chunk_metadata()}
        return chunk.model_copy(update={"response_metadata": metadata})


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _model_name(model: BaseChatModel) -> str:
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def _start(state: RouterState, tier: Tier) -> tuple[_TierRun, list[BaseMessage], dict[str, Any]]:
    context = _context()
    record = RoutingRecord.model_validate(state.get("record", {}))
    run = _TierRun(tier, context, record)
    run.history = list(state["messages"])
    return run, run.history, context.call_kwargs


def _tier_node(tier: Tier) -> RunnableCallable:
    """A node that streams the answer of ``tier``, falling back on an early failure."""

    def run(state: RouterState) -> dict[str, Any]:
        run_, history, kwargs = _start(state, tier)
        try:
            history = run_.fit(state, kwargs)
            for chunk in run_.model.stream(history, **kwargs):
                run_.on_chunk(chunk)  # type: ignore[arg-type]
        except Exception as exc:
            return run_.on_error(exc)
        update = run_.finish()
        run_.persist()
        return update

    async def arun(state: RouterState) -> dict[str, Any]:
        run_, history, kwargs = _start(state, tier)
        try:
            history = await run_.afit(state, kwargs)
            async for chunk in run_.model.astream(history, **kwargs):
                run_.on_chunk(chunk)  # type: ignore[arg-type]
        except Exception as exc:
            return run_.on_error(exc)
        update = run_.finish()
        await asyncio.to_thread(run_.persist)  # a database write: off the event loop
        return update

    return RunnableCallable(run, arun, name=tier, trace=False)


def _inline(node: Callable[[RouterState], dict[str, Any]]) -> RunnableCallable:
    """A quick node that also runs inline under ``astream`` (LangGraph would otherwise hand a
    plain function to a worker thread, a costly hop for microseconds of work)."""

    async def arun(state: RouterState) -> dict[str, Any]:
        return node(state)

    return RunnableCallable(node, arun, name=node.__name__, trace=False)


async def _aroute(state: RouterState) -> dict[str, Any]:
    context = _context()
    if context.policy_engine().reads_store(context.request, list(context.models())):
        return await asyncio.to_thread(route, state)  # database reads: off the event loop
    return route(state)


async def _afallback(state: RouterState) -> dict[str, Any]:
    return await asyncio.to_thread(fallback, state)  # may write the audit log


def _query_and_context(messages: Sequence[BaseMessage]) -> tuple[str, list[str]]:
    """The text of the latest user turn, and a few turns before it for follow-ups."""
    index = next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)),
        len(messages) - 1,
    )
    earlier = messages[max(0, index - JUDGE_CONTEXT_TURNS) : index]
    return messages[index].text, [m.text for m in earlier]


def build_router_graph() -> StateGraph:
    """The router graph, uncompiled (for embedding as a subgraph or adding a checkpointer)."""
    graph = StateGraph(RouterState, context_schema=RouterContext)
    graph.add_node(COMPRESS, _inline(compress))
    graph.add_node(JUDGE, _inline(judge))
    graph.add_node(ROUTE, RunnableCallable(route, _aroute, name=ROUTE, trace=False))
    graph.add_node(FALLBACK, RunnableCallable(fallback, _afallback, name=FALLBACK, trace=False))
    for tier in TIERS:
        graph.add_node(tier, _tier_node(tier))
        graph.add_conditional_edges(tier, route_after_tier, {END: END, FALLBACK: FALLBACK})
    tier_map: dict[Any, str] = {tier: tier for tier in TIERS} | {FALLBACK: FALLBACK}
    graph.add_edge(START, COMPRESS)
    graph.add_edge(COMPRESS, JUDGE)
    graph.add_edge(JUDGE, ROUTE)
    graph.add_conditional_edges(ROUTE, route_to_tier, tier_map)
    graph.add_conditional_edges(FALLBACK, route_to_tier, {t: t for t in TIERS})
    return graph


@lru_cache(maxsize=1)
def router_graph() -> CompiledStateGraph:
    """The compiled router graph, built once per process."""
    return build_router_graph().compile(name="langchain-stream-router")


def conversation_graph() -> CompiledStateGraph:
    """The router graph with the conversation checkpointer (DESIGN §5).

    Runs with a ``thread_id`` keep the conversation's summary, so later requests extend it
    rather than recompute it, in this process or the next: LangGraph's SQLite checkpointer on
    the database of ``STREAM_DATABASE_URL`` (see :mod:`langchain_stream.context.store`).
    """
    from langchain_stream.policies.engine import database_url

    return _conversation_graph(database_url(get_settings()))


@lru_cache(maxsize=8)
def _conversation_graph(url: str | None) -> CompiledStateGraph:
    checkpointer = conversation_checkpointer(url)
    return build_router_graph().compile(checkpointer=checkpointer, name="langchain-stream-router")


# --- running the router as a graph of its own ----------------------------------------------
#
# When StreamChatModel is called inside another runnable or graph, the caller's config sits in
# a context variable that LangGraph merges into the router's (callbacks and `configurable`
# included): the caller would then see the tier's tokens a second time, and LangGraph would
# treat the router as the caller's subgraph. The router therefore runs in a context where no
# parent config is set; StreamChatModel reports its own tokens to the caller. Both entry points
# run the graph asynchronously: its sync runner starts threads for every request.


def isolated_stream(state: RouterState, context: RouterContext) -> Iterator[AIMessageChunk]:
    """Run the router for a synchronous caller: the async path, on the background loop.

    The loop thread has a context of its own, so no caller config leaks in.
    """
    return iterate_async(lambda: _astream_router(state, context))


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
        graph, options = router_graph(), {}
    else:
        # The caller sends the whole conversation each time (a chat model's contract): it
        # replaces the saved messages; the saved summary stays. One checkpoint per request.
        state = {**state, "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *state["messages"]]}
        config = {"configurable": {"thread_id": thread}}
        graph, options = conversation_graph(), {"config": config, "durability": "exit"}
    async for chunk in graph.astream(state, context=context, stream_mode="custom", **options):
        yield chunk
