"""Whose turn it is on one loaded model: the lightest work goes first, and heavy work gives way.

A ``llama_cpp.Llama`` runs one request at a time. Taking turns in arrival order would let one
request with a huge prompt hold the model for as long as reading that prompt takes (tens of
seconds for a few thousand tokens on a small CPU) while a one-line question waits behind it. So
waiters are ordered by the prompt work they have left (fewest tokens first, then arrival), and the
holder of a turn asks :meth:`Turn.should_give_way` between slices of its prompt: when a lighter
request waits, the holder sets its progress aside, lets it run, and resumes afterwards. Heavy work
is therefore delayed, never lost, and is bounded by its own deadline.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

from langchain_stream.errors import TierDeadlineError, TierUnavailableError

_POLL_S = 0.25
"""How often a waiter looks at its cancel event (waking is otherwise by notification)."""


@dataclass(frozen=True, order=True)
class _Ticket:
    cost: int
    """Prompt tokens left to read: lighter work goes first."""
    number: int
    """Arrival order, among equal costs."""


class ModelTurns:
    """Turns on one model, handed out lightest first (thread-safe)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._waiting: set[_Ticket] = set()
        self._numbers = itertools.count()

    @property
    def busy(self) -> bool:
        """Whether a request holds the model now."""
        with self._cond:
            return self._held

    def take(
        self,
        cost: int,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        timeout_s: float | None = None,
    ) -> Turn:
        """Wait for a turn for work of ``cost`` prompt tokens.

        Args:
            cost: prompt tokens the work has left to read.
            deadline: ``time.monotonic()`` by which the turn must be had.
            cancel: give up waiting once this is set.
            timeout_s: the request's deadline in seconds, for the error message.

        Raises:
            TierDeadlineError: the deadline passed, or ``cancel`` was set, while waiting.
        """
        turn = Turn(self, cost)
        turn.wait(deadline=deadline, cancel=cancel, timeout_s=timeout_s)
        return turn

    def _acquire(
        self,
        ticket: _Ticket,
        deadline: float | None,
        cancel: threading.Event | None,
        timeout_s: float | None,
    ) -> None:
        with self._cond:
            self._waiting.add(ticket)
            try:
                while self._held or min(self._waiting) != ticket:
                    if cancel is not None and cancel.is_set():
                        raise TierUnavailableError(
                            "the request was cancelled while waiting for the local model",
                            tier="local",
                        )
                    wait_s = _POLL_S
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise deadline_passed("waiting for the local model", timeout_s)
                        wait_s = min(wait_s, left)
                    self._cond.wait(wait_s)
                self._held = True
            finally:
                self._waiting.discard(ticket)
                self._cond.notify_all()  # the best waiter may have changed

    def _release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def _lighter_waiting(self, cost: int) -> bool:
        with self._cond:
            return any(t.cost < cost for t in self._waiting)


class Turn:
    """One request's hold on a model; a context manager that gives the turn back on exit."""

    def __init__(self, turns: ModelTurns, cost: int) -> None:
        self._turns = turns
        self._cost = cost
        self._held = False

    def wait(
        self,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Block until this request holds the model (see :meth:`ModelTurns.take`)."""
        ticket = _Ticket(self._cost, next(self._turns._numbers))
        self._turns._acquire(ticket, deadline, cancel, timeout_s)
        self._held = True

    def should_give_way(self, cost_left: int) -> bool:
        """Whether a request with less prompt work than ``cost_left`` is waiting."""
        return self._turns._lighter_waiting(cost_left)

    def give_way(
        self,
        cost_left: int,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Let lighter waiters run, then wait for the model again with ``cost_left``."""
        self.release()
        self._cost = cost_left
        self.wait(deadline=deadline, cancel=cancel, timeout_s=timeout_s)

    def release(self) -> None:
        """Give the model back (once)."""
        if self._held:
            self._held = False
            self._turns._release()

    def __enter__(self) -> Turn:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def deadline_passed(doing: str, timeout_s: float | None) -> TierDeadlineError:
    """The error for a request that passed its deadline on the local tier while ``doing``."""
    limit = f" of {timeout_s:g} s" if timeout_s is not None else ""
    return TierDeadlineError(
        f"the request passed its deadline{limit} on the local tier while {doing}",
        tier="local",
        timeout_s=timeout_s or 0.0,
    )


__all__ = ["ModelTurns", "Turn", "deadline_passed"]
