"""ChatHPC without an endpoint: construction, the request it builds, and the standard suite."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel

from langchain_stream.config import Settings
from langchain_stream.errors import ConfigurationError, InvalidRequestError
from langchain_stream.hpc import ChatHPC
from langchain_stream.hpc.task import TASK_VERSION
from langchain_stream.structured import openai_tool_choice
from langchain_stream.tiers import build_tier_models


class TestChatHPCUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatHPC

    @property
    def chat_model_params(self) -> dict:
        return {"endpoint_id": "00000000-0000-0000-0000-000000000000", "temperature": 0.0}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # A per-call `model` names the backend's model, and response_metadata reports the
        # model that answered as the backend names it.
        return False

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return (
            {
                "STREAM_HPC_ENDPOINT_ID": "11111111-2222-3333-4444-555555555555",
                "STREAM_RELAY_URLS": "wss://relay-a.example,wss://relay-b.example",
                "STREAM_RELAY_SECRET": "relay-secret-0123456789abcdef",
                "STREAM_HPC_MODEL": "served-model",
            },
            {},
            {
                "endpoint_id": "11111111-2222-3333-4444-555555555555",
                "relay_urls": ["wss://relay-a.example", "wss://relay-b.example"],
                "relay_secret": "relay-secret-0123456789abcdef",
                "model": "served-model",
            },
        )


def test_construction_builds_no_executor() -> None:
    model = ChatHPC(endpoint_id="00000000-0000-0000-0000-000000000000")
    assert model._default_executor is None


def test_no_endpoint_and_no_executor_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="endpoint"):
        ChatHPC(endpoint_id=None).get_executor()


def test_relay_urls_without_a_secret_are_a_configuration_error() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        model = ChatHPC(executor=pool, relay_urls=["ws://127.0.0.1:1"], relay_secret=None)
        with pytest.raises(ConfigurationError, match="secret"):
            model._prepare()


def test_the_request_carries_messages_params_tools_and_backend() -> None:
    model = ChatHPC(
        endpoint_id="x",
        model="served",
        backend_url="http://127.0.0.1:8000/v1",
        api_key="backend-key",
        max_tokens=64,
        temperature=0.3,
        seed=7,
    )
    tool = {"type": "function", "function": {"name": "add", "parameters": {}}}
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Add 1 and 2."),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "c1"}]),
        ToolMessage("3", tool_call_id="c1"),
    ]
    request = model._request(
        messages, ["\n\n"], {"tools": [tool], "tool_choice": "any", "max_tokens": 9}
    )
    assert request["version"] == TASK_VERSION
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "tool"]
    assert request["messages"][2]["tool_calls"][0]["function"]["name"] == "add"
    assert request["params"] == {
        "max_tokens": 9,
        "temperature": 0.3,
        "seed": 7,
        "stop": ["\n\n"],
        "tools": [tool],
        "tool_choice": "required",
    }
    assert request["backend"] == {
        "model": "served",
        "url": "http://127.0.0.1:8000/v1",
        "api_key": "backend-key",
    }


def test_an_empty_message_list_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        ChatHPC(endpoint_id="x")._request([], None, {})


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("any", "required"),
        (True, "required"),
        (False, "none"),
        ("auto", "auto"),
        ("add", {"type": "function", "function": {"name": "add"}}),
    ],
)
def test_tool_choice_is_sent_in_openai_form(choice: Any, expected: Any) -> None:
    tools = [{"type": "function", "function": {"name": "add"}}]
    assert openai_tool_choice(choice, tools) == expected


def test_an_unknown_tool_name_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="mul"):
        openai_tool_choice("mul", [{"type": "function", "function": {"name": "add"}}])


def test_structured_output_forces_the_schema_tool_and_parses_its_call() -> None:
    class Answer(BaseModel):
        value: int

    model = ChatHPC(endpoint_id="x")
    structured = model.with_structured_output(Answer)
    # What goes to the worker: the schema as the one tool, and a call to it required.
    request = model._request([HumanMessage("1 + 2?")], None, structured.first.kwargs)
    assert [tool["function"]["name"] for tool in request["params"]["tools"]] == ["Answer"]
    assert request["params"]["tools"][0]["function"]["parameters"]["properties"] == {
        "value": {"type": "integer"}
    }
    assert request["params"]["tool_choice"] == "required"
    # What comes back: the backend's call to that tool, parsed into the schema.
    reply = AIMessage("", tool_calls=[{"name": "Answer", "args": {"value": 3}, "id": "c1"}])
    assert structured.last.invoke(reply) == Answer(value=3)


def test_the_hpc_tier_joins_when_an_endpoint_is_configured() -> None:
    assert "hpc" not in build_tier_models(Settings())
    models = build_tier_models(Settings(hpc_endpoint_id="local", relay_urls=[]))
    assert isinstance(models["hpc"], ChatHPC)
    assert models["hpc"].endpoint_id == "local"
    assert models["hpc"]._default_executor is None  # nothing started yet


async def test_readiness_without_a_globus_login_says_so_and_never_logs_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(tmp_path))  # no stored tokens
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_ID", raising=False)
    monkeypatch.delenv("GLOBUS_COMPUTE_CLIENT_SECRET", raising=False)
    model = ChatHPC(endpoint_id="11111111-2222-3333-4444-555555555555")
    reason = await model.acheck_ready()
    assert reason is not None
    assert reason.startswith("HPC endpoint 11111111-2222-3333-4444-555555555555: not logged in")
    assert "GLOBUS_COMPUTE_CLIENT_ID" in reason
    assert model._default_executor is None  # no Globus executor was built


async def test_readiness_of_an_executor_that_reports_nothing_is_ready() -> None:
    with ThreadPoolExecutor(1) as pool:
        assert await ChatHPC(executor=pool).acheck_ready() is None
