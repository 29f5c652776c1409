"""Sensitive data in any field of a request pinned to `stream-cloud` never reaches the cloud.

The server runs on loopback with the official ``openai`` client; its cloud tier is
``ChatOpenAI`` against a real OpenAI-compatible server (llama.cpp's, on the embedded model),
whose access log says whether a request arrived.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from PIL import Image

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.server import KeyStore, create_app
from tests.integration_tests.cloud_server import CLOUD_KEY, CloudServer
from tests.integration_tests.server.conftest import KEY, serving

ASK = {"role": "user", "content": "Say hello."}
LOOKUP_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a record up.",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
    },
}


def tool(description: str = "Look a record up.", **property_fields: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"id": {"type": "string", **property_fields}}}
    return {
        "type": "function",
        "function": {"name": "lookup", "description": description, "parameters": schema},
    }


def data_url(media: str, data: bytes) -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


def png() -> bytes:
    """A real PNG (an image must be whole to be routed at all)."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (20, 120, 200)).save(out, format="PNG")
    return out.getvalue()


# One request per hole: the sensitive value sits in a different field (or disguise) each time.
SENSITIVE_REQUESTS: dict[str, dict[str, Any]] = {
    "content": {"messages": [{"role": "user", "content": "Mail jane.doe@uni.edu the plan."}]},
    "fullwidth_at": {"messages": [{"role": "user", "content": "Mail jane.doe＠uni.edu now."}]},
    "zero_width": {"messages": [{"role": "user", "content": "Mail jane\u200b.doe@u\u200dni.edu"}]},
    "html_entity": {"messages": [{"role": "user", "content": "Mail jane.doe&#64;uni.edu"}]},
    "homoglyph_domain": {"messages": [{"role": "user", "content": "Mail jane@exаmple.com"}]},
    "card_with_expiry": {
        "messages": [{"role": "user", "content": "Card 4111 1111 1111 1111 12/27, charge it."}]
    },
    "card_over_lines": {
        "messages": [{"role": "user", "content": "Card:\n4111.1111\n1111.1111\nthanks"}]
    },
    "ssn_spaced": {"messages": [{"role": "user", "content": "My SSN is 123 45 6789."}]},
    "bare_phone": {"messages": [{"role": "user", "content": "Call me at 6175550134."}]},
    "asia_key": {"messages": [{"role": "user", "content": "Key ASIAIOSFODNN7EXAMPLE works"}]},
    "aws_secret_bare": {
        "messages": [{"role": "user", "content": "use wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}]
    },
    "encrypted_private_key": {
        "messages": [{"role": "user", "content": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF"}]
    },
    "connection_url": {
        "messages": [{"role": "user", "content": "Connect to postgres://app:hunter2@db:5432/x"}]
    },
    "text_parts_split": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Write to jane.doe"},
                    {"type": "text", "text": "@uni.edu today."},
                ],
            }
        ]
    },
    "messages_split": {
        "messages": [
            {"role": "user", "content": "My card number is 4111 1111"},
            {"role": "user", "content": "1111 1111, charge it."},
        ]
    },
    "message_name": {"messages": [{"role": "user", "content": "Hi.", "name": "jane.doe@uni.edu"}]},
    "system_message": {
        "messages": [
            {"role": "system", "content": "Account IBAN DE89 3704 0044 0532 0130 00."},
            ASK,
        ]
    },
    "tool_call_arguments": {
        "messages": [
            {"role": "user", "content": "Find my record."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            # A JSON escape: the cloud would read jane.doe@uni.edu.
                            "arguments": '{"id": "jane.doe\\u0040uni.edu"}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "found"},
        ],
    },
    "tool_result": {
        "messages": [
            {"role": "user", "content": "Find my record."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "SSN 123-45-6789"},
        ],
    },
    "tool_description": {
        "messages": [ASK],
        "tools": [tool("Uses key AKIAIOSFODNN7EXAMPLE to read records.")],
    },
    "tool_parameter_schema": {
        "messages": [ASK],
        "tools": [tool(description="Look up.", default="+44 20 7946 0958")],
    },
    "response_format_description": {
        "messages": [ASK],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "description": "Sign as jane.doe@uni.edu"}
                    },
                },
            },
        },
    },
    "stop": {"messages": [ASK], "stop": ["jane.doe@uni.edu"]},
    "text_data_url": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Summarise the attachment."},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": data_url("text/plain", b"IBAN GB82WEST12345698765432")
                        },
                    },
                ],
            }
        ]
    },
    "image_by_url": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "https://127.0.0.1:9/scan.png"}},
                ],
            }
        ]
    },
    "image_data_url": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": data_url("image/png", png())},
                    },
                ],
            }
        ]
    },
}


@pytest.fixture(scope="module")
def cloud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudServer]:
    server = CloudServer(tmp_path_factory.mktemp("cloud") / "access.log")
    yield server
    server.close()


@pytest.fixture(scope="module")
def router(local_model: ChatLocal, cloud_server: CloudServer) -> StreamChatModel:
    from langchain_openai import ChatOpenAI

    cloud = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=cloud_server.url,
        api_key=CLOUD_KEY,
        max_retries=0,
        max_tokens=8,
        temperature=0,
    )
    return StreamChatModel(local=local_model, cloud=cloud, judge="keyword")


@pytest.fixture(scope="module")
def client(router: StreamChatModel) -> Iterator[openai.OpenAI]:
    settings = Settings(rate_limit_rpm=0, rate_limit_storage="memory://")
    keys = KeyStore.of(KEY)
    with serving(create_app(router, settings=settings, keys=keys)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def test_a_clean_pinned_request_reaches_the_cloud(
    client: openai.OpenAI, cloud_server: CloudServer
) -> None:
    before = cloud_server.completions_received()
    completion = client.chat.completions.create(
        model="stream-cloud", messages=[ASK], tools=[LOOKUP_TOOL], max_tokens=8
    )
    assert completion.model_extra["routing"]["tier"] == "cloud"
    assert cloud_server.completions_received() == before + 1


@pytest.mark.parametrize("case", sorted(SENSITIVE_REQUESTS))
def test_sensitive_data_in_any_field_never_reaches_the_cloud(
    client: openai.OpenAI, cloud_server: CloudServer, router: StreamChatModel, case: str
) -> None:
    before = cloud_server.completions_received()
    request = SENSITIVE_REQUESTS[case]
    if case == "text_data_url":
        # An image part must hold an image: refused before anything is routed or recorded.
        with pytest.raises(openai.BadRequestError, match="'text/plain' is not allowed"):
            client.chat.completions.create(model="stream-cloud", max_tokens=8, **request)
        assert cloud_server.completions_received() == before
        return
    if case.startswith("image"):
        # Only the cloud reads images, and the rule keeps them off it: no tier may, a 400.
        with pytest.raises(openai.BadRequestError, match="only external tiers read them"):
            client.chat.completions.create(model="stream-cloud", max_tokens=8, **request)
    else:
        completion = client.chat.completions.create(model="stream-cloud", max_tokens=8, **request)
        routing = completion.model_extra["routing"]
        assert routing["tier"] == "local" and routing["reason"] == "privacy"
    assert cloud_server.completions_received() == before  # asserted at the cloud server
    audit = router.policy_engine().store.audit_entries()[-1]
    assert audit["reason"] == "privacy" and "cloud" not in str(audit["tiers_tried"])
    if case.startswith("image"):  # the audit log names the rule that kept it local
        assert any("rule unscannable_content=local" in p for p in audit["policies"])
    else:
        assert audit["sensitive"]


def test_the_unscannable_content_setting_lets_an_image_go_to_the_cloud(
    local_model: ChatLocal, cloud_server: CloudServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    from langchain_stream.config import get_settings
    from langchain_stream.errors import NoTierAvailableError

    monkeypatch.setenv("STREAM_UNSCANNABLE_CONTENT", "cloud")
    get_settings.cache_clear()
    cloud = ChatOpenAI(
        model="gpt-4o-mini", base_url=cloud_server.url, api_key=CLOUD_KEY, max_retries=0
    )
    model = StreamChatModel(local=local_model, cloud=cloud, judge="keyword")
    image = SENSITIVE_REQUESTS["image_data_url"]["messages"][0]["content"]
    before = cloud_server.completions_received()
    # The stand-in cloud model reads no images, so no tier can answer; the request went there.
    with pytest.raises(NoTierAvailableError, match="no tier could answer"):
        model.invoke([HumanMessage(image)], model="stream-cloud")
    assert cloud_server.completions_received() == before + 1
    audit = model.policy_engine().store.audit_entries()[-1]
    assert any(
        "rule unscannable_content=cloud: the cloud is allowed" in p for p in audit["policies"]
    )
    get_settings.cache_clear()
