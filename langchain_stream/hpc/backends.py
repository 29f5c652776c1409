"""The worker's backends: an OpenAI-compatible server on the compute node, or llama.cpp in process.

Each backend turns a :class:`~langchain_stream.hpc.task.TaskRequest` into a stream of
*events*: text (``str``), or a dict with one of ``tool_call_chunks`` (LangChain tool-call
chunk dicts), ``response_metadata`` (``model_name``, ``finish_reason``) or ``usage``
(LangChain ``UsageMetadata`` keys). The worker checks its cancel flag between events and
closes the stream to stop the backend: for the OpenAI-compatible server that closes the HTTP
stream, which vLLM (and ``llama_cpp.server``) take as an abort of the request; for llama.cpp
it stops sampling at the next token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_stream.errors import InvalidRequestError, TierUnavailableError
from langchain_stream.hpc.images import has_images
from langchain_stream.hpc.task import BackendSpec, TaskRequest

Event = str | dict[str, Any]
"""One backend event: text, or a control dict (see the module docstring)."""

DEFAULT_READ_TIMEOUT_S = 300.0
"""Default wait for the next chunk from an OpenAI-compatible server (a cold model loads)."""

# Parameters an OpenAI-compatible server takes under the same names.
_OPENAI_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
)


@dataclass
class LlamaDefaults:
    """How the worker process loads llama.cpp models (one copy per process)."""

    model_path: str | None = None
    """GGUF file used when a request names none; ``None``: the settings' local model."""
    n_ctx: int | None = None
    """Context window; ``None``: the settings' ``local_n_ctx``."""
    n_threads: int | None = None
    """llama.cpp threads; ``None``: the settings' ``local_n_threads``."""
    projector_path: str | None = None
    """The default model's vision projector (mmproj) GGUF; ``None``: it reads text only."""


_llama_defaults = LlamaDefaults()


def configure_llama(
    model_path: str | None = None,
    *,
    n_ctx: int | None = None,
    n_threads: int | None = None,
    projector_path: str | None = None,
) -> None:
    """Set this process's llama.cpp defaults (a pool initializer calls it once per process).

    Every request then shares one loaded model per file, whatever it asks for otherwise.
    """
    global _llama_defaults
    _llama_defaults = LlamaDefaults(
        model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, projector_path=projector_path
    )


def check_images(request: TaskRequest) -> None:
    """Refuse a request with images its backend cannot read, before any image is received.

    An OpenAI-compatible server gets images as ``data:`` URLs and says itself whether its
    model sees; llama.cpp in the worker reads them only through a vision projector.

    Raises:
        InvalidRequestError: Images for a llama.cpp backend without a projector.
    """
    backend = request.get("backend") or {}
    if backend.get("url") or not has_images(request.get("messages") or []):
        return
    if _projector(backend) is None:
        raise InvalidRequestError(
            "the HPC endpoint's llama.cpp model reads text only: this request has images. "
            "Give the endpoint a vision model and its projector (mmproj GGUF), or a vision "
            "model server (backend_url)"
        )


def _projector(backend: BackendSpec) -> str | None:
    if backend.get("model"):  # a model the request names: only its own projector fits it
        return backend.get("projector")
    return backend.get("projector") or _llama_defaults.projector_path


def preload_llama() -> str:
    """Load (once per process) and warm up the default llama.cpp model; return its name."""
    return _local_model(None).load().name


def stream_events(request: TaskRequest, cancel: threading.Event) -> Iterator[Event]:
    """The events of ``request``'s answer from the backend its spec names.

    Raises:
        InvalidRequestError: The request cannot be served (e.g. unsupported content).
        TierUnavailableError: The backend server failed or could not be reached.
    """
    backend = request.get("backend") or {}
    if backend.get("url"):
        return _stream_openai(backend, request, cancel)
    return _stream_llama(backend, request, cancel)


# --------------------------------------------------------------------------- OpenAI-compatible


def _openai_body(backend: BackendSpec, request: TaskRequest) -> dict[str, Any]:
    params = request["params"]
    body: dict[str, Any] = {
        "model": backend.get("model") or "default",
        "messages": request["messages"],
        "stream": True,
        # vLLM then ends the stream with a usage chunk [OpenAI streaming usage].
        "stream_options": {"include_usage": True},
    }
    body.update({k: params[k] for k in _OPENAI_PARAMS if params.get(k) is not None})
    response_format = body.get("response_format")
    schema = response_format.get("schema") if isinstance(response_format, dict) else None
    if schema and response_format.get("type") == "json_object":
        # Our json_mode carries a schema; servers take that as a JSON-schema format.
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema.get("title", "output"), "schema": schema},
        }
    return body


def _stream_openai(
    backend: BackendSpec, request: TaskRequest, cancel: threading.Event
) -> Iterator[Event]:
    import httpx

    url = backend["url"].rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {backend['api_key']}"} if backend.get("api_key") else {}
    timeout = httpx.Timeout(10.0, read=backend.get("read_timeout_s", DEFAULT_READ_TIMEOUT_S))
    body = _openai_body(backend, request)
    model_name = body["model"]
    finish_reason: str | None = None
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", url, json=body, headers=headers) as response,
        ):
            if response.status_code >= 400:
                detail = response.read().decode("utf-8", "replace")[:500]
                raise TierUnavailableError(
                    f"backend {url} answered HTTP {response.status_code}: {detail}", tier="hpc"
                )
            for line in response.iter_lines():
                if cancel.is_set():
                    return  # leaving the block closes the stream: the server aborts
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise TierUnavailableError(f"backend error: {chunk['error']}", tier="hpc")
                model_name = chunk.get("model") or model_name
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield delta["content"]
                    if calls := delta.get("tool_calls"):
                        yield {"tool_call_chunks": [_tool_call_chunk(c) for c in calls]}
                    finish_reason = choice.get("finish_reason") or finish_reason
                if usage := chunk.get("usage"):
                    yield {"usage": _usage(usage)}
    except httpx.HTTPError as exc:
        raise TierUnavailableError(
            f"backend {url} failed: {type(exc).__name__}: {exc}", tier="hpc"
        ) from exc
    yield {"response_metadata": {"model_name": model_name, "finish_reason": finish_reason}}


def _tool_call_chunk(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "name": function.get("name"),
        "args": function.get("arguments"),
        "id": call.get("id"),
        "index": call.get("index"),
    }


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


# --------------------------------------------------------------------------- llama.cpp


def _local_model(model_path: str | None, projector: str | None = None, **params: Any) -> Any:
    from langchain_stream.tiers.local import ChatLocal

    defaults = _llama_defaults
    settings: dict[str, Any] = {"model_path": model_path or defaults.model_path}
    # One copy per file: the endpoint's model loads with its projector for text requests too.
    projector = projector if model_path else projector or defaults.projector_path
    if projector is not None:
        settings["projector_path"] = projector
    if defaults.n_ctx is not None:
        settings["n_ctx"] = defaults.n_ctx
    if defaults.n_threads is not None:
        settings["n_threads"] = defaults.n_threads
    if settings["model_path"] is None:
        del settings["model_path"]  # the settings' local model, else the embedded one
    return ChatLocal(**settings, **params)


def _stream_llama(
    backend: BackendSpec, request: TaskRequest, cancel: threading.Event
) -> Iterator[Event]:
    from langchain_core.messages import convert_to_messages

    params = request["params"]
    sampling = {
        k: params[k]
        for k in ("temperature", "max_tokens", "top_p", "seed", "stop")
        if params.get(k) is not None
    }
    calls = {k: params[k] for k in ("tools", "tool_choice", "response_format") if k in params}
    check_images(request)
    try:
        messages = convert_to_messages(request["messages"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequestError(f"unreadable messages: {exc}") from exc
    model = _local_model(backend.get("model"), backend.get("projector"), **sampling)
    chunks = model.stream(messages, **calls)
    try:
        for chunk in chunks:
            if cancel.is_set():
                return  # closing the stream stops sampling at the next token
            if chunk.content:
                yield chunk.text
            if chunk.tool_call_chunks:
                yield {
                    "tool_call_chunks": [
                        {k: c.get(k) for k in ("name", "args", "id", "index")}
                        for c in chunk.tool_call_chunks
                    ]
                }
            if usage := chunk.usage_metadata:
                yield {"usage": {k: int(v) for k, v in usage.items() if isinstance(v, int)}}
            metadata = chunk.response_metadata
            if metadata.get("finish_reason") or metadata.get("model_name"):
                yield {
                    "response_metadata": {
                        "model_name": metadata.get("model_name"),
                        "finish_reason": metadata.get("finish_reason"),
                    }
                }
    finally:
        chunks.close()


__all__ = [
    "DEFAULT_READ_TIMEOUT_S",
    "Event",
    "LlamaDefaults",
    "check_images",
    "configure_llama",
    "preload_llama",
    "stream_events",
]
