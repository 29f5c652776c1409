"""The remote worker: the function Globus Compute runs on the compute node for each request.

``hpc_worker(request, channel)`` calls the backend (an OpenAI-compatible server on the node,
such as vLLM, or llama.cpp in process; see :mod:`~langchain_stream.hpc.backends`), seals every
piece of the answer and streams it to the consumer through the relay (docs/design.md#hpc-tier),
and returns a :class:`~langchain_stream.hpc.task.TaskSummary` as the task result. With
``channel=None`` it runs in *batch mode*: the same backend call, the whole answer returned in
the summary.

Deployment: the worker is **not** self-contained. It is a module-level function of this
package, so ``ComputeSerializer`` (dill) ships it *by reference* — the payload names
``langchain_stream.hpc.worker.hpc_worker`` and the endpoint imports it — and the package must
be installed in the endpoint's Python environment, at the same version as the client (for
example ``pip install "langchain-stream[hpc]"`` in the endpoint's ``worker_init``, plus
``[local]`` for the llama.cpp backend). The reasons: the worker reuses the relay's sealing,
framing and producer (a self-contained copy would fork the wire protocol), the payload stays a
few hundred bytes, and an endpoint that allows only registered functions can allow exactly
this one. A request carries :data:`~langchain_stream.hpc.task.TASK_VERSION`; a worker of
another version refuses it with a clear error instead of misreading it.

Liveness (docs/design.md#hpc-tier): the producer connects while the backend computes its first
token; a CANCEL from the consumer (or losing it) stops the backend at its next token; a backend
failure is sent to the consumer as an ERROR frame. If no relay can be reached from the node, the
worker answers in batch mode instead, so the client still gets the answer through the task
result.

Images (docs/design.md#images-on-the-hpc-tier): small ones arrive inline in the task; for
larger ones the task names an upload channel, which the worker joins before calling the
backend. It reads the images' bytes, checks each against the size and SHA-256 digest the task
declares, and hands them to the backend as ``data:`` URLs. A worker never fetches an image URL.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from langchain_stream.errors import RelayError, StreamError
from langchain_stream.hpc.backends import Event, check_images, stream_events
from langchain_stream.hpc.images import has_images, image_count, resolve_images
from langchain_stream.hpc.task import (
    TASK_VERSION,
    UPLOAD_READY,
    ChannelSpec,
    TaskRequest,
    TaskSummary,
    encode_piece,
)
from langchain_stream.hpc.uploads import receive_images
from langchain_stream.relay.producer import DEFAULT_COALESCE_S, ProducerClient


def hpc_worker(request: TaskRequest, channel: ChannelSpec | None = None) -> TaskSummary:
    """Answer one chat request on the compute node; stream it through the relay when asked.

    Args:
        request: The messages, generation parameters and backend (see
            :class:`~langchain_stream.hpc.task.TaskRequest`).
        channel: The relay URLs, channel id, producer token and per-request key; ``None``
            for batch mode.

    Returns:
        The task summary. Failures are reported in it (``ok=False``, ``error``) and, when
        streaming, to the consumer as an ERROR frame; the function itself does not raise for
        them, so the endpoint's result is always a plain dict.
    """
    summary = _new_summary()
    if request.get("version") != TASK_VERSION:
        return _finish(
            summary,
            error=f"this worker speaks task version {TASK_VERSION}, the request version "
            f"{request.get('version')!r}: install the client's langchain-stream version on "
            "the endpoint",
        )
    cancel = threading.Event()
    if channel is None:
        try:
            request = _with_images(request, [], summary)
        except Exception as exc:  # the task boundary
            return _finish(summary, error=_describe(exc))
        return _collect(request, cancel, summary)
    return _stream(request, channel, cancel, summary)


def _with_images(request: TaskRequest, uploaded: list[str], summary: TaskSummary) -> TaskRequest:
    """The request with its uploaded images put back; every image checked to be inline data."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not has_images(messages):
        return request
    resolved = resolve_images(messages, uploaded)
    summary["images"] = {
        **summary.get("images", {}),
        "inline": image_count(messages) - len(uploaded),
        "uploaded": len(uploaded),
    }
    return TaskRequest(
        version=request["version"],
        messages=resolved,
        params=request["params"],
        backend=request["backend"],
    )


def _receive_uploads(
    request: TaskRequest,
    channel: ChannelSpec,
    producer: ProducerClient,
    connector: _Connector,
    summary: TaskSummary,
) -> TaskRequest:
    """Join the upload channel, tell the client (the first piece), take and check the images."""
    upload = channel.get("upload")
    if upload is None:
        return _with_images(request, [], summary)
    check_images(request)  # before any byte is received
    started = time.monotonic()

    def ready() -> None:
        if not connector.wait():
            raise RelayError(f"cannot tell the client to upload: {connector.error}")
        producer.send(encode_piece(UPLOAD_READY))

    uploaded = receive_images(channel["relay_urls"], upload, ready)
    resolved = _with_images(request, uploaded, summary)
    images = summary.setdefault("images", {})
    images["upload_bytes"] = sum(image["bytes"] for image in upload["images"])
    images["upload_ms"] = round((time.monotonic() - started) * 1e3, 3)
    return resolved


# --------------------------------------------------------------------------- batch


def _collect(
    request: TaskRequest,
    cancel: threading.Event,
    summary: TaskSummary,
    events: Iterator[Event] | None = None,
) -> TaskSummary:
    """Run the backend to the end and put the whole answer in the summary (batch mode)."""
    summary["mode"] = "batch"
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    stream = events if events is not None else stream_events(request, cancel)
    try:
        for event in stream:
            _mark_first(summary)
            if isinstance(event, str):
                text.append(event)
                summary["pieces"] += 1
            elif "tool_call_chunks" in event:
                calls.extend(event["tool_call_chunks"])
                summary["pieces"] += 1
            elif "usage" in event:
                summary["usage"] = event["usage"]
            elif "response_metadata" in event:
                metadata.update(event["response_metadata"])
    except Exception as exc:  # the task boundary: every failure goes into the summary
        return _finish(summary, error=_describe(exc))
    summary.update(text="".join(text), tool_call_chunks=calls, response_metadata=metadata)
    return _finish(summary)


# --------------------------------------------------------------------------- relay


class _Connector:
    """Connects the producer in a thread, so the relay handshake overlaps the backend's TTFT."""

    def __init__(self, producer: ProducerClient) -> None:
        self.producer = producer
        self.error: RelayError | None = None
        self._thread = threading.Thread(target=self._run, name="relay-connect", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.producer.connect()
        except RelayError as exc:
            self.error = exc

    def wait(self) -> bool:
        """Block until the connection is up or failed; return whether it is up."""
        self._thread.join()
        return self.error is None


def _stream(
    request: TaskRequest, channel: ChannelSpec, cancel: threading.Event, summary: TaskSummary
) -> TaskSummary:
    summary["mode"] = "relay"
    try:
        producer = ProducerClient(
            channel["relay_urls"],
            channel["channel_id"],
            channel["token"],
            bytes.fromhex(channel["key"]),
            coalesce_s=channel.get("coalesce_s", DEFAULT_COALESCE_S),
            on_cancel=cancel.set,
        )
    except (StreamError, ValueError, KeyError) as exc:
        return _finish(summary, error=f"bad channel: {_describe(exc)}")
    connector = _Connector(producer)
    try:
        try:
            request = _receive_uploads(request, channel, producer, connector, summary)
        except Exception as exc:  # the task boundary: report to the consumer and the summary
            what = "image upload failed" if channel.get("upload") else "bad images"
            if connector.wait():
                with contextlib.suppress(RelayError):
                    producer.fail(f"{what}: {_describe(exc)}")
            return _finish(summary, error=f"{what}: {_describe(exc)}", producer=producer)
        return _pump(request, producer, connector, cancel, summary)
    finally:
        if connector.wait():
            producer.close()  # no-op after finish() or fail(); otherwise ends the channel


def _pump(
    request: TaskRequest,
    producer: ProducerClient,
    connector: _Connector,
    cancel: threading.Event,
    summary: TaskSummary,
) -> TaskSummary:
    """Send the backend's events as they come; end with FINAL, ERROR, or nothing if cancelled."""
    events = stream_events(request, cancel)
    usage: dict[str, int] | None = None
    try:
        for event in events:
            if "first_piece" not in summary["timing"]:
                _mark_first(summary)
                if not connector.wait():
                    return _fall_back(request, cancel, summary, connector, event, events)
            if cancel.is_set():
                break
            if isinstance(event, dict) and "usage" in event:
                usage = event["usage"]
                continue
            producer.send(encode_piece(event))
            if isinstance(event, str) or "tool_call_chunks" in event:
                summary["pieces"] += 1
    except Exception as exc:  # the task boundary: report to the consumer and the summary
        if connector.wait():
            with contextlib.suppress(RelayError):
                producer.fail(_describe(exc))
        return _finish(summary, error=_describe(exc), producer=producer)
    finally:
        events.close()
    if not connector.wait():  # an answer without a single event
        return _fall_back(request, cancel, summary, connector, None, iter(()))
    if cancel.is_set():
        summary.update(cancelled=True, cancel_reason=producer.cancel_reason)
        return _finish(summary, producer=producer)
    try:
        producer.finish(usage)
    except RelayError as exc:
        return _finish(summary, error=f"relay lost before the end: {exc}", producer=producer)
    if usage is not None:
        summary["usage"] = usage
    return _finish(summary, producer=producer)


def _fall_back(
    request: TaskRequest,
    cancel: threading.Event,
    summary: TaskSummary,
    connector: _Connector,
    first: Event | None,
    rest: Iterator[Event],
) -> TaskSummary:
    """No relay reachable from the node: finish the answer in batch mode."""
    summary["relay_error"] = str(connector.error)
    events = itertools.chain([first] if first is not None else [], rest)
    return _collect(request, cancel, summary, events)


# --------------------------------------------------------------------------- summary


def _new_summary() -> TaskSummary:
    from langchain_stream import __version__

    return TaskSummary(
        version=TASK_VERSION,
        mode="batch",
        ok=True,
        error=None,
        relay_error=None,
        cancelled=False,
        cancel_reason=None,
        pieces=0,
        frames=0,
        relay_url=None,
        timing={"started": time.monotonic()},
        worker={"host": socket.gethostname(), "pid": os.getpid(), "version": __version__},
    )


def _mark_first(summary: TaskSummary) -> None:
    timing = summary["timing"]
    if "first_piece" not in timing:
        timing["first_piece"] = time.monotonic()
        timing["backend_ttft_ms"] = round((timing["first_piece"] - timing["started"]) * 1e3, 3)


def _finish(
    summary: TaskSummary, *, error: str | None = None, producer: ProducerClient | None = None
) -> TaskSummary:
    if error is not None:
        summary.update(ok=False, error=error)
    if producer is not None:
        summary.update(frames=producer.frames_sent, relay_url=producer.relay_url)
    timing = summary["timing"]
    timing["finished"] = time.monotonic()
    timing["duration_ms"] = round((timing["finished"] - timing["started"]) * 1e3, 3)
    return summary


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


__all__ = ["hpc_worker"]
