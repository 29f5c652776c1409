"""The bridges between blocking code and asyncio: order, errors and early stops both ways."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from langchain_stream._threads import (
    AsyncSource,
    BlockingSource,
    aiter_in_thread,
    background_loop,
    iterate_async,
)


async def test_a_blocking_iterator_is_consumed_in_order_off_the_loop() -> None:
    loop_thread = threading.get_ident()
    seen_on: list[int] = []

    def numbers(cancel: threading.Event) -> Iterator[int]:
        for n in range(5):
            seen_on.append(threading.get_ident())
            yield n

    assert [n async for n in aiter_in_thread(numbers)] == [0, 1, 2, 3, 4]
    assert seen_on and loop_thread not in seen_on


async def test_an_error_of_the_blocking_iterator_reaches_the_consumer() -> None:
    def failing(cancel: threading.Event) -> Iterator[int]:
        yield 1
        raise RuntimeError("backend broke")

    got: list[int] = []
    with pytest.raises(RuntimeError, match="backend broke"):
        async for n in aiter_in_thread(failing):
            got.append(n)
    assert got == [1]


async def test_stopping_early_sets_cancel_and_closes_the_iterator() -> None:
    cancelled = threading.Event()
    closed = threading.Event()

    def endless(cancel: threading.Event) -> Iterator[int]:
        try:
            n = 0
            while not cancel.is_set():
                yield n
                n += 1
            cancelled.set()
        finally:
            closed.set()

    async for n in aiter_in_thread(endless):
        if n == 3:
            break
    # The worker sees the cancel flag at its next item and closes the iterator.
    assert await asyncio.to_thread(closed.wait, 5.0)
    assert cancelled.is_set() or closed.is_set()


def test_an_async_iterator_is_consumed_from_sync_code_in_order() -> None:
    async def letters() -> AsyncIterator[str]:
        for letter in "abc":
            await asyncio.sleep(0)
            yield letter

    assert list(iterate_async(letters)) == ["a", "b", "c"]


def test_an_error_of_the_async_iterator_reaches_the_sync_caller() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("no more")

    got: list[int] = []
    with pytest.raises(ValueError, match="no more"):
        for n in iterate_async(failing):
            got.append(n)
    assert got == [1]


def test_stopping_a_sync_consumer_early_cancels_the_async_iterator() -> None:
    cancelled = threading.Event()

    async def endless() -> AsyncIterator[int]:
        n = 0
        try:
            while True:
                yield n
                n += 1
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    iterator = iterate_async(endless)
    assert next(iterator) == 0
    iterator.close()
    assert cancelled.wait(5.0)


def test_the_background_loop_is_one_running_loop_reused() -> None:
    loop = background_loop()
    assert loop.is_running()
    assert background_loop() is loop


def test_a_blocking_source_reads_the_same_items_from_both_sides() -> None:
    callers: list[int] = []

    def numbers(cancel: threading.Event) -> Iterator[int]:
        callers.append(threading.get_ident())
        yield from range(4)

    source = BlockingSource(numbers)

    async def read_async() -> list[int]:
        return [n async for n in source.aiterate()]

    assert list(source.iterate()) == [0, 1, 2, 3]
    assert callers == [threading.get_ident()]  # sync callers run it on their own thread
    assert asyncio.run(read_async()) == [0, 1, 2, 3]
    assert callers[1] != threading.get_ident()  # async callers, on a worker thread


def test_an_async_source_reads_the_same_items_from_both_sides() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def numbers() -> AsyncIterator[int]:
        loops.append(asyncio.get_running_loop())
        for n in range(4):
            yield n

    source = AsyncSource(numbers)

    async def read_async() -> list[int]:
        return [n async for n in source.aiterate()]

    assert list(source.iterate()) == [0, 1, 2, 3]
    assert loops == [background_loop()]  # sync callers run it on the background loop
    assert asyncio.run(read_async()) == [0, 1, 2, 3]
    assert loops[1] is not background_loop()  # async callers, on their own loop
