"""StreamChatModel over the router graph, on the real embedded model and real faults."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import Field

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import get_settings
from langchain_stream.errors import InvalidRequestError, MidStreamError, NoTierAvailableError
from langchain_stream.graph import router_graph


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens


def unreachable_cloud() -> ChatOpenAI:
    """A real ChatOpenAI whose server is down (connection refused on loopback)."""
    return ChatOpenAI(
        model="gpt-test",
        base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        api_key="sk-test",
        max_retries=0,
        timeout=5,
    )


class FailsMidStream(ChatLocal):
    """The real local tier, cut off after three chunks (a fault no real tier can be made to
    produce on demand). It wraps the one generation path behind sync and async streaming."""

    def _iter_chunks(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for index, chunk in enumerate(super()._iter_chunks(*args, **kwargs)):
            if index == 3:
                raise ConnectionError("tier connection lost")
            yield chunk


@pytest.fixture(scope="module")
def router(local_model: ChatLocal) -> StreamChatModel:
    return StreamChatModel(local=local_model, judge="keyword")


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    return merged


def test_first_chunk_carries_the_routing_record(router: StreamChatModel) -> None:
    chunks = list(router.stream("What is the capital of France?"))
    first = chunks[0].response_metadata["routing"]
    assert first["tier"] == "local"
    assert first["complexity"] == "LOW"
    assert first["reason"] == "judge"
    assert first["judge"] == "keyword"
    assert first["ttft_ms"] > 0 and first["judge_ms"] >= 0
    assert "usage" not in first  # known only at the end
    assert chunks[0].content  # the record rides on a real token, not an empty chunk
    whole = _merge(chunks).response_metadata["routing"]
    assert whole["usage"]["output_tokens"] > 0
    assert whole["tokens_per_s"] > 0
    assert {k: whole[k] for k in first} == first


def test_invoke_result_carries_the_whole_record(router: StreamChatModel) -> None:
    result = router.invoke("Explain how a hash map works.")
    record = result.response_metadata["routing"]
    assert record["complexity"] == "MEDIUM"
    assert record["tier"] == "local"  # the only configured tier answers MEDIUM too
    assert record["tiers_tried"] == [{"tier": "local"}]
    assert result.usage_metadata["output_tokens"] == record["usage"]["output_tokens"]


async def test_async_paths_and_batch(router: StreamChatModel) -> None:
    chunks = [c async for c in router.astream("Say hi.")]
    assert chunks[0].response_metadata["routing"]["tier"] == "local"
    result = await router.ainvoke("Say hi.")
    assert isinstance(result, AIMessage) and result.content
    batch = router.batch(["Say hi.", "Say bye."])
    assert all(r.response_metadata["routing"]["tier"] == "local" for r in batch)
    abatch = await router.abatch(["Say hi.", "Say bye."])
    assert len(abatch) == 2


def test_pin_skips_the_judge(local_model: ChatLocal) -> None:
    pinned = StreamChatModel(local=local_model, tier="local")
    record = pinned.invoke("Prove Fermat's last theorem.").response_metadata["routing"]
    assert record["reason"] == "pin"
    assert "complexity" not in record
    per_call = StreamChatModel(local=local_model).invoke("Prove it.", model="stream-local")
    assert per_call.response_metadata["routing"]["reason"] == "pin"


def test_pin_to_an_unconfigured_tier_is_a_clear_error(local_model: ChatLocal) -> None:
    with pytest.raises(NoTierAvailableError, match="'cloud' tier, which is not configured"):
        StreamChatModel(local=local_model, tier="cloud").invoke("hi")
    with pytest.raises(InvalidRequestError, match="unknown model"):
        StreamChatModel(local=local_model).invoke("hi", model="gpt-4o")


def test_tier_down_before_first_token_falls_back(local_model: ChatLocal) -> None:
    router = StreamChatModel(local=local_model, cloud=unreachable_cloud(), judge="keyword")
    chunks = list(router.stream("Prove that the square root of 2 is irrational."))
    record = _merge(chunks).response_metadata["routing"]
    assert record["complexity"] == "HIGH"
    assert record["tier"] == "local"
    assert record["reason"] == "fallback"
    tried = record["tiers_tried"]
    assert [t["tier"] for t in tried] == ["cloud", "local"]
    assert "Connection" in tried[0]["error"]
    assert "".join(c.text for c in chunks).strip()  # the whole answer, from one tier


def test_every_tier_down_lists_each_failure(tmp_path) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_text("not a model")
    router = StreamChatModel(
        local=ChatLocal(model_path=str(corrupt)), cloud=unreachable_cloud(), judge="keyword"
    )
    with pytest.raises(NoTierAvailableError) as info:
        router.invoke("Prove that there are infinitely many primes.")
    assert [a["tier"] for a in info.value.attempts] == ["cloud", "local"]
    assert "not a GGUF" in info.value.attempts[1]["error"]


def test_failure_mid_stream_is_never_glued_to_another_answer(local_model: ChatLocal) -> None:
    router = StreamChatModel(local=FailsMidStream(temperature=0.0, max_tokens=48), tier="local")
    received: list[AIMessageChunk] = []
    with pytest.raises(MidStreamError) as info:
        for chunk in router.stream("Tell me about rivers."):
            received.append(chunk)
    assert info.value.tier == "local"
    assert info.value.partial_text == "".join(c.text for c in received)
    # Three real chunks, then an explicit event, then the error: nothing from another tier.
    assert len(received) == 4
    event = received[-1].response_metadata["routing_event"]
    assert event["type"] == "mid_stream_failure"
    assert event["tier"] == "local"
    assert "tier connection lost" in event["error"]


class RecordsItsInput(ChatLocal):
    """The real local tier, keeping the messages it was asked to continue."""

    received: list[list[BaseMessage]] = Field(default_factory=list)

    def _iter_chunks(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        self.received.append(list(messages))
        yield from super()._iter_chunks(messages, *args, **kwargs)


@pytest.fixture
def continuing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_CONTINUE_AFTER_MID_STREAM_FAILURE", "true")
    get_settings.cache_clear()


def _continuing_router() -> tuple[StreamChatModel, RecordsItsInput]:
    # A LOW query: local first, then the next tier in LOW's order continues the answer.
    successor = RecordsItsInput(temperature=0.0, max_tokens=16, received=[])
    router = StreamChatModel(
        local=FailsMidStream(temperature=0.0, max_tokens=48),
        cloud=successor,
        judge="keyword",
    )
    return router, successor


def _check_continuation(received: list[AIMessageChunk], successor: RecordsItsInput) -> None:
    events = [c for c in received if "routing_event" in c.response_metadata]
    assert len(events) == 1
    event = events[0].response_metadata["routing_event"]
    assert event["type"] == "mid_stream_failure"
    assert (event["tier"], event["continues_on"]) == ("local", "cloud")
    cut = received.index(events[0])
    partial = "".join(c.text for c in received[:cut])
    assert len(received[:cut]) == 3 and partial  # the local tier's three chunks came first
    after = received[cut + 1 :]
    assert "".join(c.text for c in after).strip()  # the successor wrote the rest
    assert "routing" not in after[0].response_metadata  # never a second record under one key
    # The successor saw the partial answer as its own earlier turn, then the request to go on.
    asked = successor.received[-1]
    assert isinstance(asked[-2], AIMessage) and asked[-2].text == partial
    assert isinstance(asked[-1], HumanMessage) and "Continue" in asked[-1].text
    whole = _merge(received)
    assert whole.text.startswith(partial)
    first, second = (
        whole.response_metadata["routing"],
        whole.response_metadata["routing_continuation"],
    )
    assert first["tier"] == "local"
    assert second["tier"] == "cloud" and second["reason"] == "fallback"
    assert second["tiers_tried"][0]["tier"] == "local"
    assert "tier connection lost" in second["tiers_tried"][0]["error"]
    assert second["usage"]["output_tokens"] > 0  # the successor's closing chunk, its own key


@pytest.mark.usefixtures("continuing", "local_model")
@pytest.mark.parametrize("conversation", [None, "thread-1"], ids=["direct", "compiled-graph"])
def test_a_broken_answer_continues_on_the_next_tier_when_configured(
    conversation: str | None,
) -> None:
    # With a conversation id the request runs through the compiled graph and its checkpointer.
    router, successor = _continuing_router()
    chunks = router.stream("What is the capital of France?", conversation_id=conversation)
    _check_continuation(list(chunks), successor)
    result = router.invoke("What is the capital of Spain?")
    assert result.response_metadata["routing_continuation"]["tier"] == "cloud"
    assert result.response_metadata["routing_event"]["continues_on"] == "cloud"


@pytest.mark.usefixtures("continuing", "local_model")
async def test_a_broken_answer_continues_on_the_next_tier_async() -> None:
    router, successor = _continuing_router()
    received = [chunk async for chunk in router.astream("What is the capital of Italy?")]
    _check_continuation(received, successor)


@pytest.mark.usefixtures("continuing", "local_model")
def test_with_no_tier_left_a_broken_answer_is_still_an_error() -> None:
    router = StreamChatModel(local=FailsMidStream(temperature=0.0, max_tokens=48), tier="local")
    received: list[AIMessageChunk] = []
    with pytest.raises(MidStreamError):
        for chunk in router.stream("Tell me about lakes."):
            received.append(chunk)
    event = received[-1].response_metadata["routing_event"]
    assert "continues_on" not in event


def _graph_run(router: StreamChatModel, question: str) -> list[AIMessageChunk]:
    """The same request through the compiled LangGraph graph (LangGraph's own runtime)."""
    state, context = router._router_input([HumanMessage(question)], None, {}, {})
    return list(router_graph().stream(state, context=context, stream_mode="custom"))


@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "Prove that there are infinitely many primes."],
)
def test_direct_steps_and_the_compiled_graph_route_alike(
    local_model: ChatLocal, question: str
) -> None:
    # A HIGH question tries the (unreachable) cloud first and falls back: both paths must take
    # the same edges, write the same record and stream the same answer.
    router = StreamChatModel(local=local_model, cloud=unreachable_cloud(), judge="keyword")
    direct, graph = list(router.stream(question)), _graph_run(router, question)
    records = [_merge(run).response_metadata["routing"] for run in (direct, graph)]
    volatile = {"ttft_ms", "tier_ttft_ms", "judge_ms", "duration_ms", "tokens_per_s"}
    assert [{k: v for k, v in r.items() if k not in volatile} for r in records[1:]] == [
        {k: v for k, v in records[0].items() if k not in volatile}
    ]
    assert "".join(c.text for c in direct) == "".join(c.text for c in graph)
    # (langchain-core's stream adds an empty closing chunk of its own, so count the tokens)
    assert [c.text for c in direct if c.text] == [c.text for c in graph if c.text]


def test_works_inside_an_lcel_chain(router: StreamChatModel) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer briefly."), ("human", "What colour is {thing}?")]
    )
    chain = prompt | router | StrOutputParser()
    pieces = list(chain.stream({"thing": "the sky"}))
    assert len(pieces) > 3  # streamed through the chain, token by token
    assert chain.invoke({"thing": "grass"}).strip()


@tool
def lookup_population(city: str) -> str:
    """Look up the population of a city."""
    return f"{city} has 2,100,000 inhabitants."


def test_works_as_the_model_of_an_agent(router: StreamChatModel) -> None:
    from langchain.agents import create_agent
    from langchain.agents.middleware import ModelRequest, wrap_model_call

    @wrap_model_call
    def call_a_tool_first(request: ModelRequest, handler):  # type: ignore[no-untyped-def]
        # The 135M model seldom chooses a tool unprompted: force the first step, then let it
        # answer from the tool's result.
        has_result = any(m.type == "tool" for m in request.messages)
        return handler(request.override(tool_choice="none" if has_result else "any"))

    agent = create_agent(router, tools=[lookup_population], middleware=[call_a_tool_first])
    state = agent.invoke({"messages": [HumanMessage("How many people live in Paris?")]})
    kinds = [m.type for m in state["messages"]]
    assert kinds[:3] == ["human", "ai", "tool"]
    assert state["messages"][1].tool_calls[0]["name"] == "lookup_population"
    assert "2,100,000" in state["messages"][2].content
    assert kinds[-1] == "ai" and state["messages"][-1].response_metadata["routing"]["tier"]

    # Streaming the agent's messages: each token once, not once per graph level.
    streamed: dict[str, str] = {}
    final: dict[str, Any] = {}
    for mode, payload in agent.stream(
        {"messages": [HumanMessage("How many people live in Lyon?")]},
        stream_mode=["messages", "values"],
    ):
        if mode == "messages":
            chunk, _meta = payload
            if isinstance(chunk, AIMessageChunk):
                streamed[chunk.id] = streamed.get(chunk.id, "") + chunk.text
        else:
            final = payload
    answers = [m for m in final["messages"] if m.type == "ai" and m.content]
    assert answers
    assert streamed[answers[-1].id] == answers[-1].content
