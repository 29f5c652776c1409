"""uvicorn with ``stream serve``'s protocol on loopback: a streamed response's headers and its
first event reach the client in one read, later events as they come."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time

import uvicorn

from langchain_stream.server.protocol import HTTP_PROTOCOL
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.server.conftest import free_port


async def events(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Headers and a first event at once, a second event a moment later."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
    await asyncio.sleep(0.2 * TIME_UNIT_S)
    await send({"type": "http.response.body", "body": b"data: second\n\n", "more_body": False})


def test_headers_and_the_first_event_arrive_together() -> None:
    port = free_port()
    config = uvicorn.Config(
        events, host="127.0.0.1", port=port, http=HTTP_PROTOCOL, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30 * TIME_UNIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10 * TIME_UNIT_S) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            readable, _, _ = select.select([sock], [], [], 10 * TIME_UNIT_S)
            assert readable
            first_read = sock.recv(65536)
            assert first_read.startswith(b"HTTP/1.1 200 OK\r\n")
            assert first_read.endswith(b"data: first\n\n\r\n")  # in the same segment
            rest = b""
            while not rest.endswith(b"0\r\n\r\n"):
                part = sock.recv(65536)
                assert part, "the connection closed before the response ended"
                rest += part
            assert b"data: second\n\n" in rest
    finally:
        server.should_exit = True
        thread.join(timeout=30 * TIME_UNIT_S)
