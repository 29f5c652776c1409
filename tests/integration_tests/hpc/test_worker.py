"""The worker for real: in a process pool after a ComputeSerializer round trip, on llama.cpp or
an OpenAI-compatible server on loopback, streaming sealed frames through a relay process.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from globus_compute_sdk.serialize import ComputeSerializer

from langchain_stream.hpc import LocalEndpoint
from langchain_stream.hpc.task import TASK_VERSION, ChannelSpec, TaskRequest, decode_piece
from langchain_stream.hpc.worker import hpc_worker
from langchain_stream.relay import (
    ConsumerClient,
    mint_channel_tokens,
    new_channel_id,
    new_channel_key,
)
from langchain_stream.tiers.embedded import embedded_model_path
from tests.integration_tests.hpc.helpers import UNIT_S

pytestmark = pytest.mark.timeout(120)

SERVED_NAME = "smollm2-on-loopback"


def make_request(question: str, max_tokens: int, **backend: Any) -> TaskRequest:
    return TaskRequest(
        version=TASK_VERSION,
        messages=[{"role": "user", "content": question}],
        params={"max_tokens": max_tokens, "temperature": 0.0},
        backend=backend,  # type: ignore[typeddict-item]
    )


class Channel:
    """A fresh channel on a relay: id, key, tokens, and the worker's half of it."""

    def __init__(self, relay_urls: list[str], secret: str) -> None:
        self.urls = relay_urls
        self.id = new_channel_id()
        self.key = new_channel_key()
        self.tokens = mint_channel_tokens(secret, self.id)

    def spec(self) -> ChannelSpec:
        return ChannelSpec(
            relay_urls=self.urls, channel_id=self.id, token=self.tokens.producer, key=self.key.hex()
        )

    def consumer(self) -> ConsumerClient:
        return ConsumerClient(
            self.urls,
            self.id,
            self.tokens.consumer,
            self.key,
            first_token_timeout_s=30 * UNIT_S,
            idle_timeout_s=10 * UNIT_S,
        )


def test_round_trip_then_run_in_batch_mode(local_model: Any) -> None:
    # Serialize the function and its arguments, deserialize, run (here, on the test's model).
    request = make_request("What is the capital of France?", 16)
    fn, args, kwargs = ComputeSerializer().check_strategies(hpc_worker, request)
    summary = fn(*args, **kwargs)
    assert summary["ok"], summary
    assert summary["mode"] == "batch"
    assert summary["text"].strip()
    assert summary["usage"]["output_tokens"] > 0
    assert summary["response_metadata"]["finish_reason"] in ("stop", "length")


async def test_sealed_stream_from_a_pool_worker_equals_the_batch_answer(
    endpoint: LocalEndpoint,
) -> None:
    request = make_request("Name three rivers of Europe.", 24)
    batch = await asyncio.wrap_future(endpoint.submit(hpc_worker, request))
    channel = Channel(endpoint.relay_urls, endpoint.relay_secret or "")
    # The consumer holds the key: it opens only sealed frames (no downgrade), so every token
    # it yields crossed the relay encrypted and authenticated.
    async with channel.consumer() as consumer:
        task = asyncio.wrap_future(endpoint.submit(hpc_worker, request, channel.spec()))
        pieces = [decode_piece(token) async for token in consumer]
    summary = await task
    assert summary["ok"] and summary["mode"] == "relay", summary
    text = "".join(p for p in pieces if isinstance(p, str))
    assert text == batch["text"]
    assert consumer.usage == batch["usage"]
    metadata = [p["response_metadata"] for p in pieces if isinstance(p, dict)]
    assert metadata == [batch["response_metadata"]]
    assert summary["pieces"] == sum(isinstance(p, str) for p in pieces)
    assert 1 <= summary["frames"] <= len(pieces)
    assert summary["relay_url"] == endpoint.relay_urls[0]
    assert summary["worker"]["pid"] != batch["worker"]["pid"] or summary["worker"]["pid"] > 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_relay_from_the_node_means_a_batch_answer(endpoint: LocalEndpoint) -> None:
    request = make_request("Say hello.", 8)
    channel = Channel([f"ws://127.0.0.1:{_free_port()}"], "secret-for-a-relay-that-is-not-there")
    summary = endpoint.submit(hpc_worker, request, channel.spec()).result(60 * UNIT_S)
    assert summary["ok"], summary
    assert summary["mode"] == "batch"
    assert "no relay reachable" in (summary["relay_error"] or "")
    assert summary["text"].strip()


# --------------------------------------------------------------------------- OpenAI-compatible


@pytest.fixture(scope="module")
def openai_server() -> Iterator[str]:
    """``llama_cpp.server`` on loopback: the OpenAI-compatible backend, as vLLM would be."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "langchain_stream.llama.server",
        "--model",
        str(embedded_model_path()),
        "--model_alias",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "1",
        "--n_ctx",
        "2048",
        "--chat_format",
        "chatml",  # SmolLM2's template; naming it spares the server a slow first request
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60 * UNIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("llama_cpp.server did not start")
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(10)


def test_openai_backend_in_batch_mode(endpoint: LocalEndpoint, openai_server: str) -> None:
    request = make_request(
        "What is the capital of France?", 16, url=openai_server, model=SERVED_NAME
    )
    summary = endpoint.submit(hpc_worker, request).result(60 * UNIT_S)
    assert summary["ok"], summary
    assert summary["text"].strip()
    assert summary["response_metadata"]["model_name"] == SERVED_NAME
    assert summary["response_metadata"]["finish_reason"] in ("stop", "length")


async def test_openai_backend_streams_and_stops_when_the_consumer_cancels(
    endpoint: LocalEndpoint, openai_server: str
) -> None:
    request = make_request(
        "Write a long story about a lighthouse keeper.", 400, url=openai_server, model=SERVED_NAME
    )
    channel = Channel(endpoint.relay_urls, endpoint.relay_secret or "")
    async with channel.consumer() as consumer:
        task = asyncio.wrap_future(endpoint.submit(hpc_worker, request, channel.spec()))
        received = []
        async for token in consumer:
            received.append(token)
            if len(received) == 3:
                break  # leaving the block sends CANCEL
    summary = await asyncio.wait_for(task, 30 * UNIT_S)
    assert summary["ok"], summary
    assert summary["cancelled"], summary
    assert "consumer" in (summary["cancel_reason"] or "")
    assert summary["pieces"] < 100  # it stopped long before max_tokens


def test_backend_failure_reaches_the_consumer_as_an_error(endpoint: LocalEndpoint) -> None:
    request = make_request("Hi", 8, url=f"http://127.0.0.1:{_free_port()}/v1", model="x")
    summary = endpoint.submit(hpc_worker, request).result(60 * UNIT_S)
    assert not summary["ok"]
    assert "ConnectError" in summary["error"] or "failed" in summary["error"]
