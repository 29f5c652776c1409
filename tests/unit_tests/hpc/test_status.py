"""Reading an endpoint's status report as readiness, in the shape Globus Compute documents."""

from __future__ import annotations

from langchain_stream.hpc.status import not_ready_reason

# The example response of globus_sdk.testing's compute/v2/get_endpoint_status (importing it
# needs the `responses` package).
DEFAULT_RESPONSE_DOC = {
    "status": "online",
    "details": {
        "total_workers": 1,
        "idle_workers": 0,
        "pending_tasks": 0,
        "outstanding_tasks": 0,
        "managers": 1,
    },
}


def test_the_documented_status_of_a_busy_online_endpoint_is_ready() -> None:
    assert DEFAULT_RESPONSE_DOC["details"]["idle_workers"] == 0  # busy, yet nothing waits
    assert not_ready_reason("ep", DEFAULT_RESPONSE_DOC) is None


def test_offline_cold_and_queued_endpoints_are_not_ready() -> None:
    details = DEFAULT_RESPONSE_DOC["details"]
    offline = {**DEFAULT_RESPONSE_DOC, "status": "offline"}
    cold = {"status": "online", "details": {**details, "total_workers": 0}}
    queued = {"status": "online", "details": {**details, "pending_tasks": 2}}
    assert not_ready_reason("ep", offline) == "HPC endpoint ep is offline"
    assert not_ready_reason("ep", cold) == "HPC endpoint ep is cold: no worker is running yet"
    assert not_ready_reason("ep", queued) == (
        "HPC endpoint ep is queued: 2 task(s) waiting for a worker"
    )
    assert not_ready_reason("ep", queued, max_queued_tasks=2) is None
    assert not_ready_reason("ep", {"status": "online"}) is None  # no details: nothing says no
    assert not_ready_reason("ep", {}) == "HPC endpoint ep is unknown"
