"""The request checks: lone surrogates and JSON schemas, each a 400 naming the field."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from langchain_stream.config import Settings
from langchain_stream.server import openai_schema as oa
from langchain_stream.server.errors import ApiError
from langchain_stream.server.request_checks import SchemaLimits, check_request


def request(**fields: Any) -> oa.ChatCompletionRequest:
    body = {"model": "stream-auto", "messages": [{"role": "user", "content": "hi"}], **fields}
    return oa.ChatCompletionRequest.model_validate(body)


def tools(*schemas: Any) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": f"f{i}", "parameters": schema}}
        for i, schema in enumerate(schemas)
    ]


def refused(body: oa.ChatCompletionRequest, limits: SchemaLimits | None = None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check_request(body, limits or SchemaLimits())
    assert caught.value.status == 400
    return caught.value


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def test_the_limits_come_from_the_settings_with_documented_defaults() -> None:
    assert SchemaLimits() == SchemaLimits.from_settings(Settings())
    limits = SchemaLimits.from_settings(Settings(max_schema_depth=4, max_schema_nodes=50))
    assert (limits.max_depth, limits.max_nodes) == (4, 50)


def test_ordinary_schemas_pass() -> None:
    draft = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
    check_request(request(tools=tools(draft)), SchemaLimits())
    recursive_free = {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}}}},
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}, "c": True},
        "required": ["a"],
    }
    check_request(request(tools=tools(recursive_free, nested(10))), SchemaLimits())
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": recursive_free}}
    check_request(request(response_format=fmt), SchemaLimits())


def test_a_deep_schema_is_refused_at_once() -> None:
    body = request(tools=tools(nested(450)))
    started = time.perf_counter()
    error = refused(body)
    assert time.perf_counter() - started < 0.05
    assert error.body.code == "invalid_schema"
    assert error.body.param == "tools[0].function.parameters"
    assert "deeper than 32 levels" in error.body.message


def test_the_node_budget_covers_all_of_a_requests_schemas() -> None:
    limits = SchemaLimits(max_depth=32, max_nodes=60)
    small = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(8)}}
    check_request(request(tools=tools(small)), limits)
    error = refused(request(tools=tools(small, small, small, small)), limits)
    assert "more than 60 nodes" in error.body.message


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"$ref": "#/$defs/missing"}, "does not resolve"),
        ({"$ref": "#"}, "is recursive"),
        ({"$ref": "defs/x"}, "points outside the schema"),
        ({"$ref": "#defs"}, "is not a JSON pointer"),
        ({"type": 5}, "not a valid JSON schema at '/type'"),
        # Never fetched: an unknown dialect would send the server to the network.
        ({"$schema": "http://127.0.0.1:9/schema"}, "is not a known draft"),
        ({"properties": {"a": {"minLength": -1}}}, "not a valid JSON schema"),
    ],
)
def test_malformed_and_recursive_schemas_are_refused(schema: dict, says: str) -> None:
    error = refused(request(tools=tools(schema)))
    assert says in error.body.message and error.body.code == "invalid_schema"


def test_a_lone_surrogate_names_its_field() -> None:
    body = oa.ChatCompletionRequest.model_validate(
        json.loads('{"model": "m", "messages": [{"role": "user", "content": "a\\ud800"}]}')
    )
    error = refused(body)
    assert error.body.code == "invalid_string"
    assert error.body.param == "messages[0].content"
    # The error itself can be sent as UTF-8.
    error.body.model_dump_json().encode()


def test_a_surrogate_in_a_schema_key_is_refused_and_printable() -> None:
    body = request(tools=tools({"properties": {"\udc00": {"type": "string"}}}))
    error = refused(body)
    assert error.body.code == "invalid_string"
    error.body.model_dump_json().encode()
