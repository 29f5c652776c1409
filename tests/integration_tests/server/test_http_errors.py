"""Every way a request can go wrong reaches an OpenAI client as the right OpenAI error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.server import KeyStore, create_app
from tests.integration_tests.server.conftest import (
    KEY,
    LIMITED_KEY,
    MAX_BODY_BYTES,
    MAX_MESSAGES,
    serving,
)

HI = [{"role": "user", "content": "hi"}]


def client_for(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def post_raw(url: str, content: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    all_headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **headers}
    return httpx.post(f"{url}/v1/chat/completions", content=content, headers=all_headers)


def test_missing_and_wrong_keys_are_authentication_errors(server_url: str) -> None:
    no_key = httpx.get(f"{server_url}/v1/models")
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as caught:
        client_for(server_url, key="sk-wrong").chat.completions.create(
            model="stream-auto", messages=HI
        )
    assert caught.value.code == "invalid_api_key"


def test_health_is_open_and_reveals_nothing(server_url: str) -> None:
    response = httpx.get(f"{server_url}/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "server" not in response.headers  # not even the server software


def test_malformed_json_and_wrong_types_are_bad_requests(server_url: str) -> None:
    broken = post_raw(server_url, b'{"model": "stream-auto", "messages": [')
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "json_invalid"
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(server_url).chat.completions.create(
            model="stream-auto",
            messages=HI,
            temperature="hot",  # type: ignore[arg-type]
        )
    assert caught.value.param == "temperature" and caught.value.code == "float_type"
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(server_url).chat.completions.create(
            model="stream-auto",
            messages=[{"role": "user", "content": 42}],  # type: ignore[list-item]
        )
    assert caught.value.param == "messages[0].content"


def test_huge_bodies_are_413_whether_declared_or_streamed(server_url: str) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client_for(server_url).chat.completions.create(
            model="stream-auto", messages=[{"role": "user", "content": "x" * MAX_BODY_BYTES}]
        )
    assert caught.value.status_code == 413 and caught.value.code == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length
        yield b'{"model": "stream-auto", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY_BYTES // 4096 + 1):
            yield b"y" * 4096
        yield b'"}]}'

    assert post_raw(server_url, chunked()).status_code == 413


def test_too_many_messages_is_a_bad_request(server_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(server_url).chat.completions.create(
            model="stream-auto", messages=HI * (MAX_MESSAGES + 1)
        )
    assert caught.value.param == "messages" and caught.value.code == "too_many_messages"


def test_unknown_model_is_not_found(server_url: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client_for(server_url).chat.completions.create(model="stream-cloud", messages=HI)
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


def test_rate_limit_is_a_rate_limit_error_with_retry_after(server_url: str) -> None:
    limited = client_for(server_url, key=LIMITED_KEY)
    limited.models.list()
    limited.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        limited.models.list()
    assert caught.value.code == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    client_for(server_url).models.list()  # other keys are not held back


def test_no_tier_available_is_503_streamed_or_not(tmp_path: Path) -> None:
    broken = StreamChatModel(local=ChatLocal(model_path=str(tmp_path / "gone.gguf")))
    app = create_app(broken, settings=Settings(rate_limit_rpm=0), keys=KeyStore.of(KEY))
    with serving(app) as url:
        client = client_for(url)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="stream-auto", messages=HI)
        assert caught.value.status_code == 503 and caught.value.code == "no_tier_available"
        assert "gone.gguf" in caught.value.message  # says which tier failed and why
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="stream-local", messages=HI, stream=True)
        assert caught.value.status_code == 503  # before the first token: a real HTTP error


class _DiesMidAnswer(BaseChatModel):
    """Fault injection: a tier whose connection breaks after two tokens.

    A tier failing between tokens cannot be caused on demand with the real tiers on loopback.
    """

    @property
    def _llm_type(self) -> str:
        return "dies-mid-answer"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError

    async def _astream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for text in ("Half", " an"):
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        raise ConnectionResetError("the backend went away")


def test_a_failure_mid_stream_is_an_sse_error_never_a_quiet_end() -> None:
    app = create_app(
        StreamChatModel(local=_DiesMidAnswer()),
        settings=Settings(rate_limit_rpm=0),
        keys=KeyStore.of(KEY),
    )
    with serving(app) as url:
        body = {"model": "stream-local", "messages": HI, "stream": True}
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
        ) as response:
            assert response.status_code == 200  # the first tokens were already on their way
            lines = [line for line in response.iter_lines() if line]
        assert "data: [DONE]" not in lines
        event = lines.index("event: error")
        error = json.loads(lines[event + 1].removeprefix("data: "))["error"]
        assert error["code"] == "mid_stream_error" and "went away" in error["message"]

        received = []
        with pytest.raises(openai.APIError, match="went away"):
            for chunk in client_for(url).chat.completions.create(
                model="stream-local", messages=HI, stream=True
            ):
                received.append(chunk.choices[0].delta.content)
        assert "".join(filter(None, received)) == "Half an"

        with pytest.raises(openai.APIStatusError) as caught:  # not streamed: a 502
            client_for(url).chat.completions.create(model="stream-local", messages=HI)
        assert caught.value.status_code == 502


def test_a_truncated_local_model_is_an_openai_error_naming_the_file(tmp_path: Path) -> None:
    """A bad STREAM_LOCAL_MODEL never crashes the server: the request gets an error object."""
    from langchain_stream.tiers.embedded import embedded_model_path

    cut = tmp_path / "cut-model.gguf"
    cut.write_bytes(embedded_model_path().read_bytes()[:3_000_000])
    router = StreamChatModel(local=ChatLocal(model_path=str(cut)), judge="keyword")
    app = create_app(router, settings=Settings(rate_limit_rpm=0), keys=KeyStore([]))
    with serving(app) as url:
        with pytest.raises(openai.APIStatusError) as info:
            client_for(url).chat.completions.create(model="stream-auto", messages=HI)
        assert info.value.status_code == 503
        body = info.value.response.json()["error"]
        assert "cut-model.gguf" in body["message"] and "truncated" in body["message"]
        assert "Traceback" not in body["message"]
        # The server is still up and answers the next request the same way.
        again = httpx.get(f"{url}/healthz")
        assert again.status_code == 200
