"""Judgments run off the event loop, on a bounded pool."""

from __future__ import annotations

import asyncio
import threading
import time

from langchain_stream.judge.offload import JUDGE_WORKERS, in_judge_pool
from tests.conftest import TIME_UNIT_S

SLOW_S = 0.5 * TIME_UNIT_S


async def test_a_slow_judgment_leaves_the_loop_free() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        name = await in_judge_pool(lambda: (time.sleep(SLOW_S), threading.current_thread().name))
    finally:
        ticker.cancel()
    assert name[1].startswith("stream-judge")
    # Blocked, the loop would not tick at all while the judge sleeps.
    assert ticks >= SLOW_S / 0.01 / 4


async def test_at_most_judge_workers_judgments_run_at_once() -> None:
    running = peak = 0
    lock = threading.Lock()

    def judge(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.1 * TIME_UNIT_S)
        with lock:
            running -= 1

    await asyncio.gather(*(in_judge_pool(judge, i) for i in range(JUDGE_WORKERS * 3)))
    assert peak == JUDGE_WORKERS
