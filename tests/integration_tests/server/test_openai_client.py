"""The official openai client and langchain-openai's ChatOpenAI against `stream serve`."""

from __future__ import annotations

import json

import openai
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI

from tests.integration_tests.server.conftest import KEY

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=KEY, max_retries=0)


@pytest.fixture
def aclient(server_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server_url}/v1", api_key=KEY, max_retries=0)


def test_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["stream-auto", "stream-local"]
    assert client.models.retrieve("stream-local").id == "stream-local"


def test_sync_completion_with_routing_header_and_field(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="stream-auto", messages=QUESTION, max_tokens=12, temperature=0
    )
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.model == "stream-auto"
    assert completion.id.startswith("chatcmpl-") and completion.created > 0
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    header = json.loads(raw.headers["x-stream-routing"])
    assert header["tier"] == "local" and header["complexity"] == "LOW"
    routing = completion.model_extra["routing"]
    assert routing["tier"] == "local" and routing["usage"]["output_tokens"] > 0


def test_sync_stream_conforms_chunk_by_chunk(client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="stream-local",
        messages=QUESTION,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert json.loads(response.headers["x-stream-routing"])["reason"] == "pin"
        chunks = list(response.parse())
    *answer, usage_chunk = chunks
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == "stream-local" and chunk.created > 0
    assert answer[0].choices[0].delta.role == "assistant"
    assert answer[0].model_extra["routing"]["tier"] == "local"  # known at the first token
    text = "".join(c.choices[0].delta.content or "" for c in answer)
    assert text.strip()
    reasons = [c.choices[0].finish_reason for c in answer]
    assert reasons[:-1] == [None] * (len(answer) - 1) and reasons[-1] in ("stop", "length")
    assert answer[-1].model_extra["routing"]["usage"]["output_tokens"] > 0
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None and usage_chunk.usage.completion_tokens > 0


def test_sync_stream_without_usage_option_sends_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="stream-local", messages=QUESTION, max_tokens=6, stream=True
        )
    )
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="stream-local",
            messages=WEATHER,
            tools=[WEATHER_TOOL],
            tool_choice="required",
            stream=True,
            max_tokens=48,
        )
    )
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].index == 0 and deltas[0].id and deltas[0].type == "function"
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert all(d.id is None and d.index == 0 for d in deltas[1:])
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert "city" in json.loads(arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_async_completion_with_a_named_tool(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(
        model="stream-auto",
        messages=WEATHER,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=48,
    )
    message = completion.choices[0].message
    assert message.tool_calls is not None and message.tool_calls[0].function.name == "get_weather"
    assert "city" in json.loads(message.tool_calls[0].function.arguments)
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_async_stream(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="stream-auto", messages=QUESTION, max_tokens=8, stream=True
    )
    text = [c.choices[0].delta.content or "" async for c in stream]
    assert "".join(text).strip()


def test_a_conversation_with_a_tool_result_is_answered(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "Answer in one sentence."},
        *WEATHER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 °C and sunny"},
    ]
    completion = client.chat.completions.create(
        model="stream-local", messages=messages, tools=[WEATHER_TOOL], max_tokens=16
    )
    assert completion.choices[0].message.content


def test_chat_openai_invoke_stream_and_tools(server_url: str) -> None:
    llm = ChatOpenAI(
        base_url=f"{server_url}/v1",
        api_key=KEY,
        model="stream-local",
        max_tokens=12,
        max_retries=0,
        stream_usage=True,
    )
    answer = llm.invoke("Name a colour.")
    assert answer.content and answer.response_metadata["finish_reason"] in ("stop", "length")
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0

    merged: AIMessageChunk | None = None
    count = 0
    for chunk in llm.stream("Name a fruit."):
        merged = chunk if merged is None else merged + chunk
        count += 1
    assert merged is not None and merged.content and count > 2
    assert merged.usage_metadata is not None  # the include_usage chunk

    with_tools = ChatOpenAI(
        base_url=f"{server_url}/v1", api_key=KEY, model="stream-local", max_tokens=48, max_retries=0
    ).bind_tools([WEATHER_TOOL], tool_choice="get_weather")
    called = with_tools.invoke("What is the weather in Rome?")
    assert called.tool_calls and called.tool_calls[0]["name"] == "get_weather"
    assert "city" in called.tool_calls[0]["args"]
