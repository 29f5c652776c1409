"""HPC-as-API: the HPC tier served as `stream-hpc`, on a real local endpoint and relay.

The endpoint is the HPC tests' local one (a worker process with the embedded model, and its own
relay on loopback); the tier is ``ChatHPC`` as users build it. A client that leaves mid-answer
cancels the worker itself, across the relay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.hpc import ChatHPC
from langchain_stream.server import KeyStore, create_app
from tests.integration_tests.hpc.helpers import (
    UNIT_S,
    RecordingExecutor,
    shared_endpoint,
    shutdown_shared_endpoint,
)
from tests.integration_tests.server.conftest import KEY, serving

pytestmark = pytest.mark.timeout(180)

STORY = "Write a long story about a lighthouse keeper."


@pytest.fixture(scope="module")
def hpc_server(local_model: ChatLocal) -> Iterator[tuple[str, RecordingExecutor]]:
    endpoint = shared_endpoint()
    endpoint.start()
    recorder = RecordingExecutor(endpoint)
    tier = ChatHPC(
        executor=recorder,
        relay_urls=endpoint.relay_urls,
        relay_secret=endpoint.relay_secret,
        temperature=0.0,
        max_tokens=24,
        first_token_timeout_s=30 * UNIT_S,
        idle_timeout_s=10 * UNIT_S,
    )
    router = StreamChatModel(local=local_model, hpc=tier)
    app = create_app(router, settings=Settings(rate_limit_rpm=0), keys=KeyStore.of(KEY))
    try:
        with serving(app) as url:
            yield url, recorder
    finally:
        shutdown_shared_endpoint()


def test_stream_hpc_answers_through_the_openai_client(
    hpc_server: tuple[str, RecordingExecutor],
) -> None:
    url, _ = hpc_server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    assert "stream-hpc" in [m.id for m in client.models.list()]
    chunks = list(
        client.chat.completions.create(
            model="stream-hpc",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) > 3
    assert chunks[0].model_extra["routing"]["tier"] == "hpc"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_client_leaving_cancels_the_hpc_worker(
    hpc_server: tuple[str, RecordingExecutor],
) -> None:
    url, recorder = hpc_server
    before = len(recorder.futures)
    body = {
        "model": "stream-hpc",
        "messages": [{"role": "user", "content": STORY}],
        "max_tokens": 400,
        "stream": True,
    }
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60 * UNIT_S,
    ) as response:
        assert json.loads(response.headers["x-stream-routing"])["tier"] == "hpc"
        events = 0
        for line in response.iter_lines():
            events += line.startswith("data: ")
            if events == 3:
                break
    summary = recorder.futures[before].result(30 * UNIT_S)
    assert summary["cancelled"], summary
    assert summary["pieces"] < 100  # out of up to 400
