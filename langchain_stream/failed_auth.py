"""Failed authentications counted per client address, so nobody can guess credentials fast.

Both ``stream serve`` (API keys) and ``stream relay`` (channel tokens) record each wrong
credential against the address that presented it. Once an address has failed
:attr:`FailedAuthLimit.failures` times within :attr:`FailedAuthLimit.window_s`, its requests are
refused up front — before their credential is even looked at — until the oldest failure leaves
the window. Other addresses are not affected. A request that presents no credential at all is not
a guess and is not counted.

Counting is done by the ``limits`` library (a moving window), in memory by default or in any
``limits`` storage (e.g. Redis, to share the counts between server workers).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from langchain_stream.errors import ConfigurationError

_NAMESPACE = "failed-auth"


@dataclass(frozen=True, slots=True)
class FailedAuthLimit:
    """How many wrong credentials one client address may present, and over what window."""

    failures: int = 20
    """Wrong credentials allowed per address within the window; the next request from that
    address is refused (HTTP 429) without checking its credential. 0 turns the limit off."""

    window_s: int = 60
    """The moving window, in seconds: an address is let in again once its oldest counted
    failure is this old."""

    def __post_init__(self) -> None:
        if self.failures < 0:
            raise ConfigurationError(f"failed-auth failures must be ≥ 0, not {self.failures}")
        if self.window_s < 1:
            raise ConfigurationError(f"failed-auth window must be ≥ 1 s, not {self.window_s}")

    @property
    def enabled(self) -> bool:
        """Whether failures are counted at all."""
        return self.failures > 0


class FailedAuthCounter:
    """Wrong credentials per client address, in a moving window (``limits``)."""

    def __init__(self, limit: FailedAuthLimit, storage_uri: str = "memory://") -> None:
        """Args:
        limit: the bound to enforce.
        storage_uri: a ``limits`` storage URI (``memory://``, ``redis://host:port``, ...).

        Raises:
            ConfigurationError: the storage URI is not one ``limits`` can open.
        """
        self.limit = limit
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        try:
            storage = storage_from_string(uri)
        except Exception as exc:  # limits' ConfigurationError, a missing driver
            raise ConfigurationError(f"bad rate-limit storage {storage_uri!r}: {exc}") from exc
        self._limiter = MovingWindowRateLimiter(storage)
        self._item = RateLimitItemPerSecond(max(limit.failures, 1), limit.window_s)

    async def retry_after(self, address: str) -> float | None:
        """``None`` while ``address`` may still try, else the seconds until it may again."""
        if not self.limit.enabled:
            return None
        if await self._limiter.test(self._item, _NAMESPACE, address):
            return None
        stats = await self._limiter.get_window_stats(self._item, _NAMESPACE, address)
        return max(1.0, math.ceil(stats.reset_time - time.time()))

    async def record_failure(self, address: str) -> None:
        """Count one wrong credential presented by ``address``."""
        if self.limit.enabled:
            await self._limiter.hit(self._item, _NAMESPACE, address)


__all__ = ["FailedAuthCounter", "FailedAuthLimit"]
