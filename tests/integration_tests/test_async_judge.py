"""A slow judge does not hold up other requests of the same event loop (an async server):
the judge runs on its own pool, off the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.judge import Complexity, Judgment
from tests.conftest import TIME_UNIT_S

JUDGE_S = 4.0 * TIME_UNIT_S


class SleepingJudge:
    """Judges everything LOW, after ``JUDGE_S`` of blocking work (as llama.cpp would do)."""

    name = "sleeping"

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        time.sleep(JUDGE_S)
        return Judgment(complexity=Complexity.LOW, judge=self.name, latency_ms=JUDGE_S * 1000)


async def test_a_slow_judge_does_not_block_a_concurrent_request(local_model: ChatLocal) -> None:
    judged = StreamChatModel(local=local_model, judge=SleepingJudge(), max_tokens=8)
    pinned = StreamChatModel(local=local_model, model="local", max_tokens=8)
    await pinned.ainvoke("Warm up.")
    started = time.monotonic()
    done: dict[str, float] = {}

    async def timed(name: str, model: StreamChatModel) -> None:
        answer = await model.ainvoke("What is the capital of France?")
        assert answer.text.strip()
        done[name] = time.monotonic() - started

    await asyncio.gather(timed("judged", judged), timed("pinned", pinned))
    assert done["judged"] >= JUDGE_S
    # Blocked by the judge, the pinned request could not finish before the judge did.
    assert done["pinned"] < JUDGE_S / 2, done
    assert done["pinned"] < done["judged"]
