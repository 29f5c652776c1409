"""The contract between :class:`~langchain_stream.hpc.ChatHPC` and the remote worker.

A task is one call ``hpc_worker(request, channel)`` on the endpoint. Both arguments and the
result are plain JSON-compatible dicts (the key travels as hex), so they survive any
``ComputeSerializer`` data strategy, including endpoints that allow only JSON.

On the relay the worker sends the answer as a stream of *pieces*, each one relay token:

- text, sent as the text itself (so the common case costs nothing extra);
- a control piece — tool-call chunks, or the answer's response metadata — sent as ``"\\x00"``
  followed by a JSON object. A text piece that happens to start with ``"\\x00"`` is sent as a
  control piece ``{"text": ...}``, so the two never collide.

Usage travels in the relay's FINAL frame, which the consumer checks against the frames it
opened (docs/relay-protocol.md §4.2).

A request with large images (:mod:`~langchain_stream.hpc.images`) also names an *upload
channel*: the worker joins it as consumer, sends :data:`UPLOAD_READY` as its first piece, and the
client then sends the images' bytes (docs/design.md#images-on-the-hpc-tier).
"""

from __future__ import annotations

import json
from typing import Any, NotRequired, TypedDict

from langchain_stream.errors import RelayProtocolError
from langchain_stream.hpc.images import ImageRef

TASK_VERSION = 2
"""Version of the request and summary layout; a worker refuses requests of another version.
Version 2 added image uploads (``ChannelSpec.upload``, ``stream-upload:`` references)."""

CONTROL_PREFIX = "\x00"
"""First character of a control piece on the relay."""

UPLOAD_READY: dict[str, str] = {"upload": "ready"}
"""The worker's first piece when the task has an upload: it is on the upload channel, send."""


class BackendSpec(TypedDict, total=False):
    """Which backend the worker calls on the compute node.

    With ``url`` set: an OpenAI-compatible server (e.g. vLLM) at that base URL, as the compute
    node sees it; ``model`` is the served model name. Without ``url``: llama.cpp in the worker
    process, on the GGUF file ``model`` (the endpoint's default model when unset).
    """

    url: str
    model: str
    api_key: str
    read_timeout_s: float
    projector: str
    """For llama.cpp: the model's vision projector (mmproj) GGUF on the node."""


class TaskRequest(TypedDict):
    """One chat request, as the worker receives it."""

    version: int
    messages: list[dict[str, Any]]
    """OpenAI-style chat messages."""
    params: dict[str, Any]
    """Generation parameters in OpenAI names: ``max_tokens``, ``temperature``, ``top_p``,
    ``seed``, ``stop``, ``tools``, ``tool_choice``, ``response_format``."""
    backend: BackendSpec


class UploadSpec(TypedDict):
    """The channel the client sends the task's large images on; the worker consumes it."""

    channel_id: str
    token: str
    """The upload channel's consumer token."""
    key: str
    """The upload channel's own AES-256 key, hex-encoded (never the answer channel's: the
    two channels' sealers would otherwise reuse nonces under one key)."""
    images: list[ImageRef]
    """Size, media type and SHA-256 digest of each image, in ``stream-upload:<n>`` order."""


class ChannelSpec(TypedDict):
    """Where and how the worker streams: absent for batch mode."""

    relay_urls: list[str]
    channel_id: str
    token: str
    """The channel's producer token."""
    key: str
    """The request's AES-256 key, hex-encoded; fresh for every request."""
    coalesce_s: NotRequired[float]
    upload: NotRequired[UploadSpec]
    """Present when images go up the relay instead of inside the task."""


class TaskSummary(TypedDict, total=False):
    """What the worker returns as the task result.

    In batch mode (and when the worker fell back to it) ``text``, ``tool_call_chunks`` and
    ``response_metadata`` hold the whole answer; in relay mode they are left out.
    """

    version: int
    mode: str
    """``"relay"`` or ``"batch"``."""
    ok: bool
    error: str | None
    """Why the task failed (backend error, lost relay, bad request)."""
    relay_error: str | None
    """Why the worker could not stream and answered in batch mode instead."""
    cancelled: bool
    cancel_reason: str | None
    pieces: int
    """Pieces produced by the backend (text and tool-call chunks)."""
    frames: int
    """DATA frames sent on the relay (fewer than pieces when coalescing)."""
    usage: dict[str, int]
    text: str
    tool_call_chunks: list[dict[str, Any]]
    response_metadata: dict[str, Any]
    relay_url: str | None
    timing: dict[str, float]
    """``time.monotonic()`` stamps on the worker's host (``started``, ``first_piece``,
    ``finished``) and the derived ``backend_ttft_ms`` and ``duration_ms``."""
    worker: dict[str, Any]
    """``host``, ``pid`` and the package ``version`` that ran the task."""
    images: dict[str, Any]
    """When the task had images: ``inline`` and ``uploaded`` counts, ``upload_bytes``
    received and checked, and ``upload_ms`` from joining the upload channel to the last byte."""


def encode_piece(piece: str | dict[str, Any]) -> str:
    """Encode one piece (text, or a control dict) as a relay token."""
    if isinstance(piece, str):
        if not piece.startswith(CONTROL_PREFIX):
            return piece
        piece = {"text": piece}
    return CONTROL_PREFIX + json.dumps(piece, separators=(",", ":"), ensure_ascii=False)


def decode_piece(token: str) -> str | dict[str, Any]:
    """Decode a relay token into text or a control dict.

    Raises:
        RelayProtocolError: A control piece that is not a JSON object.
    """
    if not token.startswith(CONTROL_PREFIX):
        return token
    try:
        piece = json.loads(token[1:])
    except ValueError as exc:
        raise RelayProtocolError("malformed control piece from the HPC worker") from exc
    if not isinstance(piece, dict):
        raise RelayProtocolError("control piece from the HPC worker is not a JSON object")
    if set(piece) == {"text"} and isinstance(piece["text"], str):
        return piece["text"]
    return piece


__all__ = [
    "CONTROL_PREFIX",
    "TASK_VERSION",
    "UPLOAD_READY",
    "BackendSpec",
    "ChannelSpec",
    "TaskRequest",
    "TaskSummary",
    "UploadSpec",
    "decode_piece",
    "encode_piece",
]
