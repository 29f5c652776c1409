"""One request as the router's steps read it: :class:`RouteRequest`, resolved once.

Everything that decides where a request goes and how a tier is called is resolved when the
request enters the router (from the call's arguments, the chat model's fields, the run's
metadata and the settings, in that order) into one frozen value. Every step of the graph reads
that value; none reads the settings or a ``**kwargs`` dict of its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from langchain_stream.policies.decide import RoutingRequest

TierName = str
"""A tier's name (``local``, ``hpc``, ``cloud``, or a configured one)."""


def _no_arguments() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class RouteRequest(RoutingRequest):
    """Who asks, where the request may go, and the tier call's arguments.

    The policy fields (``user``, ``conversation_id``, ``privacy``, ``reset_conversation``) are
    those of :class:`~langchain_stream.policies.decide.RoutingRequest`.
    """

    pin: TierName | None = None
    """Answer on this tier, skipping the judge (``None``: the judge decides)."""
    call_kwargs: Mapping[str, Any] = field(default_factory=_no_arguments)
    """Arguments of the tier model's call: ``stop``, ``temperature``, ``max_tokens``, ``tools``,
    ``tool_choice``, ``response_format``. Read-only."""
    continue_after_failure: bool = False
    """Whether the next tier continues an answer that broke after its first token."""
    started_at: float = field(default_factory=time.perf_counter)
    """When the request entered the router (``time.perf_counter``), for TTFT."""

    def __post_init__(self) -> None:
        if not isinstance(self.call_kwargs, MappingProxyType):
            object.__setattr__(self, "call_kwargs", MappingProxyType(dict(self.call_kwargs)))


__all__ = ["RouteRequest", "TierName"]
