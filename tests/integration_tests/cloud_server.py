"""``python -m llama_cpp.server`` on loopback as an OpenAI-compatible API that requires a key."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from langchain_stream.tiers.embedded import embedded_model_path
from tests.conftest import TIME_UNIT_S

CLOUD_KEY = "sk-loopback"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CloudServer:
    """`python -m llama_cpp.server` on loopback, requiring ``CLOUD_KEY``; its access log tells
    what it received."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._handle = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "langchain_stream.llama.server",
                "--model",
                str(embedded_model_path()),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_ctx",
                "2048",
                "--api_key",
                CLOUD_KEY,
                # By default llama.cpp's server cuts a running answer short when any other
                # request arrives (another answer, or a readiness check's GET /models).
                "--interrupt_requests",
                "False",
            ],
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60 * TIME_UNIT_S
        ping = urllib.request.Request(
            f"{self.url}/models", headers={"Authorization": f"Bearer {CLOUD_KEY}"}
        )
        while True:
            try:
                with urllib.request.urlopen(ping, timeout=2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"llama_cpp.server did not start:\n{log.read_text()}"
                    ) from None
                time.sleep(0.3)

    def completions_received(self) -> int:
        return self.log.read_text().count("POST /v1/chat/completions")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._handle.close()
