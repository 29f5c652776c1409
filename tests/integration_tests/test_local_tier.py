"""The local tier on the real embedded model: streaming, concurrency, tools, bad input."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_stream import ChatLocal
from langchain_stream.errors import InvalidRequestError, ModelLoadError, TierUnavailableError
from langchain_stream.tiers.embedded import embedded_model_path
from tests.conftest import TIME_UNIT_S


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny in {city}."


@tool
def get_time(timezone: str) -> str:
    """Get the current time in a timezone."""
    return "12:00"


class Capital(BaseModel):
    """A country and its capital city."""

    country: str
    capital: str


def test_tokens_arrive_while_the_model_generates(local_model: ChatLocal) -> None:
    arrivals = []
    for chunk in local_model.stream("Count from one to twenty in words.", max_tokens=40):
        if chunk.content:
            arrivals.append(time.perf_counter())
    assert len(arrivals) > 10
    # Streamed, not buffered: the first token comes well before the last.
    assert arrivals[-1] - arrivals[0] > 0.05


async def test_async_stream_does_not_block_the_event_loop(local_model: ChatLocal) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    chunks = [c async for c in local_model.astream("Tell me about the sea.", max_tokens=40)]
    done.set()
    await task
    assert sum(1 for c in chunks if c.content) > 5
    assert ticks > 10  # the loop kept running during generation


def test_usage_metadata_on_invoke_and_stream(local_model: ChatLocal) -> None:
    result = local_model.invoke("Say hello.", max_tokens=8)
    usage = result.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 5
    assert 0 < usage["output_tokens"] <= 9  # at most max_tokens, plus the end-of-turn token
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    merged = None
    for chunk in local_model.stream("Say hello.", max_tokens=8):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None and merged.usage_metadata == usage


def test_max_tokens_and_stop_sequences(local_model: ChatLocal) -> None:
    capped = local_model.invoke("Write a long poem about rain.", max_tokens=5)
    assert capped.response_metadata["finish_reason"] == "length"
    assert capped.usage_metadata["output_tokens"] == 5
    text = local_model.invoke("List the numbers 1, 2, 3, 4, 5, 6.", max_tokens=40).content
    cut = text[len(text) // 2 : len(text) // 2 + 3]
    stopped = local_model.invoke("List the numbers 1, 2, 3, 4, 5, 6.", max_tokens=40, stop=[cut])
    assert cut not in stopped.content
    assert text.startswith(stopped.content)


def test_one_model_serves_concurrent_threads_correctly(local_model: ChatLocal) -> None:
    # The first call evaluates the prompt cold; later ones reuse its cached prefix, which can
    # shift a tiny model's greedy choice. Compare cached runs with a cached run.
    local_model.invoke("Name a colour.", max_tokens=12)
    expected = local_model.invoke("Name a colour.", max_tokens=12).content
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(str(local_model.invoke("Name a colour.", max_tokens=12).content))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60 * TIME_UNIT_S)
    assert not errors
    assert results == [expected] * 4  # greedy: the lock keeps every answer intact


def test_forced_tool_call_streams_its_arguments(local_model: ChatLocal) -> None:
    bound = local_model.bind_tools([get_weather, get_time], tool_choice="get_weather")
    chunks = [c for c in bound.stream("What's the weather in Paris?", max_tokens=40)]
    tool_chunks = [c for c in chunks if c.tool_call_chunks]
    assert len(tool_chunks) >= 3  # arguments arrive piece by piece, not in one final chunk
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk)
    assert [c["name"] for c in merged.tool_calls] == ["get_weather"]
    assert isinstance(merged.tool_calls[0]["args"]["city"], str)
    assert merged.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("choice", ["any", "required"])
def test_any_tool_choice_calls_one_of_the_tools(local_model: ChatLocal, choice: str) -> None:
    result = local_model.bind_tools([get_weather, get_time], tool_choice=choice).invoke(
        "What time is it in Tokyo?"
    )
    assert len(result.tool_calls) == 1
    assert result.tool_calls[0]["name"] in {"get_weather", "get_time"}


def test_auto_tool_choice_completes_a_call_the_model_opens(local_model: ChatLocal) -> None:
    # The embedded model seldom decides to call a tool unprompted; a history of earlier calls
    # leads it to open one, and the rest of the call is generated under the grammar.
    history: list = []
    for index, city in enumerate(["Rome", "Madrid", "Berlin"]):
        call = {"name": "get_weather", "args": {"city": city}, "id": f"call_{index}"}
        history += [
            HumanMessage(f"Weather in {city}?"),
            AIMessage("", tool_calls=[call]),
            ToolMessage("sunny", tool_call_id=f"call_{index}"),
        ]
    history.append(HumanMessage("Weather in Paris?"))
    bound = local_model.bind_tools([get_weather], tool_choice="auto")
    chunks = list(bound.stream(history, max_tokens=60))
    assert not any(c.content for c in chunks)  # the marker never leaks into the text
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert merged.response_metadata["finish_reason"] == "tool_calls"


def test_auto_tool_choice_answers_in_text_when_no_tool_is_opened(local_model: ChatLocal) -> None:
    result = local_model.bind_tools([get_weather], tool_choice="auto").invoke("Say hello.")
    assert result.tool_calls == []
    assert isinstance(result.content, str) and result.content.strip()


def test_tool_results_in_history_are_accepted(local_model: ChatLocal) -> None:
    call = local_model.bind_tools([get_weather], tool_choice="any").invoke("Weather in Oslo?")
    history = [
        HumanMessage("Weather in Oslo?"),
        call,
        ToolMessage("It is snowing in Oslo.", tool_call_id=call.tool_calls[0]["id"]),
    ]
    answer = local_model.invoke(history, max_tokens=30)
    assert isinstance(answer.content, str) and answer.content


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output_is_always_valid(local_model: ChatLocal, method: str) -> None:
    structured = local_model.with_structured_output(Capital, method=method)
    result = structured.invoke("What is the capital of France? Answer as JSON.", max_tokens=60)
    assert isinstance(result, Capital)


def test_json_schema_dict_output(local_model: ChatLocal) -> None:
    schema = {
        "title": "colour",
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    }
    result = local_model.with_structured_output(schema, method="json_schema").invoke(
        "Name a colour.", max_tokens=30
    )
    assert isinstance(result, dict) and isinstance(result["name"], str)


# --- bad input -----------------------------------------------------------------------------


def test_empty_message_list_is_rejected(local_model: ChatLocal) -> None:
    with pytest.raises(InvalidRequestError, match="empty"):
        local_model.invoke([])


def test_unsupported_content_block_is_named(local_model: ChatLocal) -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]
    )
    with pytest.raises(InvalidRequestError, match="image_url"):
        local_model.invoke([message])


def test_unknown_tool_choice_is_rejected(local_model: ChatLocal) -> None:
    with pytest.raises(InvalidRequestError, match="launch"):
        local_model.bind_tools([get_weather], tool_choice="launch")


def test_prompt_over_the_window_is_a_tier_error() -> None:
    small = ChatLocal(n_ctx=256, max_tokens=8)
    with pytest.raises(TierUnavailableError, match=r"context window is 256"):
        small.invoke("word " * 400)


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    with pytest.raises(ModelLoadError, match="not found") as info:
        ChatLocal(model_path=str(missing)).invoke("hi")
    assert info.value.path == str(missing)


def test_directory_as_model_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is a directory"):
        ChatLocal(model_path=str(tmp_path)).invoke("hi")


def test_corrupt_model_file_is_named(tmp_path: Path) -> None:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("these are not weights")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        ChatLocal(model_path=str(not_gguf)).invoke("hi")
    # A real GGUF header cut short, then a file cut inside its weights: caught before
    # llama.cpp reads past the end of its memory map.
    data = embedded_model_path().read_bytes()
    for size, where in ((4096, "header"), (len(data) // 2, "tensor data")):
        truncated = tmp_path / f"truncated-{size}.gguf"
        truncated.write_bytes(data[:size])
        with pytest.raises(ModelLoadError, match=f"truncated.*inside its {where}") as info:
            ChatLocal(model_path=str(truncated)).invoke("hi")
        assert str(truncated) in str(info.value)


def test_model_path_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STREAM_LOCAL_MODEL", str(tmp_path / "from-env.gguf"))
    from langchain_stream.config import get_settings

    get_settings.cache_clear()
    with pytest.raises(ModelLoadError, match=r"from-env\.gguf"):
        ChatLocal().invoke("hi")


def test_tool_call_json_is_valid_for_the_schema(local_model: ChatLocal) -> None:
    result = local_model.bind_tools([get_time], tool_choice="any").invoke("Time in Lima?")
    json.dumps(result.tool_calls[0]["args"])
    assert set(result.tool_calls[0]["args"]) == {"timezone"}


SEGFAULT = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]


def test_a_probe_that_crashes_loads_without_extra_buffers_and_remembers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The AMX fault, simulated: the probe child dies by SIGSEGV with extra buffers on."""
    import langchain_stream.llama.extra_buffers as extra_buffers
    from langchain_stream.chat_model import StreamChatModel
    from langchain_stream.config import get_settings
    from langchain_stream.doctor import check_local

    real_probe = extra_buffers.run_probe
    calls: list[bool] = []

    def crashing_probe(path: Path, on: bool, **kwargs: object) -> extra_buffers.ProbeResult:
        calls.append(on)
        return real_probe(path, on, command=SEGFAULT) if on else real_probe(path, on)

    monkeypatch.setattr(extra_buffers, "run_probe", crashing_probe)
    monkeypatch.setenv("STREAM_CACHE_DIR", str(tmp_path))
    get_settings.cache_clear()
    model = ChatLocal(n_ctx=320, max_tokens=4)  # a load of its own: n_ctx is in the registry key
    answer = model.invoke("Hi")
    assert calls == [True, False]
    assert answer.response_metadata["extra_buffers"]["enabled"] is False
    assert "SIGSEGV" in answer.response_metadata["extra_buffers"]["reason"]
    assert model.load().llama.model_params.use_extra_bufts is False

    def no_probe(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached answer must be reused")

    monkeypatch.setattr(extra_buffers, "run_probe", no_probe)
    monkeypatch.setenv("STREAM_LOCAL_N_CTX", "384")
    get_settings.cache_clear()
    routed = StreamChatModel(tier="local", max_tokens=4).invoke("Hi")
    assert routed.response_metadata["routing"]["tier"] == "local"
    assert routed.response_metadata["extra_buffers"]["source"] == "cache"
    assert routed.response_metadata["extra_buffers"]["enabled"] is False
    row = check_local(get_settings())
    assert row.healthy and "extra buffer types off" in row.detail and "SIGSEGV" in row.detail


def test_the_setting_forces_extra_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_stream.config import get_settings

    monkeypatch.setenv("STREAM_LOCAL_EXTRA_BUFFERS", "off")
    get_settings.cache_clear()
    loaded = ChatLocal(n_ctx=352).load()
    assert loaded.extra_buffers.source == "setting"
    assert loaded.llama.model_params.use_extra_bufts is False
