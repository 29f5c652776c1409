"""Routing policies that override the judge: privacy, budgets, stickiness and tier health.

Each policy's effect is written into the routing record, and every decision into the audit log.
"""

from langchain_stream.policies.decide import RoutingRequest, decide_candidates
from langchain_stream.policies.engine import PolicyEngine
from langchain_stream.policies.health import CircuitBreaker, TierHealth
from langchain_stream.policies.prices import PriceTable, cost_usd
from langchain_stream.policies.privacy import SensitiveDataDetector, SensitiveFinding
from langchain_stream.policies.store import PolicyStore

__all__ = [
    "CircuitBreaker",
    "PolicyEngine",
    "PolicyStore",
    "PriceTable",
    "RoutingRequest",
    "SensitiveDataDetector",
    "SensitiveFinding",
    "TierHealth",
    "cost_usd",
    "decide_candidates",
]
