"""Tool plans, the call grammar and the streaming call parser (no model needed)."""

from __future__ import annotations

import json

import pytest

from langchain_stream.errors import InvalidRequestError
from langchain_stream.tiers import tool_calls

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather at a place.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("choice", "mode", "names"),
    [
        (None, "auto", ["get_weather", "now"]),
        ("auto", "auto", ["get_weather", "now"]),
        ("none", "none", []),
        ("any", "forced", ["get_weather", "now"]),
        ("required", "forced", ["get_weather", "now"]),
        ("now", "forced", ["now"]),
        ({"type": "function", "function": {"name": "get_weather"}}, "forced", ["get_weather"]),
    ],
)
def test_plan_tools_reads_every_tool_choice_spelling(choice, mode, names) -> None:
    plan = tool_calls.plan_tools([WEATHER, CLOCK], choice)
    assert plan.mode == mode
    assert [t["name"] for t in plan.tools] == names


def test_plan_tools_rejects_an_unbound_tool_name() -> None:
    with pytest.raises(InvalidRequestError, match="not among the bound tools"):
        tool_calls.plan_tools([WEATHER], "launch_rocket")


def test_no_tools_means_no_tool_mode() -> None:
    assert tool_calls.plan_tools(None, "any").mode == "none"


def test_call_grammar_names_only_allowed_tools() -> None:
    grammar = tool_calls.call_grammar_text(tool_calls.plan_tools([WEATHER, CLOCK], "now"))
    assert "now" in grammar
    assert "get_weather" not in grammar


def _stream_through_parser(
    text: str, step: int
) -> tuple[list[dict], tool_calls.StreamingCallParser]:
    parser = tool_calls.StreamingCallParser()
    deltas: list[dict] = []
    for i in range(0, len(text), step):
        deltas += parser.feed(text[i : i + step])
    deltas += parser.finish()
    return deltas, parser


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_parser_streams_exactly_the_arguments_object(step: int) -> None:
    args = {"city": "Paris {centre}", "days": [1, 2], "nested": {"a": {"b": 1}}}
    text = json.dumps({"name": "get_weather", "arguments": args})
    deltas, parser = _stream_through_parser(text, step)
    assert deltas[0] == {"name": "get_weather", "args": "", "id": parser.call_id, "index": 0}
    assert all(d["name"] is None and d["id"] is None for d in deltas[1:])
    assert json.loads("".join(d["args"] for d in deltas)) == args


def test_parser_streams_before_the_call_is_complete() -> None:
    parser = tool_calls.StreamingCallParser()
    early = parser.feed('{"name": "get_weather", "arguments": {"city": "Par')
    assert [d["args"] for d in early] == ["", '{"city": "Par']


def test_parser_reports_a_cut_call_clearly() -> None:
    parser = tool_calls.StreamingCallParser()
    parser.feed('{"name": "get_weather", "arguments": {"city": "Pa')
    with pytest.raises(InvalidRequestError, match="cut short or malformed"):
        parser.finish()


def test_marker_prefix_detection() -> None:
    assert tool_calls.is_marker_prefix("  <tool")
    assert tool_calls.is_marker_prefix("<tool_call>{")
    assert not tool_calls.is_marker_prefix("The weather")


def _tool(name: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def test_each_tools_local_refs_resolve_inside_the_combined_grammar() -> None:
    with_defs = {
        "$defs": {"unit": {"type": "string", "enum": ["celsius", "kelvin"]}},
        "type": "object",
        "properties": {"unit": {"$ref": "#/$defs/unit"}},
    }
    for tools in ([_tool("a", with_defs)], [_tool("a", with_defs), _tool("b", with_defs)]):
        grammar = tool_calls.call_grammar_text(tool_calls.plan_tools(tools, "required"))
        assert "celsius" in grammar and "kelvin" in grammar


def test_a_schema_the_converter_cannot_follow_is_the_requests_error() -> None:
    unsupported = {"type": "object", "properties": {"x": {"not": {"type": "string"}}}}
    with pytest.raises(InvalidRequestError, match="the local tier cannot follow the tools'"):
        tool_calls.call_grammar_text(tool_calls.plan_tools([_tool("a", unsupported)], "required"))
