"""What ChatHPC yields from the worker's pieces and task summaries, and the task-result checks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_stream.errors import TierUnavailableError
from langchain_stream.hpc.chunks import last_chunk, piece_chunk, summary_chunks, task_summary


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _done(
    loop: asyncio.AbstractEventLoop, result: Any = None, error: BaseException | None = None
) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = loop.create_future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
    return future


def test_a_good_summary_is_returned(loop: asyncio.AbstractEventLoop) -> None:
    summary = {"ok": True, "text": "hi"}
    assert task_summary(_done(loop, summary)) is summary


@pytest.mark.parametrize(
    ("result", "error", "message"),
    [
        (None, OSError("endpoint gone"), "OSError: endpoint gone"),
        ("not a dict", None, "returned str, not a summary"),
        ({"ok": False, "error": "backend 500"}, None, "worker failed: backend 500"),
    ],
)
def test_a_failed_task_is_a_tier_unavailable_error(
    loop: asyncio.AbstractEventLoop, result: Any, error: BaseException | None, message: str
) -> None:
    with pytest.raises(TierUnavailableError, match=message) as info:
        task_summary(_done(loop, result, error))
    assert info.value.tier == "hpc" and info.value.is_retryable


def test_pieces_become_text_or_tool_call_chunks_and_metadata_is_gathered() -> None:
    metadata: dict[str, Any] = {}
    text = piece_chunk("Hel", metadata)
    assert text is not None and text.content == "Hel"
    call = [{"name": "add", "args": '{"a"', "id": "c1", "index": 0}]
    tool = piece_chunk({"tool_call_chunks": call}, metadata)
    assert tool is not None and tool.tool_call_chunks[0]["name"] == "add"
    assert piece_chunk({"response_metadata": {"finish_reason": "stop"}}, metadata) is None
    assert metadata == {"finish_reason": "stop"}


def test_a_batch_summary_is_the_whole_answer_then_a_last_chunk_saying_batch() -> None:
    summary = {
        "ok": True,
        "text": "Paris.",
        "usage": {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9},
        "response_metadata": {"finish_reason": "stop"},
        "relay_error": "no relay reachable",
    }
    answer, last = summary_chunks(summary, "served")
    assert answer.content == "Paris."
    assert last.usage_metadata == {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}
    assert last.response_metadata["hpc"] == {"mode": "batch", "relay_error": "no relay reachable"}
    assert last.response_metadata["model_name"] == "served"
    assert last.response_metadata["finish_reason"] == "stop"


def test_the_last_chunk_names_the_backend_model_when_it_says_one() -> None:
    chunk = last_chunk(None, {"model_name": "llama-8b"}, "default", {"mode": "relay"})
    assert chunk.usage_metadata is None
    assert chunk.response_metadata["model_name"] == "llama-8b"
    assert chunk.chunk_position == "last"
