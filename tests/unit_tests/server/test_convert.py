"""OpenAI messages and parameters ↔ LangChain, one conversion at a time."""

from __future__ import annotations

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_stream.errors import InvalidRequestError
from langchain_stream.server import openai_schema as oa
from langchain_stream.server.convert import (
    call_kwargs,
    completion_of,
    delta_of,
    finish_reason_of,
    to_langchain_messages,
    usage_of,
)

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def request(**fields: object) -> oa.ChatCompletionRequest:
    body = {"model": "stream-auto", "messages": [{"role": "user", "content": "hi"}], **fields}
    return oa.ChatCompletionRequest.model_validate(body)


def test_every_role_becomes_its_langchain_message() -> None:
    body = request(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}], "name": "ann"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "content": "4 °C", "tool_call_id": "call_1"},
        ]
    )
    system, user, assistant, tool = to_langchain_messages(body.messages)
    assert isinstance(system, SystemMessage) and system.content == "Be brief."
    assert isinstance(user, HumanMessage) and user.name == "ann"
    assert user.content == [{"type": "text", "text": "Weather?"}]
    assert isinstance(assistant, AIMessage)
    assert assistant.tool_calls[0]["args"] == {"city": "Oslo"}
    assert assistant.tool_calls[0]["id"] == "call_1"
    assert isinstance(tool, ToolMessage) and tool.tool_call_id == "call_1"


def test_tool_call_arguments_that_are_not_a_json_object_are_a_bad_request() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2"}}
    body = request(messages=[{"role": "assistant", "tool_calls": [call]}])
    with pytest.raises(InvalidRequestError, match="messages\\[0\\]"):
        to_langchain_messages(body.messages)


def test_call_kwargs_carry_the_generation_parameters() -> None:
    body = request(
        temperature=0,
        top_p=0.5,
        max_completion_tokens=9,
        max_tokens=99,
        stop="END",
        seed=3,
        tools=[TOOL],
        tool_choice="required",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        conversation_id="conv-1",
        privacy="institutional",
    )
    kwargs = call_kwargs(body, user="lab")
    assert kwargs["model"] == "stream-auto"
    assert kwargs["temperature"] == 0 and kwargs["top_p"] == 0.5 and kwargs["seed"] == 3
    assert kwargs["max_tokens"] == 9  # max_completion_tokens wins, as at OpenAI
    assert kwargs["stop"] == ["END"]
    assert kwargs["tools"][0]["function"]["name"] == "get_weather"
    assert kwargs["tool_choice"] == "required"
    assert kwargs["response_format"]["json_schema"]["schema"] == {}
    assert kwargs["user"] == "lab" and kwargs["conversation_id"] == "conv-1"
    assert kwargs["privacy"] == "institutional"


def test_unset_parameters_are_not_passed_and_privacy_is_never_loosened() -> None:
    kwargs = call_kwargs(request(privacy="standard", tool_choice="auto"), user=None)
    assert kwargs == {"model": "stream-auto"}


def test_a_named_tool_choice_must_name_a_bound_tool() -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert call_kwargs(request(tools=[TOOL], tool_choice=named), user=None)["tool_choice"] == named
    other = {"type": "function", "function": {"name": "launch"}}
    with pytest.raises(InvalidRequestError, match="launch"):
        call_kwargs(request(tools=[TOOL], tool_choice=other), user=None)


def test_delta_of_text_and_of_streamed_tool_calls() -> None:
    assert delta_of(AIMessageChunk(content="")) is None
    assert delta_of(AIMessageChunk(content="Hel")) == oa.Delta(content="Hel")
    first = AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": "get_weather", "args": "", "id": "call_9", "index": 0}],
    )
    opening = delta_of(first)
    assert opening is not None and opening.tool_calls is not None
    call = opening.tool_calls[0]
    assert (call.index, call.id, call.type) == (0, "call_9", "function")
    assert call.function is not None and call.function.name == "get_weather"
    later = delta_of(
        AIMessageChunk(
            content="", tool_call_chunks=[{"name": None, "args": '{"ci', "id": None, "index": 0}]
        )
    )
    assert later is not None and later.tool_calls is not None
    assert later.tool_calls[0].id is None and later.tool_calls[0].type is None
    assert later.tool_calls[0].model_dump(exclude_none=True) == {
        "index": 0,
        "function": {"arguments": '{"ci'},
    }


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        (None, None),
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("cancelled", "stop"),
    ],
)
def test_finish_reasons_use_openai_words(reported: str | None, expected: str | None) -> None:
    metadata = {"finish_reason": reported} if reported else {}
    assert finish_reason_of(AIMessageChunk(content="", response_metadata=metadata)) == expected


def test_usage_of() -> None:
    assert usage_of(None) is None
    usage = usage_of({"input_tokens": 5, "output_tokens": 7, "total_tokens": 12})
    assert usage == oa.Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12)


def test_completion_of_a_text_answer_and_of_a_tool_call() -> None:
    text = AIMessageChunk(
        content="Paris.",
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        response_metadata={"routing": {"tier": "local"}},
    )
    done = completion_of(text, finish_reason=None, completion_id="c1", created=1, model="m")
    assert done.choices[0].message.content == "Paris."
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.total_tokens == 5
    assert done.routing == {"tier": "local"}

    call = AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": "f", "args": '{"a": 1}', "id": "call_1", "index": 0}],
    )
    done = completion_of(call, finish_reason=None, completion_id="c2", created=1, model="m")
    message = done.choices[0].message
    assert message.content is None and done.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.arguments == '{"a": 1}'
    assert message.tool_calls[0].id == "call_1"


def test_image_parts_reach_the_router_exactly_as_openai_sent_them() -> None:
    request = oa.ChatCompletionRequest.model_validate(
        {
            "model": "stream-auto",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What does this plot show?"},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": "data:image/png;base64,iVBORw0KGgo=",
                                "detail": "low",
                            },
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
                    ],
                }
            ],
        }
    )
    (message,) = to_langchain_messages(request.messages)
    assert isinstance(message, HumanMessage)
    assert message.content == [
        {"type": "text", "text": "What does this plot show?"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
    ]
