"""`stream doctor`'s checks: each part's state and why, never an exception for a sick part."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from langchain_stream.config import Settings
from langchain_stream.doctor import (
    check_all,
    check_cloud,
    check_hpc,
    check_judge,
    check_relays,
    check_routing_shares,
)
from langchain_stream.hpc.local_endpoint import RelayProcess


class _Models(BaseHTTPRequestHandler):
    """A model listing that wants one key."""

    def do_GET(self) -> None:
        ok = self.path == "/v1/models" and self.headers.get("Authorization") == "Bearer good"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def models_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_the_keyword_judge_is_healthy_and_says_what_it_judged() -> None:
    row = check_judge(Settings(judge="keyword"))
    assert row.healthy and row.configured
    assert row.detail.startswith("keyword: ") and row.detail.endswith(" ms")


def test_an_unknown_judge_is_unhealthy_with_the_reason() -> None:
    row = check_judge(Settings(judge="no_such_module:judge"))
    assert not row.healthy
    assert "no_such_module" in row.detail


def test_without_a_database_the_routing_shares_are_not_configured() -> None:
    row = check_routing_shares(Settings(database_url="none"))
    assert not row.configured and "STREAM_DATABASE_URL=none" in row.detail


def test_tiers_that_are_not_configured_say_how_to_configure_them() -> None:
    hpc, cloud = check_hpc(Settings()), check_cloud(Settings())
    assert not hpc.configured and "STREAM_HPC_ENDPOINT_ID" in hpc.detail
    assert not cloud.configured and "STREAM_CLOUD_MODEL" in cloud.detail


def test_relays_without_a_secret_are_unhealthy() -> None:
    settings = Settings(hpc_endpoint_id="x", relay_urls=["ws://127.0.0.1:1"])
    row = check_hpc(settings)
    assert not row.healthy and "STREAM_RELAY_SECRET" in row.detail


@pytest.mark.loopback
def test_the_cloud_is_healthy_when_its_model_listing_accepts_the_key(models_url: str) -> None:
    settings = Settings(cloud_model="m", cloud_base_url=models_url, cloud_api_key=SecretStr("good"))
    row = check_cloud(settings)
    assert row.healthy and row.detail == f"m at {models_url}"


@pytest.mark.loopback
def test_a_refused_key_makes_the_cloud_unhealthy(models_url: str) -> None:
    settings = Settings(cloud_model="m", cloud_base_url=models_url, cloud_api_key=SecretStr("bad"))
    row = check_cloud(settings)
    assert not row.healthy and "HTTP 401" in row.detail


@pytest.mark.loopback
def test_an_unreachable_cloud_is_unhealthy(models_url: str) -> None:
    closed = models_url.rsplit(":", 1)[0] + ":1/v1"  # port 1: nothing listens there
    row = check_cloud(Settings(cloud_model="m", cloud_base_url=closed))
    assert not row.healthy and "unreachable" in row.detail


@pytest.fixture(scope="module")
def relay_url() -> Iterator[str]:
    relay = RelayProcess()
    relay.start()
    try:
        yield relay.url
    finally:
        relay.kill()


@pytest.mark.loopback
def test_each_relay_of_the_set_gets_its_own_line(relay_url: str, models_url: str) -> None:
    """A relay that answers, one where nothing listens, and a server that is no relay."""
    dead = "ws://127.0.0.1:1"  # port 1: nothing listens there
    not_a_relay = models_url.replace("http://", "ws://").removesuffix("/v1")
    settings = Settings(
        hpc_endpoint_id="x",
        relay_urls=[relay_url, dead, not_a_relay],
        relay_secret=SecretStr("s" * 32),
    )
    rows = check_relays(settings)
    assert [row.part for row in rows] == [f"relay {u}" for u in (relay_url, dead, not_a_relay)]
    live, refused, wrong = rows
    assert live.healthy and live.configured and live.detail.endswith(" ms")
    assert live.detail.startswith(relay_url.replace("ws://", "http://") + "/healthz answered in ")
    assert not refused.healthy and "unreachable" in refused.detail
    assert not wrong.healthy and "HTTP 401" in wrong.detail
    # The HPC tier goes on through the relay that answers; doctor lists all three.
    hpc = check_hpc(settings, rows)
    assert hpc.detail.startswith("1 of 3 relays healthy")
    cloud = {"name": "cloud", "kind": "openai", "model": "m", "base_url": models_url}
    report = check_all(
        Settings(
            judge="keyword",
            database_url="none",
            tiers=[{**cloud, "api_key": "good", "level": "HIGH"}],
            relay_urls=[relay_url, dead],
        )
    )
    assert [(row.part, row.healthy) for row in report[-2:]] == [
        (f"relay {relay_url}", True),
        (f"relay {dead}", False),
    ]


@pytest.mark.loopback
def test_no_relay_answering_makes_the_hpc_tier_unhealthy_with_each_reason() -> None:
    dead = ["ws://127.0.0.1:1", "ws://127.0.0.1:2"]
    settings = Settings(hpc_endpoint_id="x", relay_urls=dead, relay_secret=SecretStr("s" * 32))
    rows = check_relays(settings)
    assert [row.healthy for row in rows] == [False, False]
    hpc = check_hpc(settings, rows)
    assert not hpc.healthy and hpc.detail.startswith("no relay answers: ")
    assert all(f"relay {url}: " in hpc.detail for url in dead)


def test_a_relay_url_that_is_not_a_websocket_url_is_a_clear_line() -> None:
    rows = check_relays(Settings(relay_urls=["relay.example.org"]))
    [row] = rows
    assert not row.healthy and row.part == "relay relay.example.org"
    assert "unknown url type" in row.detail
