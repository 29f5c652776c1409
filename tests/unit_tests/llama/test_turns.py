"""Turns on one model: lightest work first, giving way, deadlines and cancellation while waiting."""

from __future__ import annotations

import threading
import time

import pytest

from langchain_stream.errors import TierDeadlineError, TierUnavailableError
from langchain_stream.llama.turns import Cutoff, ModelTurns
from tests.conftest import TIME_UNIT_S


def _waiter(turns: ModelTurns, cost: int, order: list[int], started: threading.Event) -> None:
    started.set()
    with turns.take(cost):
        order.append(cost)


def _queue(turns: ModelTurns, costs: list[int], order: list[int]) -> list[threading.Thread]:
    threads = []
    for cost in costs:
        started = threading.Event()
        thread = threading.Thread(target=_waiter, args=(turns, cost, order, started))
        thread.start()
        started.wait()
        time.sleep(0.05)  # queued in this order
        threads.append(thread)
    return threads


def test_waiters_get_the_model_lightest_first_then_in_arrival_order() -> None:
    turns = ModelTurns()
    order: list[int] = []
    holder = turns.take(10)
    threads = _queue(turns, [3000, 30, 500, 30], order)
    assert order == []  # nobody runs while the model is held
    holder.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == [30, 30, 500, 3000]


def test_a_heavy_holder_gives_way_to_lighter_waiters_and_resumes_after_them() -> None:
    turns = ModelTurns()
    order: list[int] = []
    heavy = turns.take(3000)
    assert not heavy.should_give_way(3000)
    threads = _queue(turns, [30, 5000], order)
    assert heavy.should_give_way(3000)  # the 30-token request is lighter
    assert not heavy.should_give_way(20)  # nearly done: not worth setting aside
    heavy.give_way(2000)
    order.append(2000)  # the heavy request holds the model again here
    heavy.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == [30, 2000, 5000]


def test_waiting_past_the_deadline_is_a_deadline_error() -> None:
    turns = ModelTurns()
    holder = turns.take(10)
    started = time.monotonic()
    with pytest.raises(TierDeadlineError, match=r"deadline of 0\.3 s") as caught:
        turns.take(10, Cutoff(deadline=started + 0.3, timeout_s=0.3))
    waited = time.monotonic() - started
    assert caught.value.tier == "local" and caught.value.timeout_s == 0.3
    assert 0.3 <= waited < 0.3 + 1.0 * TIME_UNIT_S
    holder.release()
    with turns.take(10):  # the one that gave up left no trace in the queue
        pass


def test_a_cancelled_waiter_stops_waiting() -> None:
    turns = ModelTurns()
    holder = turns.take(10)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    with pytest.raises(TierUnavailableError, match="cancelled"):
        turns.take(10, Cutoff(cancel=cancel))
    holder.release()
