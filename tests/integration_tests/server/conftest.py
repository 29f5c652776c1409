"""A real uvicorn server on 127.0.0.1 serving StreamChatModel over the embedded model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.server import KeyStore, create_app, hash_key
from langchain_stream.server.auth import parse_keys_file
from langchain_stream.server.protocol import HTTP_PROTOCOL
from tests.conftest import TIME_UNIT_S

KEY = "sk-integration-" + "3" * 32
LIMITED_KEY = "sk-limited-" + "4" * 32
"""A key of its own with a limit of 2 requests per minute (from the keys file)."""
MAX_BODY_BYTES = 64 * 1024
MAX_MESSAGES = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn, with ``stream serve``'s protocol, on a free loopback port,
    in a thread; stop it afterwards."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=HTTP_PROTOCOL,
        log_level="warning",
        server_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60 * TIME_UNIT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30 * TIME_UNIT_S)


@pytest.fixture(scope="session")
def router(local_model: ChatLocal) -> StreamChatModel:
    """The router over the session's embedded model, judging with the keyword judge."""
    return StreamChatModel(local=local_model, judge="keyword")


@pytest.fixture(scope="session")
def server_url(router: StreamChatModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server, with two keys (from a keys file) and small body and message limits."""
    keys_file = Path(tmp_path_factory.mktemp("keys")) / "keys"
    keys_file.write_text(
        f"{hash_key(KEY)} name=tests\n{hash_key(LIMITED_KEY)} name=limited rpm=2\n"
    )
    settings = Settings(
        rate_limit_rpm=0,
        rate_limit_storage="memory://",
        max_body_bytes=MAX_BODY_BYTES,
        max_messages=MAX_MESSAGES,
    )
    app = create_app(router, settings=settings, keys=KeyStore(parse_keys_file(keys_file)))
    with serving(app) as url:
        yield url
