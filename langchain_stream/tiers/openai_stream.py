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
"""

from __future__ import annotations

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
    else:
        error = body.get("error", body) if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
    data = body.get("error", body) if isinstance(body, dict) else body
    cls = classes.get(code) or (
        openai.InternalServerError if code >= 500 else openai.APIStatusError
    )
    return cls(message, response=response, body=data)


class PlainChunkCompletions:
    """A client's ``chat.completions`` whose streamed chunks reach ``ChatOpenAI`` as dicts.

    Args:
        completions: the SDK's ``client.chat.completions`` (sync or async).
        client: the SDK client it belongs to.
        stream_cls: ``Stream[object]`` or ``AsyncStream[object]``, as the client is.
        http_client: the async client's own HTTP client (``httpx2.AsyncClient``), when it has
            one; streamed requests then go straight through it.
    """

    def __init__(
        self, completions: Any, client: Any, stream_cls: type, http_client: Any = None
    ) -> None:
        self._completions = completions
        self._client = client
        self._stream_cls = stream_cls
        self._http = http_client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)

    def create(self, **params: Any) -> Any:
        """As the SDK's ``create``; a coroutine when the client is async."""
        if not params.get("stream") or "response_format" in params:
            return self._completions.create(**params)
        options = {
            option: params.pop(name) for name, option in _REQUEST_OPTIONS.items() if name in params
        }
        if self._http is not None and not options and self._plain_auth():
            return self._post_directly(params)
        return self._client.post(
            "/chat/completions",
            body=params,
            options=options,
            cast_to=object,
            stream=True,
            stream_cls=self._stream_cls,
        )

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
