"""The cloud tier on langchain-openai: OpenAI itself, or any compatible server. The request
body is read where it leaves, at the HTTP client's transport (no network)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from langchain_stream.config import Settings
from langchain_stream.tiers.cloud import build_cloud_model
from langchain_stream.tiers.cloud_models import CloudChatOpenAI, CompatibleChatOpenAI

COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _sent_body(cls: type, base_url: str | None) -> dict[str, Any]:
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return httpx2.Response(200, json=COMPLETION)

    client = httpx2.Client(transport=httpx2.MockTransport(answer))
    model = cls(model="m", base_url=base_url, api_key="k", max_retries=0, http_client=client)
    assert model.invoke("hi", max_tokens=7).text == "Hi."
    (body,) = bodies
    return body


@pytest.mark.parametrize(
    ("settings", "cls"),
    [
        (
            Settings(cloud_model="m", cloud_base_url="http://127.0.0.1:9/v1", cloud_api_key="k"),
            CompatibleChatOpenAI,
        ),
        (Settings(cloud_model="m", cloud_api_key="k"), CloudChatOpenAI),
    ],
)
def test_the_settings_choose_the_class(settings: Settings, cls: type) -> None:
    assert type(build_cloud_model(settings)) is cls


def test_a_compatible_server_gets_max_tokens() -> None:
    # llama.cpp's server (and others) read only max_tokens.
    body = _sent_body(CompatibleChatOpenAI, "http://127.0.0.1:9/v1")
    assert body["max_tokens"] == 7


def test_openai_itself_gets_max_completion_tokens() -> None:
    body = _sent_body(CloudChatOpenAI, None)
    assert body["max_completion_tokens"] == 7 and "max_tokens" not in body
