"""The local endpoint shared by the HPC tests, and small real executors for fault tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from langchain_stream.hpc import LocalEndpoint
from tests.conftest import TIME_UNIT_S

UNIT_S = TIME_UNIT_S
"""Every wait in the HPC tests is a multiple of this."""

_endpoint: LocalEndpoint | None = None


def shared_endpoint() -> LocalEndpoint:
    """One local endpoint (one worker process, one model copy, one relay) for the session."""
    global _endpoint
    if _endpoint is None:
        _endpoint = LocalEndpoint(workers=1)
    return _endpoint


def shutdown_shared_endpoint() -> None:
    global _endpoint
    if _endpoint is not None:
        _endpoint.shutdown(cancel_futures=True)
        _endpoint = None


class RecordingExecutor(Executor):
    """Passes tasks on to another executor and keeps their futures, to read the summaries."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = self.inner.submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future


class StalledEndpoint(RecordingExecutor):
    """A real one-thread pool whose thread is held busy: tasks queue and never start.

    It stands in for an endpoint that never comes up (a cold endpoint or a long queue), a
    fault a healthy local machine cannot produce otherwise.
    """

    def __init__(self) -> None:
        super().__init__(ThreadPoolExecutor(1, thread_name_prefix="stalled-endpoint"))
        self.release = threading.Event()
        self.inner.submit(self.release.wait)

    def close(self) -> None:
        self.release.set()
        self.inner.shutdown(wait=True, cancel_futures=True)
