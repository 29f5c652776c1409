"""One trace tree: the caller's run is the parent, the router's steps are its children, and the
tier's chat-model run sits under the step that called it; each run reports its tokens once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any
from uuid import UUID

import pytest
from langchain_core.messages import AIMessageChunk, AnyMessage, HumanMessage
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_stream import StreamChatModel
from tests.unit_tests.fakes import FixedJudge, ScriptedTier

ANSWER = ["Lima", " is", " the", " capital."]
CALLER = {"tags": ["caller-tag"], "metadata": {"caller": "tests"}}


class TreeRecorder(BaseTracer):
    """The finished trees, and every token reported, by run.

    Inline: a handler that is not runs on a worker thread under an async graph, where a child's
    start may be handled before its parent's.
    """

    run_inline = True

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[Run] = []
        self.tokens: dict[UUID, list[str]] = defaultdict(list)

    def _persist_run(self, run: Run) -> None:
        self.roots.append(run)

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> Any:
        self.tokens[run_id].append(token)
        return super().on_llm_new_token(token, run_id=run_id, **kwargs)


def _router() -> StreamChatModel:
    return StreamChatModel(local=ScriptedTier(tokens=ANSWER), judge=FixedJudge())


def _call(router: StreamChatModel, entry: str, config: dict[str, Any]) -> str:
    if entry == "invoke":
        return router.invoke("What is the capital of Peru?", config).text
    if entry == "stream":
        return "".join(c.text for c in router.stream("What is the capital of Peru?", config))
    if entry == "ainvoke":
        return asyncio.run(router.ainvoke("What is the capital of Peru?", config)).text

    async def collect() -> str:
        return "".join(
            [c.text async for c in router.astream("What is the capital of Peru?", config)]
        )

    return asyncio.run(collect())


def _walk(run: Run) -> list[Run]:
    return [run, *(r for child in run.child_runs for r in _walk(child))]


@pytest.mark.parametrize("entry", ["invoke", "stream", "ainvoke", "astream"])
def test_one_invoke_is_one_tree(entry: str) -> None:
    recorder = TreeRecorder()
    answer = _call(_router(), entry, {**CALLER, "callbacks": [recorder]})
    assert answer == "".join(ANSWER)
    (root,) = recorder.roots
    assert root.name == "StreamChatModel"
    everything = _walk(root)
    by_name = {run.name: run for run in everything}
    assert {"compress", "judge", "route", "local", "ScriptedTier"} <= set(by_name)

    # The steps are children of the router's graph, which is a child of the model's run.
    graph = by_name["langchain-stream-router"]
    assert graph.parent_run_id == root.id
    for step in ("compress", "judge", "route", "local"):
        assert by_name[step].parent_run_id == graph.id
    # The tier's run is a child of its step, and kept out of message streams.
    tier = by_name["ScriptedTier"]
    assert tier.parent_run_id == by_name["local"].id
    assert "nostream" in (tier.tags or [])

    # What the judge and the route decided, in their outputs.
    judged = by_name["judge"].outputs["record"]
    assert judged["complexity"] == "HIGH" and judged["scores"]["HIGH"] == 0.8
    assert by_name["route"].outputs["record"]["reason"] == "judge"
    assert by_name["route"].outputs["candidates"] == ["local"]

    # The caller's tags and metadata reach every run under its own.
    for run in everything:
        assert "caller-tag" in (run.tags or []), run.name
        assert run.extra.get("metadata", {}).get("caller") == "tests", run.name

    # Each run reports each token once: the model's run (when it streams) and the tier's.
    assert "".join(recorder.tokens[tier.id]) == "".join(ANSWER)
    if entry in ("stream", "astream"):
        assert "".join(recorder.tokens[root.id]) == "".join(ANSWER)
    assert set(recorder.tokens) <= {root.id, tier.id}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_inside_a_langgraph_graph_tokens_stream_once(asynchronous: bool) -> None:
    router = _router()

    def answer(state: MessagesState) -> dict[str, list[AnyMessage]]:
        return {"messages": [router.invoke(state["messages"])]}

    async def aanswer(state: MessagesState) -> dict[str, list[AnyMessage]]:
        return {"messages": [await router.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", aanswer if asynchronous else answer)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    graph = builder.compile()
    question = {"messages": [HumanMessage("What is the capital of Peru?")]}

    async def collect() -> list[tuple[Any, dict[str, Any]]]:
        return [item async for item in graph.astream(question, config, stream_mode="messages")]

    recorder = TreeRecorder()
    config: Any = {"callbacks": [recorder]}
    if asynchronous:
        items = asyncio.run(collect())
    else:
        items = list(graph.stream(question, config, stream_mode="messages"))
    streamed = "".join(c.text for c, _ in items if isinstance(c, AIMessageChunk))
    assert streamed == "".join(ANSWER)  # once, not once per level
    assert {meta["langgraph_node"] for _, meta in items} == {"agent"}

    (root,) = recorder.roots
    names = {run.name: run for run in _walk(root)}
    model = names["StreamChatModel"]
    assert model.parent_run_id == names["agent"].id
    assert names["langchain-stream-router"].parent_run_id == model.id
    assert names["ScriptedTier"].parent_run_id == names["local"].id
