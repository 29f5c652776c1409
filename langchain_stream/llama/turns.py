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


@dataclass(frozen=True)
class Cutoff:
    """When work on a model stops early: the caller left, or the request's deadline passed."""

    cancel: threading.Event | None = None
    """Set when the caller no longer wants the answer."""
    deadline: float | None = None
    """``time.monotonic()`` by which the whole request must be over; ``None`` for none."""
    timeout_s: float | None = None
    """The seconds that deadline stands for, for the error message."""

    @property
    def cancelled(self) -> bool:
        """Whether the caller left."""
        return self.cancel is not None and self.cancel.is_set()

    def past(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def passed(self, doing: str) -> TierDeadlineError:
        """The error for passing the deadline while ``doing``."""
        return deadline_passed(doing, self.timeout_s)


NO_CUTOFF = Cutoff()
"""Work that runs to its end."""


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

    def take(self, cost: int, cutoff: Cutoff = NO_CUTOFF) -> Turn:
        """Wait for a turn for work of ``cost`` prompt tokens (the prompt tokens it has left to
        read), giving up at ``cutoff``.

        Raises:
            TierDeadlineError: the deadline passed while waiting.
            TierUnavailableError: the caller left while waiting.
        """
        turn = Turn(self, cost)
        turn.wait(cutoff)
        return turn

    def _acquire(self, ticket: _Ticket, cutoff: Cutoff) -> None:
        with self._cond:
            self._waiting.add(ticket)
            try:
                while self._held or min(self._waiting) != ticket:
                    if cutoff.cancelled:
                        raise TierUnavailableError(
                            "the request was cancelled while waiting for the local model",
                            tier="local",
                        )
                    wait_s = _POLL_S
                    if cutoff.deadline is not None:
                        left = cutoff.deadline - time.monotonic()
                        if left <= 0:
                            raise cutoff.passed("waiting for the local model")
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

    def wait(self, cutoff: Cutoff = NO_CUTOFF) -> None:
        """Block until this request holds the model (see :meth:`ModelTurns.take`)."""
        ticket = _Ticket(self._cost, next(self._turns._numbers))
        self._turns._acquire(ticket, cutoff)
        self._held = True

    def should_give_way(self, cost_left: int) -> bool:
        """Whether a request with less prompt work than ``cost_left`` is waiting."""
        return self._turns._lighter_waiting(cost_left)

    def give_way(self, cost_left: int, cutoff: Cutoff = NO_CUTOFF) -> None:
        """Let lighter waiters run, then wait for the model again with ``cost_left``."""
        self.release()
        self._cost = cost_left
        self.wait(cutoff)

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


__all__ = ["NO_CUTOFF", "Cutoff", "ModelTurns", "Turn", "deadline_passed"]
