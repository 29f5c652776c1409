"""The share of recent traffic each class and tier got, so calibration drift is visible.

A :class:`ShareWindow` keeps the last ``size`` routed requests of a process (the judged
class, and the tier that answered) and reports their shares beside the calibration target
(``judge_target``). The router's :class:`~langchain_stream.policies.engine.PolicyEngine` feeds
one; ``StreamChatModel.routing_shares()`` reads it, and ``stream doctor`` computes the same
figures from the audit log.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from langchain_stream.judge.base import Complexity

CLASS_NAMES: tuple[str, ...] = tuple(c.value for c in Complexity)
TIER_NAMES: tuple[str, ...] = ("local", "hpc", "cloud")


class RoutingShares(BaseModel):
    """Shares of the recent routed requests, and their drift from the calibration target."""

    model_config = ConfigDict(frozen=True)

    window: int
    """Most requests the window keeps."""
    requests: int
    """Requests in the window."""
    judged: int
    """Of those, requests the judge classified (pinned ones are not)."""
    answered: int
    """Of those, requests a tier answered."""
    classes: dict[str, float]
    """Share of each class among the judged requests."""
    tiers: dict[str, float]
    """Share of each tier among the answered requests (after policies and fallbacks)."""
    target: dict[str, float] | None = None
    """The calibration target per class, when one is configured."""
    drift: dict[str, float] | None = None
    """``classes - target`` per class, when both are known."""

    def summary(self) -> str:
        """One line: class shares (against the target) and tier shares."""
        if not self.requests:
            return "no routed requests yet"

        def pct(shares: Mapping[str, float], names: Iterable[str]) -> str:
            return " / ".join(f"{n} {100 * shares.get(n, 0.0):.0f}%" for n in names)

        text = f"last {self.requests} requests: {pct(self.classes, CLASS_NAMES)}"
        if self.target:
            text += f" (target {pct(self.target, CLASS_NAMES)}"
            if self.drift and max(abs(v) for v in self.drift.values()) > DRIFT_NOTICE:
                text += ", drifted: recalibrate with `stream judge calibrate`"
            text += ")"
        configured = set(self.tiers) - set(TIER_NAMES)  # tiers of a [[tiers]] list
        names = list(self.tiers) if configured else TIER_NAMES
        return text + f"; answered by {pct(self.tiers, names)}"


# Drift (share points) past which the summary suggests recalibrating.
DRIFT_NOTICE = 0.1


class ShareWindow:
    """A bounded, thread-safe window of recent routed requests.

    Args:
        size: most requests kept; older ones drop out.
        target: the calibration target per class (``judge_target``), for the drift.
    """

    def __init__(self, size: int = 1000, target: Mapping[str, float] | None = None) -> None:
        if size < 1:
            raise ValueError("the share window needs a size of at least 1")
        self.size = size
        total = sum(target.values()) if target else 0.0
        self.target = (
            {c: float(target.get(c, 0.0)) / total for c in CLASS_NAMES}
            if target and total > 0
            else None
        )
        self._entries: deque[tuple[str | None, str | None]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, complexity: Complexity | str | None, tier: str | None) -> None:
        """Count one request: its judged class (``None`` when pinned) and the tier that
        answered (``None`` when none did)."""
        name = Complexity(complexity).value if complexity else None
        with self._lock:
            self._entries.append((name, tier or None))

    def snapshot(self) -> RoutingShares:
        """The shares over the requests in the window."""
        with self._lock:
            entries = list(self._entries)
        classes = [c for c, _ in entries if c is not None]
        tiers = [t for _, t in entries if t is not None]
        class_shares = {c: classes.count(c) / len(classes) if classes else 0.0 for c in CLASS_NAMES}
        tier_names = list(TIER_NAMES) + sorted(set(tiers) - set(TIER_NAMES))
        drift = None
        if self.target and classes:
            drift = {c: round(class_shares[c] - self.target[c], 6) for c in CLASS_NAMES}
        return RoutingShares(
            window=self.size,
            requests=len(entries),
            judged=len(classes),
            answered=len(tiers),
            classes=class_shares,
            tiers={t: tiers.count(t) / len(tiers) if tiers else 0.0 for t in tier_names},
            target=self.target,
            drift=drift,
        )


__all__ = ["RoutingShares", "ShareWindow"]
