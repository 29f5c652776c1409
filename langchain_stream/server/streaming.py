"""Answering one chat request: as server-sent events, or whole.

Both paths read the same ``StreamChatModel.astream``. A streamed answer waits for its first
chunk before it sends anything, so a failure before the first token (no tier available, a bad
request) is an ordinary HTTP error with its status code, and the routing record known at the
first token travels in the ``x-stream-routing`` header. A first chunk that takes longer than
the keep-alive interval (``STREAM_SSE_KEEPALIVE_S``) opens the stream anyway, and SSE comments
keep it alive until the chunk comes. A failure after the stream opened is sent as an SSE
``error`` event with an OpenAI error object, and the stream ends without ``[DONE]``. When the
client goes away, the model's stream is closed, which cancels the tier's generation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import add_ai_message_chunks
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from langchain_stream.server import openai_schema as oa
from langchain_stream.server.convert import completion_of, delta_of, finish_reason_of, usage_of
from langchain_stream.server.errors import error_payload, from_exception

ROUTING_HEADER = "x-stream-routing"
_EMPTY = AIMessageChunk(content="")
DONE = "data: [DONE]\n\n"
KEEPALIVE = ": keep-alive\n\n"
"""An SSE comment: clients skip it; proxies see traffic (docs/serving.md)."""
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class Answer:
    """What every chunk of one answer repeats."""

    completion_id: str
    created: int
    model: str
    include_usage: bool = False


def routing_header(record: dict[str, Any] | None) -> dict[str, str]:
    """The routing record as a response header (compact ASCII JSON)."""
    if not record:
        return {}
    return {ROUTING_HEADER: json.dumps(record, separators=(",", ":"), ensure_ascii=True)}


def _routing(chunk: AIMessageChunk) -> dict[str, Any] | None:
    return chunk.response_metadata.get("routing")


class ModelStream:
    """A model's stream, read chunk by chunk; closing it cancels the tier's generation.

    The SSE response runs in an anyio task group, which on a client disconnect cancels its
    tasks again and again until they finish. The close is therefore shielded, so it runs to
    its end once; the router's own work runs in a task of its own
    (:func:`langchain_stream._threads.aiter_in_task`), which gets exactly one ``cancel()``
    however often its reader is cancelled.
    """

    def __init__(self, chunks: AsyncIterator[Any]) -> None:
        self._chunks = chunks

    async def next(self) -> AIMessageChunk | None:
        """The next chunk, or ``None`` at the end.

        Raises:
            Exception: whatever the model raised.
        """
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return None

    async def aclose(self) -> None:
        """Stop the model's stream (cancelling the tier's generation) and wait for it."""
        with anyio.CancelScope(shield=True):
            await self._chunks.aclose()  # type: ignore[attr-defined]


def _chunk(
    answer: Answer,
    delta: oa.Delta,
    *,
    finish_reason: oa.FinishReason | None = None,
    routing: dict[str, Any] | None = None,
) -> str:
    chunk = oa.ChatCompletionChunk(
        id=answer.completion_id,
        object="chat.completion.chunk",
        created=answer.created,
        model=answer.model,
        choices=[oa.ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)],
    )
    if routing:
        chunk.routing = routing
    # exclude_unset: clients see finish_reason null on every chunk, as OpenAI sends it,
    # and no empty fields besides.
    return _event(chunk.model_dump_json(exclude_unset=True))


def _event(data: str, name: str | None = None) -> str:
    """One server-sent event (the data is one line of JSON)."""
    return f"event: {name}\ndata: {data}\n\n" if name else f"data: {data}\n\n"


class EventStream(StreamingResponse):
    """Server-sent events, the first sent at once by the task that answers the request.

    A client that disconnects cancels the events (a watcher reads ``receive``, so a departure
    is noticed between tokens too), and the background close runs in every case.
    """

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await self.stream_response(send)
                group.cancel_scope.cancel()
        finally:
            if self.background is not None:
                await self.background()


async def stream_answer(
    model: BaseChatModel,
    messages: list[BaseMessage],
    kwargs: dict[str, Any],
    answer: Answer,
    keepalive_s: float | None = None,
) -> Response:
    """Stream the answer as OpenAI chunks over SSE, once its first chunk is there.

    A first chunk slower than ``keepalive_s`` does not hold the response back: the stream
    opens and carries a ``: keep-alive`` comment every ``keepalive_s`` until the chunk comes
    (an idle proxy would cut it otherwise); a failure in that wait is an SSE ``error`` event.

    Raises:
        Exception: whatever the model raised before its first chunk, within ``keepalive_s``
            (an HTTP error follows).
    """
    stream = ModelStream(model.astream(messages, **kwargs))
    pending = asyncio.ensure_future(stream.next())
    try:
        await asyncio.wait({pending}, timeout=keepalive_s)
        if not pending.done():
            return EventStream(
                _kept_alive(pending, stream, answer, keepalive_s or 0.0),
                headers=SSE_HEADERS,
                background=BackgroundTask(_close_after, pending, stream),
            )
        first = pending.result()
    except BaseException:
        await _close_after(pending, stream)
        raise
    headers = routing_header(_routing(first) if first is not None else None)
    # The background close covers a client gone before the events began (their `finally`
    # would never run); closing twice is harmless.
    return EventStream(
        _events(first, stream, answer),
        headers={**SSE_HEADERS, **headers},
        background=BackgroundTask(stream.aclose),
    )


async def _close_after(pending: asyncio.Future[Any], stream: ModelStream) -> None:
    """Close the model's stream once the read of its first chunk is over (cancelled if it
    still runs: a generator cannot be closed while it is being read)."""
    with anyio.CancelScope(shield=True):
        if not pending.done():
            pending.cancel()
            await asyncio.wait({pending})
        await stream.aclose()


async def _kept_alive(
    pending: asyncio.Future[AIMessageChunk | None],
    stream: ModelStream,
    answer: Answer,
    keepalive_s: float,
) -> AsyncIterator[str]:
    """Keep-alive comments until the first chunk, then the answer's events."""
    try:
        while not pending.done():
            yield KEEPALIVE
            await asyncio.wait({pending}, timeout=keepalive_s)
        first = pending.result()
    except Exception as exc:
        _, body = from_exception(exc)
        yield _event(json.dumps(error_payload(body)), "error")
        await _close_after(pending, stream)
        return
    finally:
        if not pending.done():  # the client left while waiting
            await _close_after(pending, stream)
    async for event in _events(first, stream, answer):
        yield event


async def _events(
    first: AIMessageChunk | None, stream: ModelStream, answer: Answer
) -> AsyncIterator[str]:
    routing: dict[str, Any] = {}
    parts: list[AIMessageChunk] = []
    finish: oa.FinishReason | None = None
    role_sent = False
    try:
        chunk = first
        while chunk is not None:
            parts.append(chunk)
            finish = finish_reason_of(chunk) or finish
            record = _routing(chunk)
            if record:
                routing.update(record)
            delta = delta_of(chunk)
            if not role_sent:  # the first chunk names the role, as OpenAI's does
                delta = (delta or oa.Delta(content="")).model_copy(update={"role": "assistant"})
                role_sent = True
                yield _chunk(answer, delta, routing=record)
            elif delta is not None:
                yield _chunk(answer, delta)
            chunk = await stream.next()
        merged = add_ai_message_chunks(*parts) if len(parts) > 1 else (parts or [None])[0]
        has_calls = merged is not None and bool(merged.tool_call_chunks)
        final_reason = finish or ("tool_calls" if has_calls else "stop")
        yield _chunk(answer, oa.Delta(), finish_reason=final_reason, routing=routing or None)
        if answer.include_usage:
            usage = usage_of(merged.usage_metadata if merged is not None else None)
            chunk = oa.ChatCompletionChunk(
                id=answer.completion_id,
                object="chat.completion.chunk",
                created=answer.created,
                model=answer.model,
                choices=[],
                usage=usage or oa.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            )
            yield _event(chunk.model_dump_json(exclude_unset=True))
        yield DONE
    except Exception as exc:
        _, body = from_exception(exc)
        yield _event(json.dumps(error_payload(body)), "error")
    finally:
        await stream.aclose()  # on a client disconnect: cancels the tier's generation


async def complete_answer(
    model: BaseChatModel,
    messages: list[BaseMessage],
    kwargs: dict[str, Any],
    answer: Answer,
    request: Request,
) -> Response:
    """The whole answer as one chat completion; a client that leaves cancels it."""
    parts: list[AIMessageChunk] = []
    finish: oa.FinishReason | None = None
    stream = ModelStream(model.astream(messages, **kwargs))
    gone = False
    failure: Exception | None = None
    try:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                nonlocal gone
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                gone = True
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                while (chunk := await stream.next()) is not None:
                    parts.append(chunk)
                    finish = finish_reason_of(chunk) or finish
            except Exception as exc:  # raised below, not wrapped in an ExceptionGroup
                failure = exc
            group.cancel_scope.cancel()
    finally:
        await stream.aclose()
    if failure is not None:
        raise failure
    if gone:
        return Response(status_code=499)  # nobody is listening; the status is for the log
    merged = add_ai_message_chunks(*parts) if len(parts) > 1 else (parts or [_EMPTY])[0]
    completion = completion_of(
        merged,
        finish_reason=finish,
        completion_id=answer.completion_id,
        created=answer.created,
        model=answer.model,
    )
    return Response(
        completion.model_dump_json(exclude_none=True),
        media_type="application/json",
        headers=routing_header(completion.routing),
    )
