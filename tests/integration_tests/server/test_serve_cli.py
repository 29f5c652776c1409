"""`stream serve` as a user runs it: a real process (with two workers) on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import TIME_UNIT_S
from tests.integration_tests.server.conftest import free_port

STREAM = [sys.executable, "-m", "langchain_stream.cli"]
KEY = "sk-cli-" + "8" * 32


def test_serve_refuses_a_public_interface_without_keys() -> None:
    done = subprocess.run(
        [*STREAM, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60 * TIME_UNIT_S,
        check=False,
    )
    assert done.returncode == 1
    assert "without API keys" in done.stderr and "STREAM_API_KEYS" in done.stderr


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "STREAM_API_KEYS": KEY, "STREAM_RATE_LIMIT_RPM": "0"}
    process = subprocess.Popen(
        [*STREAM, "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # workers and all are signalled as one group, by our own pid
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120 * TIME_UNIT_S
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stream serve did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30 * TIME_UNIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_serve_with_two_workers_answers_with_keys_only(served: str) -> None:
    assert httpx.get(f"{served}/v1/models").status_code == 401
    client = openai.OpenAI(base_url=f"{served}/v1", api_key=KEY, max_retries=0)
    for _ in range(3):  # requests land on either worker
        completion = client.chat.completions.create(
            model="stream-local", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        assert completion.choices[0].message.content is not None
        assert completion.model_extra["routing"]["tier"] == "local"
