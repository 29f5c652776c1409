"""A TCP proxy on loopback that cuts a connection once no byte has crossed it for a while, as
load balancers and reverse proxies do (often after 30 or 60 s)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class IdleCutProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_port``; closes both sides of a connection
    after ``idle_s`` without traffic in either direction. ``cut`` counts the connections it
    closed so."""

    def __init__(self, target_port: int, idle_s: float) -> None:
        self.target_port, self.idle_s = target_port, idle_s
        self.cut = 0
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        loop = asyncio.get_running_loop()
        last = loop.time()

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            nonlocal last
            while data := await source.read(65536):
                last = loop.time()
                sink.write(data)
                await sink.drain()

        pumps = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        try:
            while not all(p.done() for p in pumps):
                await asyncio.sleep(0.05)
                if loop.time() - last > self.idle_s:
                    self.cut += 1
                    break
        finally:
            for task in pumps:
                task.cancel()
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    @contextmanager
    def running(self) -> Iterator[str]:
        """Run the proxy on a thread of its own; yields its base URL."""
        loop = asyncio.new_event_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        started = threading.Event()
        stop: asyncio.Future[None] | None = None

        async def serve() -> None:
            nonlocal stop
            stop = loop.create_future()
            server = await asyncio.start_server(self._handle, sock=sock)
            started.set()
            async with server:
                await stop
            # Connections still open (a client that never closed) end with the proxy.
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        started.wait(10)
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            loop.call_soon_threadsafe(lambda: stop is not None and stop.set_result(None))
            thread.join(10)
            loop.close()
