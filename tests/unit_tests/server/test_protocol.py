"""``stream serve``'s HTTP protocol: the writes of one event-loop turn leave as one."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_stream.server.protocol import CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """Keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 4242)}.get(name, default)


def coalescing() -> tuple[CoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner


async def test_the_writes_of_one_turn_leave_together_and_in_order() -> None:
    transport, inner = coalescing()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")  # nothing to send: no empty write either
    transport.write(memoryview(b"data: first\n\n"))
    assert inner.writes == []  # not before the turn ends
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\ndata: first\n\n"]
    transport.write(b"data: second\n\n")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"data: second\n\n"]


async def test_closing_sends_what_is_pending_first() -> None:
    transport, inner = coalescing()
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"] and inner.closed
    await asyncio.sleep(0)
    assert inner.writes == [b"last words"]  # the scheduled flush finds nothing left


async def test_a_transport_closed_by_the_peer_gets_nothing_more() -> None:
    transport, inner = coalescing()
    transport.write(b"too late")
    inner.closed = True  # the client went away within the turn
    await asyncio.sleep(0)
    assert inner.writes == []


async def test_everything_else_is_the_transports() -> None:
    transport, _ = coalescing()
    assert transport.get_extra_info("peername") == ("127.0.0.1", 4242)
    assert transport.is_closing() is False
