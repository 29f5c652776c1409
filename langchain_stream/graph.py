"""The router as a LangGraph ``StateGraph``: compress and judge → route → tier, with fallback.

::

    START ┬→ compress ┬→ route ─route_to_tier─► local | hpc | cloud ─► END
          └→ judge ───┘                ▲                       │ failed before its first token
                                       └─ route_to_tier ◄─ fallback

The compiled graph is the router's only runtime: :class:`~langchain_stream.StreamChatModel`
runs every request through it (docs/design.md#a-requests-path-through-the-graph).

Per-run inputs that are not conversation state (the tier models, the judge, the policies and
the resolved :class:`~langchain_stream.request.RouteRequest`) travel in the runtime context,
:class:`RouterContext`. Tokens leave the tier nodes as they are produced, through LangGraph's
custom stream (``stream_mode="custom"``); each tier node also returns the whole answer, so the
graph works with ``invoke`` and inside larger graphs.

A tier's failure is judged by the error it raises (docs/design.md#the-error-contract):
:func:`~langchain_stream.errors.tier_error` translates it at the tier's boundary, and the
router falls back only when the result ``is_retryable``; anything else reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, NotRequired, TypedDict

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import get_runtime

from langchain_stream._threads import iterate_async
from langchain_stream.config import TIERS, get_settings
from langchain_stream.context import (
    conversation_checkpointer,
    load_summary,
)
from langchain_stream.errors import InvalidRequestError, NoTierAvailableError
from langchain_stream.images import has_images, inspect_images
from langchain_stream.judge import ComplexityJudge, resolve_judge
from langchain_stream.judge.base import is_quick
from langchain_stream.judge.offload import in_judge_pool
from langchain_stream.policies.engine import PolicyEngine
from langchain_stream.request import RouteRequest, TierName
from langchain_stream.routing import RoutingRecord
from langchain_stream.tier_call import TierCall

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
    checked against the history (docs/design.md#context). Each tier node then fits the history to
    its own window, so a fallback to another tier refits it."""
    summary = load_summary(state["messages"], state.get("summary"))
    return {"summary": summary.model_dump() if summary is not None else None}


def judge(state: RouterState, context: RouterContext) -> dict[str, Any]:
    """Judge the current query; a pinned request skips the judge."""
    if _pin(state, context.request) is not None:
        return {}
    record = RoutingRecord()  # the first step to write one: compress runs beside it
    query, earlier = _query_and_context(state["messages"])
    judgment = context.complexity_judge().judge(query, earlier)
    record.complexity = judgment.complexity
    record.scores = {k.value: round(v, 4) for k, v in judgment.scores.items()}
    record.judge = judgment.judge
    record.judge_ms = round(judgment.latency_ms, 3)
    return {"record": record.model_dump(mode="json", exclude_none=True)}


def route(state: RouterState, context: RouterContext) -> dict[str, Any]:
    """Order the candidate tiers: the judge's class (or the pin) under the routing policies.

    Images are checked first (:func:`~langchain_stream.images.inspect_images`); a request
    with images that no allowed tier can read is refused with the settings that decide it.
    """
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
    # Bad images are refused before anything is routed (and before the privacy check reads
    # the request): a 400 on the server.
    images = inspect_images(state["messages"], engine.image_limits)
    if images:
        record.images = [image.record() for image in images]
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
    if images:  # the audit log keeps what was sent where, never the bytes
        described = "; ".join(image.describe() for image in images)
        record.policies.insert(0, f"images: {len(images)} ({described})")
    if not decision.candidates:
        engine.record(record, request, answered=False)
        if images:
            raise InvalidRequestError(
                engine.vision_unavailable(list(models), request, pin, decision.policies)
            )
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
    return (
        engine.reads_store(request, available)
        or has_images(state["messages"])  # decoding them takes milliseconds
        or engine.scans_long(state["messages"], request.call_kwargs, available)
    )


def _gives_up(state: RouterState, context: RouterContext) -> bool:
    return len(state.get("candidates", [])) <= 1  # then it writes the audit log


def _on_loop(state: RouterState, context: RouterContext) -> bool:
    return False


def _judges_off_loop(state: RouterState, context: RouterContext) -> bool:
    # A pinned request skips the judge; a quick judge costs less than the hop to a thread.
    return _pin(state, context.request) is None and not is_quick(context.complexity_judge())


Step = Callable[[RouterState, RouterContext], dict[str, Any]]
OffLoop = Callable[[RouterState, RouterContext], bool]


def _in_thread(step: Step, state: RouterState, context: RouterContext) -> Awaitable[dict[str, Any]]:
    return asyncio.to_thread(step, state, context)


def _in_judge_pool(
    step: Step, state: RouterState, context: RouterContext
) -> Awaitable[dict[str, Any]]:
    # A judge may be slow (llama.cpp, a user's own): a bounded pool of its own, so judgments
    # queue there and never on the event loop or the default thread pool.
    return in_judge_pool(contextvars.copy_context().run, step, state, context)


OffLoopRunner = Callable[[Step, RouterState, RouterContext], Awaitable[dict[str, Any]]]


class _StepNode(Runnable[RouterState, dict[str, Any]]):
    """A router step as a graph node, for sync and async runs alike.

    LangGraph traces the node itself, so the step adds no run of its own; under ``ainvoke`` it
    runs inline (a plain function would go to a worker thread, a costly hop for microseconds of
    work) unless ``off_loop`` says it will block.
    """

    def __init__(
        self,
        name: str,
        step: Step,
        off_loop: OffLoop = _on_loop,
        run_off_loop: OffLoopRunner = _in_thread,
    ) -> None:
        self.name, self.step, self.off_loop, self.run_off_loop = name, step, off_loop, run_off_loop

    def invoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return self.step(input, _context())

    async def ainvoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        context = _context()
        if self.off_loop(input, context):
            return await self.run_off_loop(self.step, input, context)
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
        emit, tier_run = get_stream_writer(), TierCall(self.tier, _context(), input)
        for chunk in tier_run.stream():
            emit(chunk)
        return tier_run.update

    async def ainvoke(
        self, input: RouterState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        emit, tier_run = get_stream_writer(), TierCall(self.tier, _context(), input)
        async for chunk in tier_run.astream():
            emit(chunk)
        return tier_run.update


def _query_and_context(messages: Sequence[BaseMessage]) -> tuple[str, list[str]]:
    """The text of the latest user turn, and a few turns before it for follow-ups."""
    index = next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)),
        len(messages) - 1,
    )
    earlier = messages[max(0, index - JUDGE_CONTEXT_TURNS) : index]
    return messages[index].text, [m.text for m in earlier]


# --- the compiled graph ----------------------------------------------------------------------


def tier_node_names() -> list[TierName]:
    """The graph's tier nodes by default: the configured tiers, and the default ones (which a
    ``StreamChatModel`` may be given as models)."""
    names = get_settings().configured_tiers
    return [*names, *(t for t in TIERS if t not in names)]


def build_router_graph(tiers: Iterable[TierName] | None = None) -> StateGraph:
    """The router graph, uncompiled (for embedding as a subgraph or adding a checkpointer).

    Args:
        tiers: The tier nodes' names (a mapping of name to chat model gives its names; by
            default :func:`tier_node_names`); the models themselves come with each run's
            :class:`RouterContext`.
    """
    names = list(tiers) if tiers is not None else tier_node_names()
    graph = StateGraph(RouterState, context_schema=RouterContext)
    graph.add_node(COMPRESS, _StepNode(COMPRESS, compress))
    graph.add_node(JUDGE, _StepNode(JUDGE, judge, _judges_off_loop, _in_judge_pool))
    graph.add_node(ROUTE, _StepNode(ROUTE, route, _routes_off_loop))
    graph.add_node(FALLBACK, _StepNode(FALLBACK, fallback, _gives_up))
    for tier in names:
        graph.add_node(tier, _TierNode(tier))
        graph.add_conditional_edges(tier, _Edge(route_after_tier), {END: END, FALLBACK: FALLBACK})
    # Compress and judge read only the messages, so they run in one superstep (each
    # superstep costs LangGraph about half a millisecond); route waits for both.
    graph.add_edge(START, COMPRESS)
    graph.add_edge(START, JUDGE)
    graph.add_edge([COMPRESS, JUDGE], ROUTE)
    to_tier = _Edge(route_to_tier)
    graph.add_conditional_edges(ROUTE, to_tier, {t: t for t in (*names, FALLBACK)})
    graph.add_conditional_edges(FALLBACK, to_tier, {t: t for t in names})
    return graph


def router_graph(tiers: tuple[TierName, ...] | None = None) -> CompiledStateGraph:
    """The compiled router graph for these tier names (by default :func:`tier_node_names`),
    built once per process."""
    return _router_graph(tiers if tiers is not None else tuple(tier_node_names()))


@lru_cache(maxsize=8)
def _router_graph(tiers: tuple[TierName, ...]) -> CompiledStateGraph:
    return build_router_graph(tiers).compile(name=GRAPH_NAME)


def conversation_graph(tiers: tuple[TierName, ...] | None = None) -> CompiledStateGraph:
    """The router graph with the conversation checkpointer (docs/design.md#context).

    Runs with a ``thread_id`` keep the conversation's summary, so later requests extend it
    rather than recompute it, in this process or the next: LangGraph's SQLite or PostgreSQL
    checkpointer on the database of ``STREAM_DATABASE_URL`` (see
    :mod:`langchain_stream.context.store`).
    """
    from langchain_stream.policies.engine import database_url

    names = tiers if tiers is not None else tuple(tier_node_names())
    return _conversation_graph(database_url(get_settings()), names)


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
        # compress and judge, route, then a tier and a fallback step per tier at the most
        "recursion_limit": 4 + 2 * len(tiers),
    }
    thread = context.request.conversation_id
    if thread is None:  # nothing to keep: no checkpointer
        return _router_graph(tiers).astream(state, config, context=context, stream_mode="custom")
    # The caller sends the whole conversation each time (a chat model's contract): it replaces
    # the saved messages; the saved summary stays. One checkpoint per request.
    state = {**state, "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *state["messages"]]}
    config["configurable"] = {"thread_id": thread}
    return conversation_graph(tiers).astream(
        state, config, context=context, stream_mode="custom", durability="exit"
    )
