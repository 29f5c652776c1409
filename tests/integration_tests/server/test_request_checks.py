"""Requests no tier can serve get a 400 about the request, never a 503 with Python internals:
lone surrogates, malformed or recursive JSON schemas, schemas too deep or too large."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import TIME_UNIT_S
from tests.integration_tests.server.conftest import KEY

ASK = [{"role": "user", "content": "Say hello."}]
INTERNALS = ("Error", "Traceback", "assert", "KeyError", "no_tier_available", 'File "')


def post_raw(url: str, body: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    return httpx.post(
        f"{url}/v1/chat/completions", content=body.encode(), headers=headers, timeout=120
    )


def tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "lookup", "parameters": parameters}}


def json_schema_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def assert_about_the_request(error: dict[str, Any], code: str, param_start: str) -> None:
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert error["param"].startswith(param_start)
    assert not any(word in error["message"] for word in INTERNALS), error["message"]


@pytest.fixture(scope="module")
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=KEY, max_retries=0)


@pytest.mark.parametrize(
    ("where", "body"),
    [
        ("messages[0].content", {"messages": [{"role": "user", "content": "hi \ud800 there"}]}),
        (
            "messages[0].content[0].text",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
        ),
        ("messages[0].name", {"messages": [{"role": "user", "content": "hi", "name": "\ud83d"}]}),
        ("stop", {"messages": ASK, "stop": ["\udc00"]}),
        (
            "tools[0].function.description",
            {
                "messages": ASK,
                "tools": [
                    {"type": "function", "function": {"name": "f", "description": "x\ud800"}}
                ],
            },
        ),
    ],
)
def test_a_lone_surrogate_is_a_bad_request(server_url: str, where: str, body: dict) -> None:
    # The official client cannot even encode a lone surrogate: the raw JSON escape is sent.
    response = post_raw(server_url, json.dumps({"model": "stream-auto", **body}))
    assert response.status_code == 400
    error = response.json()["error"]
    assert_about_the_request(error, "invalid_string", where)
    assert "surrogate" in error["message"]


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "does not resolve"),
        ({"type": "object", "properties": {"child": {"$ref": "#"}}}, "is recursive"),
        (
            {
                "$defs": {
                    "a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/b"}}},
                    "b": {"type": "array", "items": {"$ref": "#/$defs/a"}},
                },
                "$ref": "#/$defs/a",
            },
            "is recursive",
        ),
        ({"$ref": "https://schemas.invalid/x.json"}, "points outside the schema"),
        ({"type": "objekt"}, "not a valid JSON schema"),
        ({"type": "object", "properties": []}, "not a valid JSON schema"),
        ({"type": "object", "required": "name"}, "not a valid JSON schema"),
    ],
)
def test_a_malformed_or_recursive_schema_is_a_bad_request(
    client: openai.OpenAI, schema: dict, says: str
) -> None:
    for kwargs, param in (
        ({"tools": [tool(schema)]}, "tools[0].function.parameters"),
        ({"response_format": json_schema_format(schema)}, "response_format.json_schema.schema"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="stream-local", messages=ASK, max_tokens=8, **kwargs
            )
        error = caught.value.body
        assert_about_the_request(error, "invalid_schema", param)
        assert says in error["message"]


def nested_schema(levels: int) -> str:
    """A schema nesting ``levels`` objects (twice as many JSON levels: each object's
    ``properties``), written as JSON text."""
    inner = '{"type": "string"}'
    for _ in range(levels):
        inner = '{"type": "object", "properties": {"a": ' + inner + "}}"
    return inner


def test_a_900_level_tool_schema_is_refused_fast(server_url: str, client: openai.OpenAI) -> None:
    body = (
        '{"model": "stream-auto", "messages": [{"role": "user", "content": "hi"}], '
        '"tools": [{"type": "function", "function": {"name": "deep", "parameters": '
        + nested_schema(450)  # 900 JSON levels
        + "}}]}"
    )
    started = time.perf_counter()
    response = post_raw(server_url, body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 400
    error = response.json()["error"]
    assert_about_the_request(error, "invalid_schema", "tools[0].function.parameters")
    assert "deeper than 32 levels" in error["message"]
    assert elapsed < 2.0 * TIME_UNIT_S
    # A schema within the limits still works.
    ok = client.chat.completions.create(
        model="stream-local",
        messages=ASK,
        max_tokens=8,
        response_format=json_schema_format(json.loads(nested_schema(3))),
    )
    assert ok.choices[0].message.content


def test_too_many_schema_nodes_are_refused(client: openai.OpenAI) -> None:
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(1200)}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="stream-local", messages=ASK, max_tokens=8, tools=[tool(wide)]
        )
    assert_about_the_request(caught.value.body, "invalid_schema", "tools[0]")
    assert "more than 2000 nodes" in caught.value.body["message"]


DEFS_SCHEMA = {
    "$defs": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
    "type": "object",
    "properties": {"city": {"$ref": "#/$defs/city"}},
    "required": ["city"],
}


def test_a_tool_schema_with_local_refs_is_served_by_the_local_tier(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="stream-local",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        max_tokens=48,
        tools=[tool(DEFS_SCHEMA)],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments)["city"] in ("Paris", "Rome")


@pytest.mark.parametrize(
    "schema",
    [
        {"not": {"type": "string"}},
        {"type": "array", "items": False},
        {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "string"}}},
    ],
)
def test_a_valid_schema_the_local_tier_cannot_follow_is_a_bad_request(
    client: openai.OpenAI, schema: dict
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="stream-local",
            messages=ASK,
            max_tokens=8,
            response_format=json_schema_format(schema),
        )
    error = caught.value.body
    assert error["code"] == "invalid_request"
    assert "the local tier cannot follow the response_format's JSON schema" in error["message"]
    assert not any(word in error["message"] for word in INTERNALS), error["message"]


def test_tool_call_arguments_nested_past_the_parsers_limit_are_a_bad_request(
    client: openai.OpenAI,
) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": "[" * 20_000 + "]" * 20_000},
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="stream-local",
            max_tokens=8,
            messages=[
                {"role": "user", "content": "Look it up."},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "done"},
            ],
        )
    assert "are not a JSON object" in caught.value.body["message"]
