"""graphs/ + langgraph.json loaded by LangGraph's own server (`langgraph dev`), on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TIME_UNIT_S

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def langgraph_dev() -> Iterator[str]:
    cli = shutil.which("langgraph", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("langgraph-cli is not installed (pip install 'langchain-stream[test]')")
    port = _free_port()
    process = subprocess.Popen(
        [cli, "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90 * TIME_UNIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("langgraph dev did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_router_graph_loads_and_answers_through_langgraph_dev(langgraph_dev: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=langgraph_dev)
    assert any(a["graph_id"] == "router" for a in client.assistants.search())
    out = client.runs.wait(
        None, "router", input={"messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    )
    assert out["messages"][-1]["type"] == "ai" and out["messages"][-1]["content"]
    assert out["record"]["tier"] == "local"
    assert out["record"]["usage"]["output_tokens"] > 0

    tokens = []
    for part in client.runs.stream(
        None,
        "router",
        input={"messages": [{"role": "user", "content": "Name a fruit."}]},
        stream_mode="custom",
    ):
        if part.event == "custom" and part.data.get("content"):
            tokens.append(part.data["content"])
    assert len(tokens) > 1  # token by token through LangGraph's own streaming
