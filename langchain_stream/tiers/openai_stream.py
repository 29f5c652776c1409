"""Streamed chat completions for ``ChatOpenAI``, read as the plain JSON they are.

``ChatOpenAI`` takes a streamed chunk as a dict when it is one. The SDK's ``create`` walks the
request body through its parameter types (for chat completions it changes nothing), builds
the request through its layers of options, and builds a typed model of every chunk, which
``ChatOpenAI`` dumps straight back to a dict. On a busy two-core machine that is about
1.5 ms before the first token, more than all the rest of a gateway's work on a request.

:class:`PlainChunkCompletions` stands in for a client's ``chat.completions``:

- a streamed request from an async client with an HTTP client of its own and a plain API key
  is one POST on that HTTP client, with the SDK client's headers, key, base URL and timeout,
  read by the SDK's own ``AsyncStream`` (an error event in the stream still raises
  ``APIError``); a refused request raises the SDK's status error for its code, a failed
  connection ``APIConnectionError`` / ``APITimeoutError``;
- other streamed requests go through the SDK's generic ``post``, chunks cast to ``object``;
- everything else (whole answers, structured output) is the SDK's ``create``.

An async stream also keeps ``ChatOpenAI``'s ``stream_chunk_timeout`` (:class:`SilenceBound`):
``ChatOpenAI`` bounds each wait for a chunk with ``asyncio.wait_for``, which on Python 3.11
starts a task per chunk; here one timer per chunk bounds the same silence.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

# Arguments of the SDK's `create` that are request options rather than body fields.
_REQUEST_OPTIONS = {
    "extra_headers": "headers",
    "extra_query": "params",
    "extra_body": "extra_json",
    "timeout": "timeout",
}


def status_error(response: Any) -> Exception:
    """The SDK's exception for a refused request (its class for the status code)."""
    import openai

    classes: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        409: openai.ConflictError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    code = response.status_code
    # Worded as the SDK words it: the code, and the error's own message when there is one.
    message = f"Error code: {code}"
    text = response.text.strip()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    data = body.get("error", body) if isinstance(body, dict) else body
    detail = data.get("message") if isinstance(data, dict) else None
    if isinstance(detail, str) and detail:
        message += f" - {detail}"
    cls = classes.get(code) or (
        openai.InternalServerError if code >= 500 else openai.APIStatusError
    )
    return cls(message, response=response, body=data)


class SilenceBound:
    """An SDK stream whose wait for each chunk is bounded: a silent API raises ``TimeoutError``.

    The stream is used as the SDK's is (``async with``, ``async for``); each wait for the
    next chunk runs under a timer of its own, entered and left within that one wait.
    """

    def __init__(self, stream: Any, seconds: float) -> None:
        self.stream = stream
        self.seconds = seconds
        self.received = 0

    async def __aenter__(self) -> SilenceBound:
        await self.stream.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stream.__aexit__(*exc_info)

    def __aiter__(self) -> SilenceBound:
        return self

    async def __anext__(self) -> Any:
        try:
            async with asyncio.timeout(self.seconds):
                chunk = await self.stream.__anext__()
        except TimeoutError:
            await self.stream.close()  # let the connection go
            raise TimeoutError(
                f"no chunk from the API for {self.seconds:g} s after {self.received} chunks "
                "(stream_chunk_timeout)"
            ) from None
        self.received += 1
        return chunk


class PlainChunkCompletions:
    """A client's ``chat.completions`` whose streamed chunks reach ``ChatOpenAI`` as dicts.

    Args:
        completions: the SDK's ``client.chat.completions`` (sync or async).
        client: the SDK client it belongs to.
        stream_cls: ``Stream[object]`` or ``AsyncStream[object]``, as the client is.
        http_client: the async client's own HTTP client (``httpx2.AsyncClient``), when it has
            one; streamed requests then go straight through it.
        chunk_timeout_s: for an async client, the bound on the wait for each chunk (``None``:
            unbounded).
    """

    def __init__(
        self,
        completions: Any,
        client: Any,
        stream_cls: type,
        http_client: Any = None,
        chunk_timeout_s: float | None = None,
    ) -> None:
        self._completions = completions
        self._client = client
        self._stream_cls = stream_cls
        self._http = http_client
        self._chunk_timeout_s = chunk_timeout_s
        from openai import AsyncStream

        self._is_async = getattr(stream_cls, "__origin__", stream_cls) is AsyncStream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)

    def create(self, **params: Any) -> Any:
        """As the SDK's ``create``; a coroutine when the client is async."""
        if not params.get("stream") or "response_format" in params:
            return self._completions.create(**params)
        options = {
            option: params.pop(name) for name, option in _REQUEST_OPTIONS.items() if name in params
        }
        if self._is_async:
            return self._astream(params, options)
        return self._post(params, options)

    def _post(self, body: dict[str, Any], options: dict[str, Any]) -> Any:
        return self._client.post(
            "/chat/completions",
            body=body,
            options=options,
            cast_to=object,
            stream=True,
            stream_cls=self._stream_cls,
        )

    async def _astream(self, body: dict[str, Any], options: dict[str, Any]) -> Any:
        if self._http is not None and not options and self._plain_auth():
            stream = await self._post_directly(body)
        else:
            stream = await self._post(body, options)
        seconds = self._chunk_timeout_s
        return SilenceBound(stream, seconds) if seconds and seconds > 0 else stream

    def _plain_auth(self) -> bool:
        # An API key in a header is all it takes; other schemes stay with the SDK.
        client = self._client
        return bool(client.auth_headers) and client.custom_auth is None and not client.default_query

    async def _post_directly(self, body: dict[str, Any]) -> Any:
        import httpx2
        import openai

        client = self._client
        headers = {
            name: value
            for name, value in {**client.default_headers, **client.auth_headers}.items()
            if isinstance(value, str)  # the SDK marks headers to leave out with `Omit`
        }
        url = f"{str(client.base_url).rstrip('/')}/chat/completions"
        request = self._http.build_request(
            "POST", url, json=body, headers=headers, timeout=client.timeout
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        except httpx2.HTTPError as exc:
            raise openai.APIConnectionError(request=request) from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise status_error(response)
        return self._stream_cls(cast_to=object, response=response, client=client)
