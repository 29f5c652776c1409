"""The app's gate and error paths, in process, before any model runs (no model is loaded)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from langchain_stream.chat_model import StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.server import KeyStore, create_app
from langchain_stream.server.access_log import LOGGER_NAME as ACCESS_LOGGER

KEY = "sk-unit-" + "5" * 32
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = "/v1/chat/completions"


def settings(**overrides: object) -> Settings:
    values = {"rate_limit_rpm": 0, "max_body_bytes": 2048, "max_messages": 3, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(StreamChatModel(), settings=settings(), keys=KeyStore.of(KEY), langserve=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def test_health_needs_no_key_and_says_nothing_else(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "x-stream-routing" not in response.headers


@pytest.mark.parametrize("path", ["/v1/models", "/openapi.json", "/nowhere", CHAT])
async def test_every_other_route_needs_a_key(client: httpx.AsyncClient, path: str) -> None:
    missing = await client.post(path, content=b"{bad") if path == CHAT else await client.get(path)
    assert missing.status_code == 401
    assert error_of(missing)["code"] == "invalid_api_key"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await client.get(path, headers={"Authorization": "Bearer sk-nope"})
    assert wrong.status_code == 401 and "incorrect" in str(error_of(wrong)["message"])
    scheme = await client.get(path, headers={"Authorization": f"Basic {KEY}"})
    assert scheme.status_code == 401


async def test_models_lists_the_router_and_the_configured_tiers(client: httpx.AsyncClient) -> None:
    listing = (await client.get("/v1/models", headers=AUTH)).json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["stream-auto", "stream-local"]
    one = await client.get("/v1/models/stream-local", headers=AUTH)
    assert one.json()["id"] == "stream-local" and one.json()["object"] == "model"
    missing = await client.get("/v1/models/stream-cloud", headers=AUTH)
    assert missing.status_code == 404 and error_of(missing)["code"] == "model_not_found"


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert error_of(await client.get("/v2/x", headers=AUTH))["code"] == "not_found"
    wrong = await client.get(CHAT, headers=AUTH)
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "json_invalid"),
        (b"[]", "model_attributes_type"),
        (b'{"model": "stream-auto", "messages": "hi"}', "list_type"),
        (
            b'{"model": "stream-auto", "messages": [{"role": "user", "content": "x"}], '
            b'"stream": "yes"}',
            "bool_type",
        ),
    ],
)
async def test_malformed_bodies_are_bad_requests(
    client: httpx.AsyncClient, content: bytes, code: str
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await client.post(CHAT, content=content, headers=headers)
    assert response.status_code == 400 and error_of(response)["code"] == code


async def test_an_unknown_model_is_404_before_anything_runs(client: httpx.AsyncClient) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    response = await client.post(CHAT, json=body, headers=AUTH)
    assert response.status_code == 404
    assert error_of(response) | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


async def test_too_many_messages(client: httpx.AsyncClient) -> None:
    body = {"model": "stream-auto", "messages": [{"role": "user", "content": "hi"}] * 4}
    response = await client.post(CHAT, json=body, headers=AUTH)
    assert response.status_code == 400 and error_of(response)["param"] == "messages"


async def test_a_body_over_the_limit_is_413_declared_or_not(client: httpx.AsyncClient) -> None:
    big = json.dumps(
        {"model": "stream-auto", "messages": [{"role": "user", "content": "x" * 4096}]}
    )
    declared = await client.post(CHAT, content=big, headers=AUTH)
    assert declared.status_code == 413 and error_of(declared)["code"] == "request_too_large"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(8):
            yield b"x" * 512

    streamed = await client.post(CHAT, content=chunked(), headers=AUTH)
    assert streamed.status_code == 413


async def test_rate_limit_per_key_with_retry_after() -> None:
    app = create_app(
        StreamChatModel(),
        settings=settings(rate_limit_rpm=2),
        keys=KeyStore.of(KEY, "sk-b"),
        langserve=False,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        for _ in range(2):
            assert (await http.get("/v1/models", headers=AUTH)).status_code == 200
        limited = await http.get("/v1/models", headers=AUTH)
        assert limited.status_code == 429
        assert error_of(limited)["code"] == "rate_limit_exceeded"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        other = await http.get("/v1/models", headers={"Authorization": "Bearer sk-b"})
        assert other.status_code == 200  # another key has its own window
        assert (await http.get("/healthz")).status_code == 200  # health is never limited


async def test_without_keys_every_request_is_let_in() -> None:
    app = create_app(StreamChatModel(), settings=settings(), keys=KeyStore(), langserve=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        assert (await http.get("/v1/models")).status_code == 200


def test_the_openapi_schema_documents_the_routes_errors_and_the_key() -> None:
    app = create_app(StreamChatModel(), settings=settings(), keys=KeyStore.of(KEY), langserve=False)
    schema = app.openapi()
    chat = schema["paths"][CHAT]["post"]
    assert {"400", "401", "404", "413", "429", "503"} <= set(chat["responses"])
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


async def test_the_access_log_has_one_line_per_request_once_it_is_answered(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await client.get("/v1/models", headers=AUTH)
        await client.get("/v1/models")  # refused by the gate: logged all the same
    lines = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(lines) == 2
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /v1/models HTTP/1\.1" 200 \d+\.\d ms', lines[0])
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /v1/models HTTP/1\.1" 401 \d+\.\d ms', lines[1])
