"""The access log: one line per request, written once its response is complete.

uvicorn's own access log writes its line as the response starts, on the way to a streamed
answer's first token; this one writes it at the end, with the time the whole answer took.
``stream serve`` turns uvicorn's off and configures this logger instead (``--access-log``).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER_NAME = "langchain_stream.access"
logger = logging.getLogger(LOGGER_NAME)


class AccessLog:
    """ASGI middleware logging ``client - "METHOD path HTTP/v" status duration``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before responding

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            client = scope.get("client")
            path = scope["path"] + (
                f"?{scope['query_string'].decode()}" if scope.get("query_string") else ""
            )
            logger.info(
                '%s - "%s %s HTTP/%s" %d %.1f ms',
                f"{client[0]}:{client[1]}" if client else "-",
                scope["method"],
                path,
                scope["http_version"],
                status,
                (time.perf_counter() - started) * 1000.0,
            )
