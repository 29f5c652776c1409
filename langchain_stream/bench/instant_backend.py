"""An OpenAI-compatible backend that answers at once: ``stream bench serve --backend instant``.

A model server's own time to first token varies by milliseconds from one request to the next,
which hides differences of tenths of a millisecond between the gateways in front of it. This
backend sends the first token as soon as a request arrives and the others at a fixed interval,
so what the gateways add stands out. It stands in for a model only in that benchmark.

Run: ``python -m langchain_stream.bench.instant_backend --port 8000 [--interval-ms 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "bench-model"
WORDS = ("Once", " upon", " a", " time", ",", " a", " keeper", " kept", " a", " light", ".")


def _event(completion: str, choices: list[dict[str, Any]], **extra: Any) -> str:
    body = {
        "id": completion,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(body)}\n\n"


def _chunk(completion: str, delta: dict[str, Any], finish: str | None = None) -> str:
    return _event(completion, [{"index": 0, "delta": delta, "finish_reason": finish}])


def _usage(tokens: list[str]) -> dict[str, int]:
    return {"prompt_tokens": 16, "completion_tokens": len(tokens), "total_tokens": 16 + len(tokens)}


def _answer(max_tokens: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(max(1, max_tokens))]


async def _events(request: dict[str, Any], interval_s: float) -> AsyncIterator[str]:
    completion = f"chatcmpl-{uuid.uuid4().hex}"
    tokens = _answer(int(request.get("max_tokens") or 16))
    yield _chunk(completion, {"role": "assistant", "content": ""})
    for i, token in enumerate(tokens):
        if i:
            await asyncio.sleep(interval_s)
        yield _chunk(completion, {"content": token})
    yield _chunk(completion, {}, "length")
    if (request.get("stream_options") or {}).get("include_usage"):
        yield _event(completion, [], usage=_usage(tokens))
    yield "data: [DONE]\n\n"


def create_app(interval_s: float) -> Starlette:
    """The backend: ``GET /v1/models``, ``POST /v1/chat/completions`` (whole or streamed)."""

    async def models(_: Request) -> Response:
        card = {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}
        return JSONResponse({"object": "list", "data": [card]})

    async def completions(request: Request) -> Response:
        body = await request.json()
        if body.get("stream"):
            return StreamingResponse(_events(body, interval_s), media_type="text/event-stream")
        tokens = _answer(int(body.get("max_tokens") or 16))
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(tokens)},
                        "finish_reason": "length",
                    }
                ],
                "usage": _usage(tokens),
            }
        )

    return Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/chat/completions", completions, methods=["POST"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval-ms", type=float, default=10.0, help="between tokens")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.interval_ms / 1000.0),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
