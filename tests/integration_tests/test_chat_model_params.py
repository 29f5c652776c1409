"""StreamChatModel's standard parameters take effect on real tiers: ``base_url`` and
``api_key`` against an OpenAI-compatible server on loopback that requires a key, ``timeout``
and ``max_retries`` against a server on loopback that takes requests and never answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.errors import NoTierAvailableError
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.cloud_server import CLOUD_KEY, CloudServer

MODEL = "gpt-4o-mini"  # llama.cpp's server answers with its one model whatever the name


@pytest.fixture(scope="module")
def cloud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudServer]:
    server = CloudServer(Path(tmp_path_factory.mktemp("cloud")) / "access.log")
    yield server
    server.close()


class SilentServer:
    """Accepts connections, reads each request's first line, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.requests: list[str] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            line = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
            self.requests.append(line)

    def completions(self) -> int:
        return sum(1 for line in self.requests if line.startswith("POST /v1/chat/completions"))

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_base_url_and_api_key_reach_the_cloud_tier(
    cloud_server: CloudServer, local_model: ChatLocal
) -> None:
    before = cloud_server.completions_received()
    llm = StreamChatModel(
        model="stream-cloud",
        cloud_model=MODEL,
        base_url=cloud_server.url,
        api_key=CLOUD_KEY,
        local=local_model,
        max_tokens=8,
    )
    answer = llm.invoke("Say hi.")
    assert answer.response_metadata["routing"]["tier"] == "cloud"
    assert answer.text.strip()
    assert cloud_server.completions_received() == before + 1


def test_a_wrong_api_key_is_what_the_server_sees(
    cloud_server: CloudServer, local_model: ChatLocal
) -> None:
    llm = StreamChatModel(
        model="cloud",
        cloud_model=MODEL,
        base_url=cloud_server.url,
        api_key="sk-wrong",
        local=local_model,
    )
    with pytest.raises(NoTierAvailableError) as caught:
        llm.invoke("Say hi.")
    assert "401" in caught.value.attempts[0]["error"]


def test_timeout_bounds_a_request_to_the_cloud(
    silent: SilentServer, local_model: ChatLocal
) -> None:
    timeout = 1.0 * TIME_UNIT_S
    llm = StreamChatModel(
        model="cloud",
        cloud_model=MODEL,
        base_url=silent.url,
        api_key="k",
        timeout=timeout,
        local=local_model,
    )
    started = time.monotonic()
    with pytest.raises(NoTierAvailableError) as caught:
        llm.invoke("Say hi.")
    took = time.monotonic() - started
    assert timeout <= took < timeout + 5 * TIME_UNIT_S
    assert "Timeout" in caught.value.attempts[0]["error"]
    assert silent.completions() == 1  # no retry by default: the router falls back instead


def test_max_retries_retries_the_cloud_api(silent: SilentServer, local_model: ChatLocal) -> None:
    llm = StreamChatModel(
        model="cloud",
        cloud_model=MODEL,
        base_url=silent.url,
        api_key="k",
        timeout=0.5 * TIME_UNIT_S,
        max_retries=2,
        local=local_model,
    )
    with pytest.raises(NoTierAvailableError):
        llm.invoke("Say hi.")
    assert silent.completions() == 3  # the first try and two retries
