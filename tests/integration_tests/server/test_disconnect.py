"""A client that leaves mid-answer stops the generation, at the model and through the server.

Measured at the model itself: llama.cpp's context holds the prompt plus every token generated,
so ``n_tokens - prompt tokens`` counts what was generated, and the model is held for
exactly as long as generation runs. The prompt asks for a long story: left alone, the embedded
model writes hundreds of tokens (``max_tokens=1000``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
from langchain_core.messages import HumanMessage

from langchain_stream import ChatLocal
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.server.conftest import KEY

PROMPT = "Write a very long story about a dragon, with many chapters."
LONG = 1000
READ_BEFORE_LEAVING = 5
# Tokens generated between the client leaving and generation stopping, generously.
SLACK_TOKENS = 60


def _generated(model: ChatLocal) -> int:
    llama = model.load()
    return llama.llama.n_tokens - model.count_tokens([HumanMessage(PROMPT)])


async def _model_free_after_s(model: ChatLocal) -> float:
    turns = model.load().turns
    started = time.perf_counter()
    while turns.busy:
        assert time.perf_counter() - started < 10 * TIME_UNIT_S, "generation never stopped"
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def test_closing_the_local_tiers_async_stream_stops_generation(
    local_model: ChatLocal,
) -> None:
    await _model_free_after_s(local_model)
    stream = local_model.astream(PROMPT, max_tokens=LONG)
    received = 0
    async for chunk in stream:
        received += bool(chunk.content)
        if received == READ_BEFORE_LEAVING:
            break
    assert local_model.load().turns.busy  # still generating when the consumer leaves
    await stream.aclose()
    assert await _model_free_after_s(local_model) < 2 * TIME_UNIT_S
    assert _generated(local_model) <= READ_BEFORE_LEAVING + SLACK_TOKENS


async def test_a_client_leaving_mid_stream_cancels_the_tiers_generation(
    server_url: str, local_model: ChatLocal
) -> None:
    await _model_free_after_s(local_model)
    body = {
        "model": "stream-local",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": LONG,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        httpx.AsyncClient(timeout=30 * TIME_UNIT_S) as client,
        client.stream(
            "POST", f"{server_url}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        events = 0
        async for line in response.aiter_lines():
            events += line.startswith("data: ")
            if events == READ_BEFORE_LEAVING:
                break
        assert local_model.load().turns.busy
        # Leaving the block closed the connection mid-answer.
    assert await _model_free_after_s(local_model) < 2 * TIME_UNIT_S
    assert _generated(local_model) <= READ_BEFORE_LEAVING + SLACK_TOKENS


async def test_a_client_leaving_before_a_whole_answer_cancels_it_too(
    server_url: str, local_model: ChatLocal
) -> None:
    await _model_free_after_s(local_model)
    body = {
        "model": "stream-local",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": LONG,
    }
    async with httpx.AsyncClient(timeout=30 * TIME_UNIT_S) as client:
        request = asyncio.create_task(
            client.post(
                f"{server_url}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {KEY}"},
            )
        )
        turns = local_model.load().turns
        # Held by another thread: there is nothing to await but time.
        while not turns.busy:  # noqa: ASYNC110 - until generation has started
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        request.cancel()  # closes the connection
        with contextlib.suppress(asyncio.CancelledError):
            await request
    assert await _model_free_after_s(local_model) < 2 * TIME_UNIT_S
    assert _generated(local_model) <= SLACK_TOKENS
