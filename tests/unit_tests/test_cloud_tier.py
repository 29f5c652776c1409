"""The cloud tier on ChatOpenAI: OpenAI itself, or any compatible server."""

from __future__ import annotations

from langchain_stream.config import Settings
from langchain_stream.tiers.cloud import build_cloud_model


def test_a_compatible_server_also_gets_max_tokens() -> None:
    # llama.cpp's server (and others) read only max_tokens; OpenAI wants max_completion_tokens.
    model = build_cloud_model(
        Settings(cloud_model="m", cloud_base_url="http://127.0.0.1:9/v1", cloud_api_key="k")
    )
    payload = model._get_request_payload("hi", max_tokens=7)  # type: ignore[attr-defined]
    assert payload["max_tokens"] == payload["max_completion_tokens"] == 7


def test_openai_itself_gets_only_max_completion_tokens() -> None:
    model = build_cloud_model(Settings(cloud_model="m", cloud_api_key="k"))
    payload = model._get_request_payload("hi", max_tokens=7)  # type: ignore[attr-defined]
    assert payload["max_completion_tokens"] == 7 and "max_tokens" not in payload
