"""Judging off the event loop, on a small pool of its own.

A judge is synchronous and may take a while (the ``llm`` judge runs llama.cpp, a custom judge
may do anything); run on the event loop, it would stall every other request of an async
server while one is judged. :func:`in_judge_pool` runs it on a bounded pool instead: at most
:data:`JUDGE_WORKERS` judgments at once (judges are CPU-bound, so more threads would only
queue on the cores), the rest wait their turn without holding the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

JUDGE_WORKERS = 2
"""Judgments run at once; others wait for a worker (off the event loop)."""

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _judge_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:  # created once: a thread per request costs milliseconds
            _pool = ThreadPoolExecutor(JUDGE_WORKERS, thread_name_prefix="stream-judge")
        return _pool


async def in_judge_pool(step: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``step(*args, **kwargs)`` (a judgment, or a step that judges) on the judge pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_judge_pool(), partial(step, *args, **kwargs))
