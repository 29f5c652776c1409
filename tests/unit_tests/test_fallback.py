"""The error contract: a tier's failure is translated at its boundary, and the router falls back
on ``is_retryable`` only — before the first token. Fake tiers fail in each defined way, before
and after their first token, through every entry point."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk

from langchain_stream import StreamChatModel
from langchain_stream.errors import (
    ContentRefusedError,
    ContextOverflowError,
    MidStreamError,
    ModelLoadError,
    StreamError,
    TierCancelledError,
    TierError,
    TierNotConfiguredError,
    TierRateLimitError,
    TierServerError,
    TierTimeoutError,
    TierUnavailableError,
    tier_error,
)
from tests.unit_tests.fakes import FixedJudge, ScriptedTier

QUESTION = "Compare the proofs of the prime number theorem."
FALLBACK_ANSWER = ["Paris", " is", " the", " answer."]


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat"))


def _openai(cls: type[openai.APIStatusError], status: int, code: str | None = None) -> Any:
    body = {"message": f"refused ({code or status})", "code": code}
    return lambda: cls(f"Error code: {status}", response=_response(status), body=body)


# Each failure a tier may meet, and what the router makes of it.
RETRYABLE: dict[str, tuple[Callable[[], BaseException], type[TierError]]] = {
    "connection refused": (lambda: ConnectionRefusedError(111, "refused"), TierUnavailableError),
    "timeout": (lambda: TimeoutError("no answer"), TierTimeoutError),
    "sdk connection": (
        lambda: openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9")),
        TierUnavailableError,
    ),
    "sdk timeout": (
        lambda: openai.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1:9")),
        TierTimeoutError,
    ),
    "429": (_openai(openai.RateLimitError, 429), TierRateLimitError),
    "5xx": (_openai(openai.InternalServerError, 503), TierServerError),
    "context overflow": (
        _openai(openai.BadRequestError, 400, "context_length_exceeded"),
        ContextOverflowError,
    ),
    "key rejected": (_openai(openai.AuthenticationError, 401), TierNotConfiguredError),
    "not configured": (
        lambda: TierNotConfiguredError("no model", tier="cloud"),
        TierNotConfiguredError,
    ),
    "model file unusable": (lambda: ModelLoadError("not a GGUF file"), TierNotConfiguredError),
}
NOT_RETRYABLE: dict[str, tuple[Callable[[], BaseException], type[BaseException]]] = {
    "content refused": (
        _openai(openai.BadRequestError, 400, "content_filter"),
        ContentRefusedError,
    ),
    "cancelled": (concurrent.futures.CancelledError, TierCancelledError),
    "programming error": (lambda: TypeError("unsupported operand"), TypeError),
    "bad request": (_openai(openai.BadRequestError, 400, "invalid_value"), ValueError),
}
ENTRY_POINTS = ["invoke", "stream", "ainvoke", "astream", "batch"]


def _router(fail: Callable[[], BaseException], *, after_first_token: bool) -> StreamChatModel:
    failing = ScriptedTier(tokens=["Lima", " is"] if after_first_token else [], fail=fail)
    answering = ScriptedTier(tokens=FALLBACK_ANSWER)
    # The judge says HIGH: the cloud is tried first, then the local tier.
    return StreamChatModel(cloud=failing, local=answering, judge=FixedJudge())


def _ask(router: StreamChatModel, entry: str) -> tuple[str, dict[str, Any]]:
    """The answer's text and its routing record, through one entry point."""
    if entry == "invoke":
        message = router.invoke(QUESTION)
    elif entry == "ainvoke":
        message = asyncio.run(router.ainvoke(QUESTION))
    elif entry == "batch":
        (message,) = router.batch([QUESTION])
    elif entry == "stream":
        message = _merge(list(router.stream(QUESTION)))
    else:

        async def collect() -> list[AIMessageChunk]:
            return [chunk async for chunk in router.astream(QUESTION)]

        message = _merge(asyncio.run(collect()))
    assert isinstance(message, AIMessage | AIMessageChunk)
    return message.text, message.response_metadata["routing"]


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    return merged


def _tiers(router: StreamChatModel) -> tuple[ScriptedTier, ScriptedTier]:
    models = router.tier_models()
    return models["cloud"], models["local"]  # type: ignore[return-value]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("failure", list(RETRYABLE))
def test_a_retryable_failure_before_the_first_token_falls_back(entry: str, failure: str) -> None:
    fail, translated = RETRYABLE[failure]
    router = _router(fail, after_first_token=False)
    text, record = _ask(router, entry)
    assert text == "".join(FALLBACK_ANSWER)
    assert record["tier"] == "local"
    tried = record["tiers_tried"]
    assert [t["tier"] for t in tried] == ["cloud", "local"]
    assert tried[0]["error"].startswith(f"{translated.__name__}:")
    assert tried[1].get("error") is None


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("failure", list(RETRYABLE))
def test_a_retryable_failure_after_the_first_token_is_a_mid_stream_error(
    entry: str, failure: str
) -> None:
    fail, translated = RETRYABLE[failure]
    router = _router(fail, after_first_token=True)
    with pytest.raises(MidStreamError) as raised:
        _ask(router, entry)
    assert raised.value.tier == "cloud"
    assert raised.value.partial_text == "Lima is"
    assert f"{translated.__name__}:" in str(raised.value)
    assert raised.value.__cause__ is not None  # the tier's own error, kept for the caller
    assert _tiers(router)[1].calls == 0  # no answer glued onto another tier's half


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("after_first_token", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("failure", list(NOT_RETRYABLE))
def test_an_error_that_is_not_retryable_reaches_the_caller(
    entry: str, failure: str, after_first_token: bool
) -> None:
    fail, expected = NOT_RETRYABLE[failure]
    router = _router(fail, after_first_token=after_first_token)
    with pytest.raises(expected) as raised:
        _ask(router, entry)
    assert not isinstance(raised.value, MidStreamError)
    assert _tiers(router)[1].calls == 0  # the router did not fall back


@pytest.mark.parametrize("failure", list(RETRYABLE))
def test_every_retryable_failure_is_a_tier_error_a_caller_can_catch(failure: str) -> None:
    fail, translated = RETRYABLE[failure]
    error = tier_error(fail(), "cloud")
    assert isinstance(error, translated) and isinstance(error, StreamError)
    assert error.is_retryable and error.tier == "cloud"  # type: ignore[attr-defined]


def test_the_built_in_a_caller_catches_still_catches_it() -> None:
    assert isinstance(tier_error(TimeoutError("slow"), "hpc"), TimeoutError)
    assert isinstance(tier_error(ConnectionRefusedError(), "hpc"), ConnectionError)
    unchanged = KeyError("a bug")
    assert tier_error(unchanged, "hpc") is unchanged
