"""The router as a LangGraph ``StateGraph``: compress → judge → route → tier, with fallback.

::

    START → compress → judge → route ─route_to_tier─► local | hpc | cloud ─► END
                                          ▲                      │ failed before its first token
                                          └─ route_to_tier ◄─ fallback

The compiled graph is the router's only runtime: :class:`~langchain_stream.StreamChatModel`
runs every request through it (docs/design.md, "A request's path through the graph").

Per-run inputs that are not conversation state (the tier models, the judge, the policies and
the resolved :class:`~langchain_stream.request.RouteRequest`) travel in the runtime context,
:class:`RouterContext`. Tokens leave the tier nodes as they are produced, through LangGraph's
custom stream (``stream_mode="custom"``); each tier node also returns the whole answer, so the
graph works with ``invoke`` and inside larger graphs.

A tier's failure is judged by the error it raises (docs/design.md, "The error contract"):
:func:`~langchain_stream.errors.tier_error` translates it at the tier's boundary, and the
router falls back only when the result ``is_retryable``; anything else reaches the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, NotRequired, TypedDict

from langchain_core.callbacks import BaseCallbackManager
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
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import get_runtime

from langchain_stream._threads import iterate_async
from langchain_stream.config import TIERS, get_settings
from langchain_stream.context import (
    ConversationSummary,
    TierFitter,
    conversation_checkpointer,
    load_summary,
)
from langchain_stream.errors import (
    ContextOverflowError,
    MidStreamError,
    NoTierAvailableError,
    tier_error,
)
from langchain_stream.judge import ComplexityJudge, resolve_judge
from langchain_stream.policies.engine import PolicyEngine
from langchain_stream.request import RouteRequest, TierName
from langchain_stream.routing import CompressionReport, RoutingRecord, TierAttempt

COMPRESS, JUDGE, ROUTE, FALLBACK = "compress", "judge", "route", "fallback"
# How many earlier turns the judge sees, for follow-ups such as "why?".
JUDGE_CONTEXT_TURNS = 2
GRAPH_NAME = "langchain-stream-router"


@dataclass
class RouterContext:
    """Per-run inputs of the router graph (LangGraph runtime context)."""

    tiers: Mapping[TierName, BaseChatModel] | None = None
    """Chat model of each available tier; ``None`` builds them from the settings."""
    judge: ComplexityJudge | None = None
    """The complexity judge; ``None`` uses the one named in the settings."""
    policies: PolicyEngine | None = None
    """Privacy, budget, stickiness and health policies; ``None`` builds them from the settings."""
    request: RouteRequest = field(default_factory=RouteRequest)
    """The request, resolved once: who asks, the pin, the tier call's arguments."""

    def models(self) -> Mapping[TierName, BaseChatModel]:
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
    tier: NotRequired[TierName | None]
    """A pin given as graph input (callers of the graph itself); the chat model pins through
    :attr:`RouteRequest.pin`."""
    candidates: NotRequired[list[TierName]]
    """Tiers still to try, in order (first: the one tried now)."""
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
def default_tier_models() -> dict[TierName, BaseChatModel]:
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


def _pin(state: RouterState, request: RouteRequest) -> TierName | None:
    return state.get("tier") or request.pin


# --- the router's steps ------------------------------------------------------------------
#
# Each step takes the state and the run's context and returns a state update; the graph runs
# each as a node (:class:`_StepNode`).


def compress(state: RouterState, context: RouterContext) -> dict[str, Any]:
    """Prepare what fitting the history needs for any tier: the conversation's summary,
    checked against the history (docs/design.md §5). Each tier node then fits the history to
    its own window, so a fallback to another tier refits it."""
    summary = load_summary(state["messages"], state.get("summary"))
    record = RoutingRecord(compression=CompressionReport(applied=False))
    return {
        "record": record.model_dump(mode="json", exclude_none=True),
        "summary": summary.model_dump() if summary is not None else None,
    }


def judge(state: RouterState, context: RouterContext) -> dict[str, Any]:
    """Judge the current query; a pinned request skips the judge."""
    if _pin(state, context.request) is not None:
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
    models, request = context.models(), context.request
    record = RoutingRecord.model_validate(state.get("record", {}))
    record.user, record.conversation = request.user, request.conversation_id
    pin = _pin(state, request)
    if pin is not None and pin not in models:
        raise NoTierAvailableError(
            f"the request is pinned to the {pin!r} tier, which is not configured "
            f"(configured: {', '.join(models)})"
        )
    engine = context.policy_engine()
    decision, sensitive = engine.decide(
        messages=state["messages"],
        call_kwargs=request.call_kwargs,
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


def route_to_tier(state: RouterState) -> str:
    """The next candidate tier's node."""
    candidates = state.get("candidates", [])
    return candidates[0] if candidates else FALLBACK


def route_after_tier(state: RouterState) -> str:
    """End once a tier answered; otherwise fall back."""
    return FALLBACK if state.get("failed") else END


def _routes_off_loop(state: RouterState, context: RouterContext) -> bool:
    """Database reads, and the privacy check of a long request, run off the event loop."""
    engine, available = context.policy_engine(), list(context.models())
    request = context.request
    return engine.reads_store(request, available) or engine.scans_long(
        state["messages"], request.call_kwargs, available
    )


def _gives_up(state: RouterState, context: RouterContext) -> bool:
    return len(state.get("candidates", [])) <= 1  # then it writes the audit log


def _on_loop(state: RouterState, context: RouterContext) -> bool:
    return False


Step = Callable[[RouterState, RouterContext], dict[str, Any]]
OffLoop = Callable[[RouterState, RouterContext], bool]


class _StepNode(Runnable[RouterState, dict[str, Any]]):
    """A router step as a graph node, for sync and async runs alike.

    LangGraph traces the node itself, so the step adds no run of its own; under ``ainvoke`` it
    runs inline (a plain function would go to a worker thread, a costly hop for microseconds of
    work) unless ``off_loop`` says it will block.
    """

    def __init__(self, name: str, step: Step, off_loop: OffLoop = _on_loop) -> None:
        self.name, self.step, self.off_loop = name, step, off_loop

    def invoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return self.step(input, _context())

    async def ainvoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        context = _context()
        if self.off_loop(input, context):
            return await asyncio.to_thread(self.step, input, context)
        return self.step(input, context)


class _Edge(Runnable[RouterState, str]):
    """A conditional edge's decision, run inline under ``ainvoke`` too (a plain function
    would go to a worker thread)."""

    def __init__(self, decide: Callable[[RouterState], str]) -> None:
        self.name, self.decide = decide.__name__, decide

    def invoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> str:
        return self.decide(input)

    async def ainvoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> str:
        return self.decide(input)


class _TierNode(Runnable[RouterState, dict[str, Any]]):
    """A tier as a graph node: streams the tier's answer through LangGraph's custom stream."""

    def __init__(self, tier: TierName) -> None:
        self.name = self.tier = tier

    def invoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        emit, tier_run = get_stream_writer(), _TierRun(self.tier, _context(), input)
        for chunk in tier_run.stream():
            emit(chunk)
        return tier_run.update

    async def ainvoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        emit, tier_run = get_stream_writer(), _TierRun(self.tier, _context(), input)
        async for chunk in tier_run.astream():
            emit(chunk)
        return tier_run.update


# Sent to the next tier when it continues an answer the previous tier left unfinished.
CONTINUE_PROMPT = (
    "Your previous answer was cut off. Continue it from exactly where it stopped, "
    "without repeating any of it."
)

# The tier's own chat-model run sits under its node in a trace; its tokens reach the caller
# through the router's run, so LangGraph's message stream must not show them a second time.
TIER_RUN_CONFIG: RunnableConfig = {"tags": [TAG_NOSTREAM]}


class _TierRun:
    """One tier call: fit the history, stream the tier's chunks with the routing record, turn a
    failure into a fallback, an explicit event or an error (the error contract)."""

    def __init__(self, tier: TierName, context: RouterContext, state: RouterState) -> None:
        self.tier, self.state, self.started = tier, state, context.request.started_at
        self.record = RoutingRecord.model_validate(state.get("record", {}))
        self.models = context.models()
        self.model = self.models[tier]
        self.engine, self.request = context.policy_engine(), context.request
        self.kwargs = dict(context.request.call_kwargs)
        self.continues = context.request.continue_after_failure
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

    def stream(self) -> Iterator[AIMessageChunk]:
        """The chunks to pass on; :attr:`update` is set when it ends."""
        try:
            history = self._fit(self._fitter())
            for chunk in self.model.stream(history, TIER_RUN_CONFIG, **self.kwargs):
                if (out := self._on_chunk(chunk)) is not None:  # type: ignore[arg-type]
                    yield out
        except Exception as exc:
            yield from self._on_error(exc)
            return
        yield from self._finish()
        self._persist()

    async def astream(self) -> AsyncIterator[AIMessageChunk]:
        """:meth:`stream` for async callers: counting, summarizing and database writes run
        off the event loop."""
        try:
            fitter = self._fitter()
            if fitter.fits_outright(self.history):
                history = self._fit(fitter)
            else:
                history = await asyncio.to_thread(self._fit, fitter)
            async for chunk in self.model.astream(history, TIER_RUN_CONFIG, **self.kwargs):
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

    def _fit(self, fitter: TierFitter) -> list[BaseMessage]:
        """Fit the history to this tier's window (docs/design.md §5); keep a summary it extended."""
        stored = self.state.get("summary")
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
        """A retryable failure before the first token: a fallback update. After it: an explicit
        event in the stream, then either a continuation on the next tier (when configured) or
        :class:`~langchain_stream.errors.MidStreamError`. Any other error (a bad request, a
        refusal, a programming error in the tier) reaches the caller as it is."""
        error = tier_error(exc, self.tier)
        if not getattr(error, "is_retryable", False):
            if error is exc:
                raise exc
            raise error from exc
        if not isinstance(error, ContextOverflowError):  # the request's size, not the tier's fault
            self.engine.health.breaker(self.tier).record_failure()
        if self.first_token_at is None:
            self.record.tiers_tried.append(TierAttempt(tier=self.tier, error=_describe(error)))
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
            "error": _describe(error),
        }
        if successor is not None:
            event["continues_on"] = successor
        yield AIMessageChunk(content="", response_metadata={f"{self.key}_event": event})
        self.record.tiers_tried[-1] = TierAttempt(tier=self.tier, error=_describe(error))
        self.engine.record(self.record, self.request, answered=False)
        if successor is None:
            raise MidStreamError(
                f"the {self.tier} tier failed mid-answer: {_describe(error)}",
                tier=self.tier,
                partial_text=partial,
            ) from exc
        self.update = {
            "failed": True,
            "partial": partial,
            "record": self.record.model_dump(mode="json", exclude_none=True),
            **self.kept,
        }

    def _successor(self) -> TierName | None:
        """The tier that continues a broken answer: only when configured, only once, and
        only for text (half a tool call cannot be continued)."""
        if not self.continues or self.prefix:
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


def _query_and_context(messages: Sequence[BaseMessage]) -> tuple[str, list[str]]:
    """The text of the latest user turn, and a few turns before it for follow-ups."""
    index = next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)),
        len(messages) - 1,
    )
    earlier = messages[max(0, index - JUDGE_CONTEXT_TURNS) : index]
    return messages[index].text, [m.text for m in earlier]


# --- the compiled graph ----------------------------------------------------------------------


def build_router_graph(tiers: Iterable[TierName] = TIERS) -> StateGraph:
    """The router graph, uncompiled (for embedding as a subgraph or adding a checkpointer).

    Args:
        tiers: The tier nodes' names (a mapping of name to chat model gives its names); the
            models themselves come with each run's :class:`RouterContext`.
    """
    names = list(tiers)
    graph = StateGraph(RouterState, context_schema=RouterContext)
    graph.add_node(COMPRESS, _StepNode(COMPRESS, compress))
    graph.add_node(JUDGE, _StepNode(JUDGE, judge))
    graph.add_node(ROUTE, _StepNode(ROUTE, route, _routes_off_loop))
    graph.add_node(FALLBACK, _StepNode(FALLBACK, fallback, _gives_up))
    for tier in names:
        graph.add_node(tier, _TierNode(tier))
        graph.add_conditional_edges(tier, _Edge(route_after_tier), {END: END, FALLBACK: FALLBACK})
    graph.add_edge(START, COMPRESS)
    graph.add_edge(COMPRESS, JUDGE)
    graph.add_edge(JUDGE, ROUTE)
    to_tier = _Edge(route_to_tier)
    graph.add_conditional_edges(ROUTE, to_tier, {t: t for t in (*names, FALLBACK)})
    graph.add_conditional_edges(FALLBACK, to_tier, {t: t for t in names})
    return graph


@lru_cache(maxsize=8)
def router_graph(tiers: tuple[TierName, ...] = TIERS) -> CompiledStateGraph:
    """The compiled router graph for these tier names, built once per process."""
    return build_router_graph(tiers).compile(name=GRAPH_NAME)


def conversation_graph(tiers: tuple[TierName, ...] = TIERS) -> CompiledStateGraph:
    """The router graph with the conversation checkpointer (docs/design.md §5).

    Runs with a ``thread_id`` keep the conversation's summary, so later requests extend it
    rather than recompute it, in this process or the next: LangGraph's SQLite or PostgreSQL
    checkpointer on the database of ``STREAM_DATABASE_URL`` (see
    :mod:`langchain_stream.context.store`).
    """
    from langchain_stream.policies.engine import database_url

    return _conversation_graph(database_url(get_settings()), tiers)


@lru_cache(maxsize=8)
def _conversation_graph(url: str | None, tiers: tuple[TierName, ...]) -> CompiledStateGraph:
    checkpointer = conversation_checkpointer(url)
    return build_router_graph(tiers).compile(checkpointer=checkpointer, name=GRAPH_NAME)


# --- running the router for StreamChatModel ----------------------------------------------
#
# The graph runs as a child of the chat model's own run: its callbacks are the run's child
# manager (the caller's handlers, tags and metadata), so a trace shows the model's run, the
# graph's steps under it and the tier's run under its step. The caller's other config stays
# out: StreamChatModel's entry points run the call in a context with no parent config, so
# inside another graph LangGraph does not take the router for the caller's subgraph (its
# checkpointer, its stream, its namespace).


def stream_router(
    state: RouterState, context: RouterContext, callbacks: BaseCallbackManager | None
) -> Iterator[AIMessageChunk]:
    """Run the router for a synchronous caller: the async graph, on the background loop (its
    sync runner would start threads for every request)."""
    return iterate_async(lambda: astream_router(state, context, callbacks))


def astream_router(
    state: RouterState, context: RouterContext, callbacks: BaseCallbackManager | None
) -> AsyncIterator[AIMessageChunk]:
    """Run the router for an async caller: the chunks the tier nodes write."""
    tiers = tuple(context.models())
    config: RunnableConfig = {
        # A manager without handlers would still start a run manager for every step.
        "callbacks": callbacks if callbacks is not None and callbacks.handlers else None,
        # compress, judge, route, then a tier and a fallback step per tier at the most
        "recursion_limit": 4 + 2 * len(tiers),
    }
    thread = context.request.conversation_id
    if thread is None:  # nothing to keep: no checkpointer
        return router_graph(tiers).astream(state, config, context=context, stream_mode="custom")
    # The caller sends the whole conversation each time (a chat model's contract): it replaces
    # the saved messages; the saved summary stays. One checkpoint per request.
    state = {**state, "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *state["messages"]]}
    config["configurable"] = {"thread_id": thread}
    return conversation_graph(tiers).astream(
        state, config, context=context, stream_mode="custom", durability="exit"
    )
