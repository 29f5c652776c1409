"""Bridging blocking iterators (llama.cpp, sync clients) into asyncio without blocking the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _DONE = 0, 1, 2


async def aiter_in_thread(make_iter: Callable[[threading.Event], Iterator[T]]) -> AsyncIterator[T]:
    """Run ``make_iter(cancel)`` in a worker thread and yield its items on the event loop.

    Items arrive as soon as the thread produces them. When the consumer stops early (break,
    exception, task cancellation) ``cancel`` is set so the producer can stop its work, and
    the iterator is closed in its own thread.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, object]] = asyncio.Queue()
    cancel = threading.Event()

    def post(kind: int, value: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            cancel.set()

    def worker() -> None:
        iterator = make_iter(cancel)
        try:
            for item in iterator:
                if cancel.is_set():
                    break
                post(_ITEM, item)
        except BaseException as exc:
            post(_ERROR, exc)
        else:
            post(_DONE, None)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    threading.Thread(target=worker, name="stream-worker", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == _ITEM:
                yield value  # type: ignore[misc]
            elif kind == _ERROR:
                raise value  # type: ignore[misc]
            else:
                return
    finally:
        cancel.set()
