"""The HPC tier's readiness check, and the router skipping a tier that is not ready.

A local endpoint reports itself: cold until its workers are up (the check starts them), queued
when tasks wait for its only worker, offline when its relay died or it was shut down. A Globus
Compute endpoint is asked through the real SDK ``Client``; Globus's service cannot be reached
here, so a loopback HTTP server answers at the SDK's ``local`` service address in its place.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from operator import not_
from typing import Any, TypeVar

import pytest

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.hpc import ChatHPC, LocalEndpoint
from tests.integration_tests.hpc.helpers import UNIT_S

pytestmark = pytest.mark.timeout(180)

T = TypeVar("T")

MEDIUM = "Explain how a hash map works."  # the keyword judge's MEDIUM: HPC first
ENDPOINT_ID = "11111111-2222-3333-4444-555555555555"
GLOBUS_LOCAL_SERVICE = ("127.0.0.1", 5000)  # globus_compute_sdk's "local" environment


def check(model: ChatHPC) -> str | None:
    return asyncio.run(model.acheck_ready())


def wait_for(probe: Callable[[], T], until: Callable[[T], bool]) -> T:
    deadline = time.monotonic() + 60 * UNIT_S
    while not until(value := probe()):
        assert time.monotonic() < deadline, f"still {value!r}"
        time.sleep(0.05)
    return value


def test_a_cold_local_endpoint_is_skipped_warms_up_then_serves(
    local_model: ChatLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_HEALTH_CACHE_S", "0.2")  # re-check often: the test waits on it
    endpoint = LocalEndpoint(workers=1, preload=False)
    tier = ChatHPC(
        executor=endpoint,
        temperature=0.0,
        max_tokens=16,
        first_token_timeout_s=60 * UNIT_S,
        idle_timeout_s=10 * UNIT_S,
    )
    router = StreamChatModel(local=local_model, hpc=tier, judge="keyword")
    health = router.policy_engine().health
    try:
        cold = wait_for(lambda: health.not_ready("hpc", tier), until=lambda r: r is not None)
        assert cold == "HPC endpoint local is cold: no worker is running yet"
        record = router.invoke(MEDIUM).response_metadata["routing"]
        assert (record["complexity"], record["tier"], record["reason"]) == (
            "MEDIUM",
            "local",
            "health",
        )
        assert [t["tier"] for t in record["tiers_tried"]] == ["local"]  # no wait on HPC
        assert f"health: {cold}" in record["policies"]
        # The check itself started the endpoint; once its worker is up, HPC serves MEDIUM.
        wait_for(lambda: health.not_ready("hpc", tier), until=lambda r: r is None)
        warm = router.invoke(MEDIUM).response_metadata["routing"]
        assert (warm["tier"], warm["reason"]) == ("hpc", "judge")

        # Queued: the only worker is busy and one more task waits. (The answer above reached
        # us before its task's result did: let that task end first.)
        wait_for(lambda: endpoint.endpoint_status()["details"]["outstanding_tasks"], until=not_)
        busy = [endpoint.submit(time.sleep, 2 * UNIT_S) for _ in range(2)]
        assert check(tier) == "HPC endpoint local is queued: 1 task(s) waiting for a worker"
        assert check(tier.model_copy(update={"max_queued_tasks": 1})) is None
        for future in busy:
            future.result(timeout=30 * UNIT_S)
        assert check(tier) is None

        assert endpoint.relay is not None
        endpoint.relay.kill()  # no data plane: nothing can stream
        assert check(tier) == "HPC endpoint local is offline"
    finally:
        endpoint.shutdown(cancel_futures=True)
    assert check(tier) == "HPC endpoint local is offline"


class GlobusStandIn(ThreadingHTTPServer):
    """Answers ``GET /v2/endpoints/{id}/status`` as Globus Compute's web service does."""

    daemon_threads = True

    def __init__(self) -> None:
        self.reply: tuple[int, dict[str, Any]] = (200, {"status": "online"})
        self.delay_s = 0.0
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                time.sleep(server.delay_s)
                code, body = server.reply
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(GLOBUS_LOCAL_SERVICE, Handler)


@pytest.fixture
def globus_service() -> Iterator[GlobusStandIn]:
    try:
        server = GlobusStandIn()
    except OSError as exc:
        pytest.skip(f"port 5000, the Globus SDK's local service address, is taken: {exc}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_globus_endpoint_status_is_read_through_the_sdk(globus_service: GlobusStandIn) -> None:
    import globus_sdk
    from globus_compute_sdk import Client

    # An authorizer instead of a Globus app: no token storage, no login.
    client = Client(
        local_compute_services=True, authorizer=globus_sdk.NullAuthorizer(), do_version_check=False
    )
    model = ChatHPC(endpoint_id=ENDPOINT_ID, status_client=client, max_queued_tasks=2)
    details = {"total_workers": 4, "idle_workers": 1, "pending_tasks": 0, "outstanding_tasks": 3}
    globus_service.reply = (200, {"status": "online", "details": details})
    assert check(model) is None
    assert globus_service.paths == [f"/v2/endpoints/{ENDPOINT_ID}/status"]

    globus_service.reply = (200, {"status": "online", "details": {**details, "total_workers": 0}})
    assert check(model) == f"HPC endpoint {ENDPOINT_ID} is cold: no worker is running yet"
    globus_service.reply = (200, {"status": "online", "details": {**details, "pending_tasks": 3}})
    queued = f"HPC endpoint {ENDPOINT_ID} is queued: 3 task(s) waiting for a worker"
    assert check(model) == queued
    globus_service.reply = (200, {"status": "offline"})
    assert check(model) == f"HPC endpoint {ENDPOINT_ID} is offline"
    # A wrong endpoint id (Globus retries a 5xx, which the timeout below covers).
    globus_service.reply = (404, {"code": "NOT_FOUND", "message": "Unknown endpoint"})
    reason = check(model)
    assert reason is not None
    assert reason.startswith(f"HPC endpoint {ENDPOINT_ID}: cannot read its status: ")
    assert "404" in reason and "Unknown endpoint" in reason

    globus_service.reply = (200, {"status": "online", "details": details})
    globus_service.delay_s = 1.5 * UNIT_S
    slow = model.model_copy(update={"readiness_timeout_s": 0.3})

    async def timed() -> tuple[str | None, float]:
        started = time.monotonic()
        return await slow.acheck_ready(), time.monotonic() - started

    reason, elapsed = asyncio.run(timed())
    assert reason == f"HPC endpoint {ENDPOINT_ID}: no status from Globus Compute within 0.3 s"
    assert elapsed < globus_service.delay_s  # the check never waits long on Globus
    assert model._default_executor is None  # and never built a Globus executor
