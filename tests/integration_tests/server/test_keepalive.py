"""SSE keep-alive comments hold a stream open through a proxy that cuts idle connections,
while a tier takes longer than the proxy's idle limit to produce its first token.

Scaled down from a 30 s proxy and a minute-long HPC first token: keep-alive every 1 s, the
proxy cuts after 3 s of silence, the first token comes after 6 s (all times TIME_UNIT_S)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.server import KeyStore, create_app
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.server.conftest import serving
from tests.integration_tests.server.idle_proxy import IdleCutProxy

KEEPALIVE_S = 1.0 * TIME_UNIT_S
PROXY_IDLE_S = 3.0 * TIME_UNIT_S
FIRST_TOKEN_S = 6.0 * TIME_UNIT_S
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


class SlowFirstToken(ChatLocal):
    """The local tier, holding its answer back for ``delay_s`` first (an HPC job in a queue),
    or failing then when ``fail``."""

    delay_s: float = FIRST_TOKEN_S
    fail: bool = False

    async def _astream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("the compute node went away")
        async for chunk in super()._astream(messages, stop, **kwargs):
            yield chunk


def app_with(local: ChatLocal, keepalive_s: float) -> Any:
    router = StreamChatModel(local=local, judge="keyword")
    return create_app(
        router, settings=Settings(sse_keepalive_s=keepalive_s, rate_limit_rpm=0), keys=KeyStore()
    )


@pytest.fixture(scope="module")
def slow(local_model: ChatLocal) -> ChatLocal:
    return SlowFirstToken(temperature=0.0, max_tokens=16)


@pytest.fixture(scope="module")
def kept_alive(slow: ChatLocal) -> Iterator[str]:
    with serving(app_with(slow, KEEPALIVE_S)) as url:
        yield url


def test_keepalive_comments_hold_the_stream_through_an_idle_cutting_proxy(
    kept_alive: str,
) -> None:
    port = int(kept_alive.rsplit(":", 1)[1])
    proxy = IdleCutProxy(port, PROXY_IDLE_S)
    lines: list[str] = []
    with proxy.running() as url:
        started = time.monotonic()
        body = {"model": "stream-local", "messages": QUESTION, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line]
        took = time.monotonic() - started
    assert took >= FIRST_TOKEN_S  # the tier really was slower than the proxy's idle limit
    assert proxy.cut == 0
    keepalives = [line for line in lines if line == ": keep-alive"]
    assert len(keepalives) >= int(FIRST_TOKEN_S / KEEPALIVE_S) - 1
    assert lines[-1] == "data: [DONE]"
    assert any('"content"' in line for line in lines if line.startswith("data: {"))


def test_the_official_client_reads_through_the_keepalives(kept_alive: str) -> None:
    port = int(kept_alive.rsplit(":", 1)[1])
    proxy = IdleCutProxy(port, PROXY_IDLE_S)
    with proxy.running() as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="stream-local",
            messages=QUESTION,
            stream=True,  # type: ignore[arg-type]
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip()
    assert proxy.cut == 0


def test_without_keepalives_the_proxy_cuts_the_stream(slow: ChatLocal) -> None:
    """The control: a keep-alive interval longer than the proxy's idle limit."""
    with serving(app_with(slow, FIRST_TOKEN_S * 4)) as served:
        proxy = IdleCutProxy(int(served.rsplit(":", 1)[1]), PROXY_IDLE_S)
        with proxy.running() as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.APIConnectionError):
                client.chat.completions.create(
                    model="stream-local",
                    messages=QUESTION,
                    stream=True,  # type: ignore[arg-type]
                )
    assert proxy.cut == 1


def test_a_failure_after_the_stream_opened_is_an_error_event(local_model: ChatLocal) -> None:
    failing = SlowFirstToken(temperature=0.0, max_tokens=16, delay_s=2.5 * KEEPALIVE_S, fail=True)
    with serving(app_with(failing, KEEPALIVE_S)) as url:
        body = {"model": "stream-local", "messages": QUESTION, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line]
    assert lines[0] == ": keep-alive"
    assert lines[-2:][0] == "event: error"
    assert '"no_tier_available"' in lines[-1] and "data: [DONE]" not in lines
