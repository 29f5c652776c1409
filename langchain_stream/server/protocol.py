"""uvicorn's HTTP protocol, with the writes of one event-loop turn sent as one.

uvicorn writes a response's status line and headers to the socket as soon as the app sends
``http.response.start``, and each body part as it comes. A streamed answer sends its headers
and its first event in the same turn of the loop: written apart they leave as two TCP
segments, and the client wakes for the headers alone while the first token waits for the
next segment (on a busy machine, for the next time slice). Here the writes of one turn are
gathered and written together at its end: nothing waits longer than the rest of the turn,
and the order is kept.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

HTTP_PROTOCOL = "langchain_stream.server.protocol:CoalescingHttpProtocol"
"""The protocol class ``stream serve`` hands uvicorn (as ``http=``)."""


class CoalescingTransport:
    """A transport whose writes within one turn of the loop reach the socket as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Write what this turn gathered."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()  # a response written just before closing still leaves
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _base_protocol() -> type[asyncio.Protocol]:
    # What uvicorn's `http="auto"` would pick: httptools when installed, h11 otherwise.
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


class CoalescingHttpProtocol(_base_protocol()):  # type: ignore[misc]
    """uvicorn's HTTP protocol over a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        super().connection_made(coalescing)
