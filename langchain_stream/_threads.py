"""Bridges between blocking code and asyncio, on long-lived threads.

- :func:`aiter_in_thread`: run a blocking iterator (llama.cpp generation, a sync client) on a
  shared worker pool and consume it on the event loop without blocking the loop.
- :func:`iterate_async`: consume an async iterator from synchronous code, running it on one
  background event loop, so sync entry points reuse the async implementation.
- :func:`aiter_in_task`: consume an async iterator that runs in a task of its own, so the
  context variables it sets stay out of the consumer's context.
- :class:`BlockingSource` and :class:`AsyncSource`: an iterator written once, blocking or
  async, that both sync and async callers consume.

Threads are created once and reused: starting a thread per request costs milliseconds on a
busy machine, more than the router's whole budget.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _DONE = 0, 1, 2
# Generation holds a model's lock for its whole duration, so a few workers cover many models.
_BLOCKING_WORKERS = 8

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_loop: asyncio.AbstractEventLoop | None = None


def _blocking_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_BLOCKING_WORKERS, thread_name_prefix="stream-blocking")
        return _pool


def background_loop() -> asyncio.AbstractEventLoop:
    """The process-wide event loop that runs async work for synchronous callers."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="stream-loop", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


async def aiter_in_thread(make_iter: Callable[[threading.Event], Iterator[T]]) -> AsyncIterator[T]:
    """Run ``make_iter(cancel)`` on the worker pool and yield its items on the event loop.

    Items arrive as soon as the worker produces them. When the consumer stops early (break,
    exception, task cancellation) ``cancel`` is set so the producer can stop its work, and
    the iterator is closed on the worker.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[tuple[int, object]] = asyncio.Queue()
    cancel = threading.Event()

    def post(kind: int, value: object) -> None:
        try:
            loop.call_soon_threadsafe(items.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            cancel.set()

    def work() -> None:
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

    _blocking_pool().submit(work)
    try:
        async for item in _received(items):
            yield item  # type: ignore[misc]
    finally:
        cancel.set()


async def _received(items: asyncio.Queue[tuple[int, object]]) -> AsyncIterator[object]:
    """The items posted to ``items`` until the end; a posted error is raised."""
    while True:
        kind, value = await items.get()
        if kind == _ITEM:
            yield value
        elif kind == _ERROR:
            raise value  # type: ignore[misc]
        else:
            return


def iterate_async(make_aiter: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Consume ``make_aiter()`` from synchronous code; it runs on :func:`background_loop`.

    Stopping early cancels the async iterator's task. The task runs in the loop thread's own
    context, not the caller's.
    """
    items: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()

    async def pump() -> None:
        try:
            async for item in make_aiter():
                items.put((_ITEM, item))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            items.put((_ERROR, exc))
        else:
            items.put((_DONE, None))

    future = asyncio.run_coroutine_threadsafe(pump(), background_loop())
    try:
        while True:
            kind, value = items.get()
            if kind == _ITEM:
                yield value  # type: ignore[misc]
            elif kind == _ERROR:
                raise value  # type: ignore[misc]
            else:
                return
    finally:
        if not future.done():
            future.cancel()


async def aiter_in_task(
    items: AsyncIterator[T], context: contextvars.Context | None = None
) -> AsyncIterator[T]:
    """Yield the items of ``items``, iterated by a task of its own in ``context`` (default: a
    copy of the current context).

    An async generator runs in its consumer's context, so a context variable it sets would
    stay set for the consumer; in a task of its own it does not. Stopping early cancels the
    task and waits for it.
    """
    queue_: asyncio.Queue[tuple[int, object]] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in items:
                queue_.put_nowait((_ITEM, item))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, which raises it
            queue_.put_nowait((_ERROR, exc))
        else:
            queue_.put_nowait((_DONE, None))

    task = asyncio.get_running_loop().create_task(pump(), context=context)
    try:
        async for item in _received(queue_):
            yield item  # type: ignore[misc]
    finally:
        if not task.done():
            task.cancel()
            # wait() does not re-raise the task's own cancellation into this clean-up, which
            # under anyio's repeated cancellations left the work running.
            await asyncio.wait([task])


class BlockingSource(Generic[T]):
    """Items a blocking iterator yields (llama.cpp generation): async callers get them from the
    shared worker pool. ``make_iter`` takes an event set when the consumer leaves."""

    def __init__(self, make_iter: Callable[[threading.Event], Iterator[T]]) -> None:
        self._make_iter = make_iter

    def iterate(self) -> Iterator[T]:
        return self._make_iter(threading.Event())

    def aiterate(self) -> AsyncIterator[T]:
        return aiter_in_thread(self._make_iter)


class AsyncSource(Generic[T]):
    """Items an async iterator yields (network I/O): sync callers get them from the background
    event loop."""

    def __init__(self, make_aiter: Callable[[], AsyncIterator[T]]) -> None:
        self._make_aiter = make_aiter

    def iterate(self) -> Iterator[T]:
        return iterate_async(self._make_aiter)

    def aiterate(self) -> AsyncIterator[T]:
        return self._make_aiter()
