"""The gate every request passes before the app reads it: failed-auth limit per client
address, API key, rate limit, body size.

It is plain ASGI middleware rather than FastAPI dependencies because FastAPI reads and parses
the body before it resolves dependencies: a dependency could not keep an unauthenticated
caller from having its malformed or oversized body parsed, nor bound the bytes read.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langchain_stream.failed_auth import FailedAuthCounter
from langchain_stream.server.auth import ApiKey, KeyStore, RateLimiter
from langchain_stream.server.errors import INVALID, error_response
from langchain_stream.server.openai_schema import ErrorBody

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths answered without a key (they reveal nothing)."""
PAGE_PREFIX = "/web/"
"""The chat page's static files, answered without a key like the page at ``/``: they hold no
data, and every data call the page makes carries the key."""
ANONYMOUS = "anonymous"
"""The identity rate limits count when no API key is configured."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def api_key_of(scope: Scope) -> ApiKey | None:
    """The key the Guard matched for this request (``None`` without authentication)."""
    return scope.get("state", {}).get("api_key")


def is_page_path(path: str) -> bool:
    """Whether ``path`` is the chat page or one of its static files."""
    return path == "/" or path.startswith(PAGE_PREFIX)


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Guard:
    """ASGI middleware that authenticates, rate-limits and bounds the body of every request.

    An address that presented too many wrong keys gets 429 without its key being checked
    (:mod:`langchain_stream.failed_auth`). The matched
    :class:`~langchain_stream.server.auth.ApiKey` (``None`` when authentication is off) is left
    in ``request.state.api_key``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyStore,
        limiter: RateLimiter,
        max_body_bytes: int,
        failures: FailedAuthCounter | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.failures = failures
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or is_page_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        key: ApiKey | None = None
        if self.keys.enabled:
            token = _bearer(scope)
            address = _client_address(scope)
            if self.failures is not None and token:
                # Refused before the key is checked: a blocked address learns nothing more.
                blocked_for = await self.failures.retry_after(address)
                if blocked_for is not None:
                    await self._too_many_failures(blocked_for)(scope, receive, send)
                    return
            key = self.keys.authenticate(token) if token else None
            if key is None:
                if token and self.failures is not None:
                    await self.failures.record_failure(address)
                message = (
                    "incorrect API key provided"
                    if token
                    else "missing API key: send 'Authorization: Bearer <key>'"
                )
                body = ErrorBody(message=message, type=INVALID, code="invalid_api_key")
                headers = {"WWW-Authenticate": "Bearer"}
                await error_response(401, body, headers)(scope, receive, send)
                return
        retry_after = await self.limiter.hit(
            key.name if key else ANONYMOUS, key.rpm if key else None
        )
        if retry_after is not None:
            body = ErrorBody(
                message=f"rate limit reached for this API key; retry in {retry_after:.0f} s",
                type="requests",
                code="rate_limit_exceeded",
            )
            headers = {"Retry-After": f"{retry_after:.0f}"}
            await error_response(429, body, headers)(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = key
        if scope["method"] in _BODY_METHODS:
            body_bytes = await self._read_body(scope, receive)
            if body_bytes is None:
                await error_response(413, self._too_large())(scope, receive, send)
                return
            receive = _replay(body_bytes, receive)
        await self.app(scope, receive, send)

    def _too_many_failures(self, retry_after: float) -> JSONResponse:
        body = ErrorBody(
            message=(
                "too many requests with a wrong API key from this address; "
                f"retry in {retry_after:.0f} s"
            ),
            type="requests",
            code="too_many_failed_authentications",
        )
        return error_response(429, body, {"Retry-After": f"{retry_after:.0f}"})

    def _too_large(self) -> ErrorBody:
        return ErrorBody(
            # Images count base64-encoded: 4 bytes of body for 3 of image.
            message=f"the request body exceeds {self.max_body_bytes} bytes (setting "
            "max_body_bytes; an image counts a third more than its size, base64-encoded)",
            type=INVALID,
            code="request_too_large",
        )

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or ``None`` as soon as it exceeds the limit (nothing more is read)."""
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            return None
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then listens for disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
