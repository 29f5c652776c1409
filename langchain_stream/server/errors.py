"""Every error the server answers with, as an OpenAI error object, mapped in one place.

::

    cause                                         status  type                   code
    malformed JSON, wrong types, bad values       400     invalid_request_error  (validation error)
    InvalidRequestError, too many messages        400     invalid_request_error  invalid_request
    a lone surrogate in a string                  400     invalid_request_error  invalid_string
    a JSON schema too deep, large or malformed    400     invalid_request_error  invalid_schema
    missing or wrong API key                      401     invalid_request_error  invalid_api_key
    unknown model                                 404     invalid_request_error  model_not_found
    unknown route                                 404     invalid_request_error  not_found
    body over STREAM_MAX_BODY_BYTES               413     invalid_request_error  request_too_large
    over the key's rate limit                     429     requests               rate_limit_exceeded
    misconfigured server                          500     server_error           configuration_error
    anything unexpected                           500     server_error           internal_error
    a tier failed mid-answer (not streamed)       502     server_error           mid_stream_error
    relay failure                                 502     server_error           relay_error
    no tier could answer, tier unavailable        503     server_error           no_tier_available

On a stream, an error after the first token is sent as an SSE ``error`` event carrying the
same object (and no ``[DONE]``), never as a quietly truncated answer. Only the messages of the
package's own errors reach the client, which are written for callers; anything unexpected is
logged and answered with a generic message.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from langchain_stream.errors import (
    ConfigurationError,
    InvalidRequestError,
    MidStreamError,
    NoTierAvailableError,
    RelayError,
    StreamError,
    TierError,
)
from langchain_stream.server.openai_schema import ErrorBody, ErrorResponse

logger = logging.getLogger("langchain_stream.server")

INVALID = "invalid_request_error"
SERVER = "server_error"


class ApiError(Exception):
    """An error the server raises on purpose, with its HTTP status and OpenAI fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(message=message, type=type, param=param, code=code)
        self.headers = headers


def error_payload(body: ErrorBody) -> dict[str, Any]:
    """``{"error": {...}}`` as JSON-ready data."""
    return ErrorResponse(error=body).model_dump(mode="json")


def error_response(
    status: int, body: ErrorBody, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An OpenAI error object with its status code."""
    return JSONResponse(error_payload(body), status_code=status, headers=headers)


def _all_invalid(exc: NoTierAvailableError) -> bool:
    # Each attempt's error reads "<ExceptionType>: message" (see graph._describe).
    errors = [a.get("error") or "" for a in exc.attempts]
    return bool(errors) and all(e.startswith(InvalidRequestError.__name__) for e in errors)


def _rejections(exc: NoTierAvailableError) -> str:
    """Why each tier refused the request, in the tiers' words (no exception type names)."""
    prefix = f"{InvalidRequestError.__name__}: "
    reasons = [
        f"{a.get('tier')}: {str(a.get('error') or '').removeprefix(prefix)}" for a in exc.attempts
    ]
    return "the request cannot be served: " + "; ".join(reasons)


def from_exception(exc: BaseException) -> tuple[int, ErrorBody]:
    """The status and OpenAI error of any exception raised while answering."""
    if isinstance(exc, ApiError):
        return exc.status, exc.body
    if isinstance(exc, InvalidRequestError):
        return 400, ErrorBody(message=str(exc), type=INVALID, code="invalid_request")
    if isinstance(exc, NoTierAvailableError):
        if _all_invalid(exc):  # every tier rejected the request itself: the caller's fault
            return 400, ErrorBody(message=_rejections(exc), type=INVALID, code="invalid_request")
        return 503, ErrorBody(message=str(exc), type=SERVER, code="no_tier_available")
    if isinstance(exc, MidStreamError):
        return 502, ErrorBody(message=str(exc), type=SERVER, code="mid_stream_error")
    if isinstance(exc, TierError):
        return 503, ErrorBody(message=str(exc), type=SERVER, code="no_tier_available")
    if isinstance(exc, RelayError):
        return 502, ErrorBody(message=str(exc), type=SERVER, code="relay_error")
    if isinstance(exc, ConfigurationError):
        logger.error("configuration error while answering: %s", exc)
        message = "the server is misconfigured; its log says how"
        return 500, ErrorBody(message=message, type=SERVER, code="configuration_error")
    if isinstance(exc, StreamError):
        return 500, ErrorBody(message=str(exc), type=SERVER, code="internal_error")
    logger.error("unexpected error while answering", exc_info=exc)
    return 500, ErrorBody(message="internal server error", type=SERVER, code="internal_error")


def _param(loc: tuple[Any, ...]) -> str | None:
    """``("body", "messages", 0, "user", "content", "str")`` → ``messages[0].content``.

    Pydantic puts the tag of a discriminated union (``user``) and the member of a plain union
    (``str``, ``list[...]``) into the location; a client knows fields, not those.
    """
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    text = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        elif _is_union_label(part, parts[i - 1] if i else None):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or None


def _is_union_label(part: Any, before: Any) -> bool:
    text = str(part)
    if "[" in text or text in _TYPE_LABELS or text[:1].isupper():  # a type, not a field
        return True
    return isinstance(before, int) and text in _ROLE_TAGS


_TYPE_LABELS = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "literal"})
_ROLE_TAGS = frozenset({"system", "developer", "user", "assistant", "tool", "text", "image_url"})


def from_validation_error(exc: RequestValidationError) -> ErrorBody:
    """The first problem of a request that failed validation, as OpenAI reports it."""
    first = exc.errors()[0] if exc.errors() else {}
    kind = str(first.get("type", "invalid"))
    param = _param(tuple(first.get("loc", ())))
    if kind == "json_invalid":
        return ErrorBody(message="the request body is not valid JSON", type=INVALID, code=kind)
    if param is None:
        message = "the request body must be a JSON object (Content-Type: application/json)"
        return ErrorBody(message=message, type=INVALID, code=kind)
    message = f"{param}: {first.get('msg', 'invalid')}"
    return ErrorBody(message=message, type=INVALID, param=param, code=kind)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with an OpenAI error object."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.body, exc.headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, from_validation_error(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            body = ErrorBody(
                message=f"no route {request.method} {request.url.path}",
                type=INVALID,
                code="not_found",
            )
        elif exc.status_code == 405:
            body = ErrorBody(
                message=f"{request.method} is not allowed on {request.url.path}",
                type=INVALID,
                code="method_not_allowed",
            )
        else:
            body = ErrorBody(
                message=str(exc.detail), type=INVALID if exc.status_code < 500 else SERVER
            )
        return error_response(exc.status_code, body, getattr(exc, "headers", None))

    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        status, body = from_exception(exc)
        return error_response(status, body)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(StreamError, on_error)
    app.add_exception_handler(Exception, on_error)
