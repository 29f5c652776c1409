"""The payload the cloud tier would send, and every text in it."""

from __future__ import annotations

import base64

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field

from langchain_stream.policies.payload import cloud_payload, payload_content


def test_every_field_of_the_payload_is_read() -> None:
    messages = [
        SystemMessage("system text"),
        HumanMessage([{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}]),
        HumanMessage("hi", name="the-name"),
        AIMessage("", tool_calls=[{"name": "f", "args": {"q": "call argument"}, "id": "c1"}]),
        ToolMessage("tool result", tool_call_id="c1"),
    ]
    kwargs = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "description": "tool description",
                    "parameters": {"properties": {"q": {"default": "schema default"}}},
                },
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": {"description": "format description"}},
        },
        "stop": ["stop sequence"],
    }
    texts = payload_content(cloud_payload(messages, kwargs)).texts
    for expected in (
        "system text",
        "the-name",
        "call argument",  # read from inside the JSON-encoded arguments
        "tool result",
        "tool description",
        "schema default",
        "format description",
        "stop sequence",
    ):
        assert expected in texts, expected
    assert any("part one" in t and "two" in t for t in texts)


def test_the_flow_leaves_out_keys_and_structure() -> None:
    content = payload_content(
        cloud_payload([HumanMessage("first half"), HumanMessage("second half")], {"model": "m"})
    )
    assert content.flow == ["first half", "second half"]
    assert "role" in content.texts and "user" in content.texts and "m" in content.texts


def test_data_urls_text_is_read_and_binary_is_unscannable() -> None:
    note = base64.b64encode(b"call 6175550134").decode()
    message = HumanMessage(
        [
            {"type": "image_url", "image_url": {"url": f"data:text/plain;base64,{note}"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "data:text/plain;base64,@@@"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        ]
    )
    content = payload_content(cloud_payload([message], {}))
    assert "call 6175550134" in content.texts
    assert content.unscannable == [
        "data URL (image/png)",
        "data URL (text/plain, undecodable)",
        "audio",
    ]


class Answer(BaseModel):
    """An answer."""

    text: str = Field(description="signed by jane@uni.edu")


def test_pydantic_schemas_and_deep_nesting_are_walked_without_recursion() -> None:
    assert "signed by jane@uni.edu" in payload_content({"response_format": Answer}).texts
    deep: dict = {"leaf": "bottom"}
    for _ in range(5000):
        deep = {"a": deep}
    assert "bottom" in payload_content(deep).texts


def test_the_engine_reads_the_payload_and_the_saved_summary() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from langchain_stream.config import Settings
    from langchain_stream.policies.decide import RoutingRequest
    from langchain_stream.policies.engine import PolicyEngine

    engine = PolicyEngine(Settings(database_url="none"))
    models = {"local": FakeListChatModel(responses=["x"]), "cloud": FakeListChatModel(responses=[])}

    def decide(**extra: object) -> list[str]:
        decision, sensitive = engine.decide(
            messages=[HumanMessage("Summarise our talk.")],
            complexity=None,
            pin="cloud",
            models=models,
            request=RoutingRequest(),
            **{"call_kwargs": {}, **extra},  # type: ignore[arg-type]
        )
        assert ("cloud" in decision.candidates) == (not sensitive)
        return sensitive

    assert decide() == []
    assert decide(call_kwargs={"stop": ["jane@uni.edu"]}) == ["email"]
    assert decide(summary={"notes": ["The user's card is 4111 1111 1111 1111."]}) == [
        "payment_card"
    ]


def test_an_image_by_url_is_unscannable_and_its_url_is_read() -> None:
    message = HumanMessage(
        [{"type": "image_url", "image_url": {"url": "https://files.example/jane@uni.edu.png"}}]
    )
    content = payload_content(cloud_payload([message], {}))
    assert content.unscannable == ["image (URL)"]
    assert "https://files.example/jane@uni.edu.png" in content.texts


def test_a_string_of_json_nested_past_the_parsers_limit_is_read_as_text() -> None:
    nested = "[" * 100_000 + '"jane@uni.edu"' + "]" * 100_000
    assert nested in payload_content({"arguments": nested}).texts
