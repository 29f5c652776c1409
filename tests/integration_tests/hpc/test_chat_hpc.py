"""ChatHPC end to end on the local endpoint, and the HPC tier's fault paths.

consumer ← relay process ← worker in a pool process ← llama.cpp, sealed per request. Faults are
real: a killed worker process, a killed relay, a relay port nobody listens on, and an endpoint
whose only worker is held busy so tasks never start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, BaseMessageChunk

from langchain_stream import StreamChatModel
from langchain_stream.errors import ChannelClosedError, TierUnavailableError
from langchain_stream.hpc import ChatHPC, LocalEndpoint, RelayProcess
from langchain_stream.hpc.local_endpoint import worker_pid
from langchain_stream.judge.base import Complexity, Judgment
from tests.integration_tests.hpc.helpers import UNIT_S, RecordingExecutor, StalledEndpoint

pytestmark = pytest.mark.timeout(120)

QUESTION = "What is the capital of France?"
STORY = "Write a long story about a lighthouse keeper."


def hpc(executor: Any, endpoint: LocalEndpoint, **kwargs: Any) -> ChatHPC:
    kwargs.setdefault("relay_urls", endpoint.relay_urls)
    kwargs.setdefault("relay_secret", endpoint.relay_secret)
    kwargs.setdefault("max_tokens", 24)
    kwargs.setdefault("first_token_timeout_s", 30 * UNIT_S)
    kwargs.setdefault("idle_timeout_s", 10 * UNIT_S)
    return ChatHPC(executor=executor, temperature=0.0, **kwargs)


def merge(chunks: Iterable[BaseMessageChunk]) -> AIMessageChunk:
    merged: Any = None
    for chunk in chunks:
        merged = chunk if merged is None else merged + chunk
    assert isinstance(merged, AIMessageChunk)
    return merged


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_streams_sync_and_async_and_batch_gives_the_same_answer(endpoint: LocalEndpoint) -> None:
    model = hpc(endpoint, endpoint)
    chunks = list(model.stream(QUESTION))
    streamed = merge(chunks)
    assert sum(bool(c.content) for c in chunks) > 3  # token by token, not one blob
    assert chunks[-1].chunk_position == "last"
    assert streamed.usage_metadata and streamed.usage_metadata["output_tokens"] > 0
    assert streamed.response_metadata["hpc"]["mode"] == "relay"
    assert streamed.response_metadata["hpc"]["relay_url"] == endpoint.relay_urls[0]
    batch = hpc(endpoint, endpoint, mode="batch").invoke(QUESTION)
    assert batch.content == streamed.content
    assert batch.response_metadata["hpc"] == {"mode": "batch"}
    assert batch.usage_metadata == streamed.usage_metadata


async def test_async_stream_gives_the_same_answer(endpoint: LocalEndpoint) -> None:
    model = hpc(endpoint, endpoint)
    chunks = [chunk async for chunk in model.astream(QUESTION)]
    assert merge(chunks).content == model.invoke(QUESTION).content


def test_stopping_early_stops_the_worker(endpoint: LocalEndpoint) -> None:
    recorder = RecordingExecutor(endpoint)
    model = hpc(recorder, endpoint, max_tokens=400)
    for received, _ in enumerate(model.stream(STORY), start=1):
        if received == 3:
            break
    summary = recorder.futures[0].result(30 * UNIT_S)
    assert summary["cancelled"], summary
    assert summary["pieces"] < 100  # out of up to 400


async def test_stopping_an_async_stream_early_stops_the_worker(endpoint: LocalEndpoint) -> None:
    recorder = RecordingExecutor(endpoint)
    model = hpc(recorder, endpoint, max_tokens=400)
    received = 0
    async for _ in model.astream(STORY):
        received += 1
        if received == 3:
            break  # no aclose(): the generator is finalized as a user's loop leaves it
    summary = await asyncio.wait_for(asyncio.wrap_future(recorder.futures[0]), 30 * UNIT_S)
    assert summary["cancelled"], summary
    assert summary["pieces"] < 100


def test_a_worker_killed_mid_stream_is_a_clear_error_within_the_idle_timeout(
    endpoint: LocalEndpoint,
) -> None:
    idle_s = 5 * UNIT_S
    doomed = LocalEndpoint(workers=1, relay=False)
    try:
        pid = doomed.submit(worker_pid).result(60 * UNIT_S)
        model = hpc(doomed, endpoint, max_tokens=400, idle_timeout_s=idle_s)
        stream = model.stream(STORY)
        received = [next(stream) for _ in range(3)]
        assert "".join(c.text for c in received)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ChannelClosedError, match="producer gone"):
            for _ in stream:
                pass
        assert time.monotonic() - killed_at < idle_s
    finally:
        doomed.shutdown(wait=False)


def test_a_relay_killed_mid_stream_is_a_clear_error_and_the_worker_stops(
    endpoint: LocalEndpoint,
) -> None:
    relay = RelayProcess()
    relay.start()
    recorder = RecordingExecutor(endpoint)
    model = hpc(
        recorder, endpoint, relay_urls=[relay.url], relay_secret=relay.secret, max_tokens=400
    )
    stream = model.stream(STORY)
    next(stream)
    killed_at = time.monotonic()
    relay.kill()
    with pytest.raises(ChannelClosedError, match="relay lost"):
        for _ in stream:
            pass
    assert time.monotonic() - killed_at < 5 * UNIT_S
    summary = recorder.futures[0].result(30 * UNIT_S)
    assert summary["cancelled"], summary
    assert summary["pieces"] < 100


class AlwaysMedium:
    """A judge that sends every query to the HPC tier first."""

    name = "always-medium"

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        return Judgment(
            complexity=Complexity.MEDIUM, scores={Complexity.MEDIUM: 1.0}, judge=self.name
        )


def test_an_endpoint_that_never_starts_falls_back_to_the_local_tier(
    endpoint: LocalEndpoint, local_model: Any
) -> None:
    stalled = StalledEndpoint()
    try:
        timeout_s = 1.0 * UNIT_S
        tier = hpc(stalled, endpoint, first_token_timeout_s=timeout_s)
        router = StreamChatModel(local=local_model, hpc=tier, judge=AlwaysMedium())
        started = time.monotonic()
        answer = merge(router.stream(QUESTION))
        record = answer.response_metadata["routing"]
        assert record["tier"] == "local"
        assert record["reason"] == "fallback"
        assert record["tiers_tried"][0]["tier"] == "hpc"
        assert "FirstTokenTimeoutError" in record["tiers_tried"][0]["error"]
        assert time.monotonic() - started < timeout_s + 10 * UNIT_S
        # Nothing lost: the whole local answer, exactly as the local tier gives it alone.
        assert answer.content == local_model.invoke(QUESTION).content
        # The queued task was withdrawn: it will not run when the endpoint wakes up.
        assert stalled.futures[0].cancelled()
    finally:
        stalled.close()


def test_no_reachable_relay_falls_back_to_batch_or_fails_clearly(endpoint: LocalEndpoint) -> None:
    nowhere = [f"ws://127.0.0.1:{free_port()}"]
    secret = "a-secret-for-a-relay-that-is-not-there"
    answer = hpc(endpoint, endpoint, relay_urls=nowhere, relay_secret=secret).invoke(QUESTION)
    assert answer.content
    assert answer.response_metadata["hpc"]["mode"] == "batch"
    assert "no relay reachable" in answer.response_metadata["hpc"]["relay_error"]
    strict = hpc(endpoint, endpoint, relay_urls=nowhere, relay_secret=secret, batch_fallback=False)
    with pytest.raises(TierUnavailableError, match="no relay reachable"):
        strict.invoke(QUESTION)


def test_a_backend_failure_before_the_first_token_is_tier_unavailable(
    endpoint: LocalEndpoint,
) -> None:
    model = hpc(endpoint, endpoint, backend_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(TierUnavailableError, match="backend"):
        model.invoke(QUESTION)
