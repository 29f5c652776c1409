"""Five tiers from a TOML ``[[tiers]]`` list, all real: the embedded model in process
(``laptop``), three OpenAI-compatible llama.cpp servers on loopback (``gpu-box``,
``cloud-mini``, ``cloud-large``) and the local HPC endpoint (``hpc``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool

from langchain_stream import StreamChatModel
from langchain_stream.config import get_settings
from langchain_stream.hpc.local_endpoint import shared_local_endpoint
from tests.integration_tests.cloud_server import CLOUD_KEY, CloudServer
from tests.integration_tests.test_cli import run_cli

pytestmark = pytest.mark.timeout(600)

LOW = "What is the capital of France?"
MEDIUM = "Explain how a hash map works."
HIGH = "Prove that the square root of 2 is irrational."

SERVED = ("gpu-box", "cloud-mini", "cloud-large")


def five_tiers(urls: dict[str, str]) -> str:
    return f"""
judge = "keyword"
max_tokens = 12
temperature = 0.0
health_cache_s = 3600.0
hpc_local_workers = 1

[[tiers]]
name = "laptop"
kind = "llama_cpp"
level = "LOW"
privacy = "institutional"
capabilities = ["tools", "structured_output"]

[[tiers]]
name = "gpu-box"
kind = "openai"
base_url = "{urls["gpu-box"]}"
api_key = "{CLOUD_KEY}"
model = "gpu-box-model"
level = "MEDIUM"
capabilities = ["structured_output"]
context_window = 2048
cost_per_million_tokens = {{ input = 0.0, output = 0.0 }}

[[tiers]]
name = "hpc"
kind = "hpc"
endpoint_id = "local"
level = "MEDIUM"
capabilities = ["tools", "structured_output"]

[[tiers]]
name = "cloud-mini"
kind = "openai"
base_url = "{urls["cloud-mini"]}"
api_key = "{CLOUD_KEY}"
model = "cloud-mini-model"
level = "MEDIUM"
privacy = "external"
capabilities = ["tools", "structured_output", "vision"]
cost_per_million_tokens = {{ input = 0.15, output = 0.6 }}

[[tiers]]
name = "cloud-large"
kind = "openai"
base_url = "{urls["cloud-large"]}"
api_key = "{CLOUD_KEY}"
model = "cloud-large-model"
level = "HIGH"
privacy = "external"
capabilities = ["tools", "structured_output", "vision"]
cost_per_million_tokens = {{ input = 2.5, output = 10.0 }}
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CloudServer]]:
    logs = tmp_path_factory.mktemp("tier-servers")
    started: dict[str, CloudServer] = {}
    try:
        for name in SERVED:
            started[name] = CloudServer(logs / f"{name}.log")
        yield started
    finally:
        for server in started.values():
            if server.process.poll() is None:
                server.close()


@pytest.fixture(scope="module")
def config_file(servers: dict[str, CloudServer], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tier-config") / "stream.toml"
    path.write_text(five_tiers({name: server.url for name, server in servers.items()}))
    return path


@pytest.fixture
def router(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> StreamChatModel:
    """A router on the five tiers; the HPC endpoint is started first (a cold endpoint is
    skipped by the health policy, which is not what these tests are about)."""
    monkeypatch.setenv("STREAM_CONFIG", str(config_file))
    get_settings.cache_clear()
    shared_local_endpoint().start()
    return StreamChatModel()


def routed(router: StreamChatModel, query: Any, **kwargs: Any) -> dict[str, Any]:
    merged: AIMessageChunk | None = None
    for chunk in router.stream(query, **kwargs):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None
    return merged.response_metadata["routing"]


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}"


# The routing table of the five tiers (tier names, levels and prices as in five_tiers):
# (case, query, tools bound, call options, expected tier, expected reason).
ROUTES = [
    ("LOW", LOW, False, {}, "laptop", "judge"),
    ("MEDIUM", MEDIUM, False, {}, "gpu-box", "judge"),  # free, MEDIUM, first in the file
    ("HIGH", HIGH, False, {}, "cloud-large", "judge"),  # the only HIGH tier
    ("tools", MEDIUM, True, {}, "hpc", "judge"),  # gpu-box has no tool calling
    ("institutional", HIGH, False, {"privacy": "institutional"}, "gpu-box", "privacy"),
]
# What each OpenAI-compatible tier's server was asked for.
SERVED_MODELS = {name: f"{name}-model" for name in SERVED}


@pytest.mark.parametrize(
    ("query", "tools", "options", "tier", "reason"),
    [case[1:] for case in ROUTES],
    ids=[case[0] for case in ROUTES],
)
def test_each_request_goes_to_the_expected_tier(
    router: StreamChatModel,
    query: str,
    tools: bool,
    options: dict[str, Any],
    tier: str,
    reason: str,
) -> None:
    model: Any = router.bind_tools([get_weather]) if tools else router
    record = routed(model, query, **options)
    assert (record["tier"], record["reason"]) == (tier, reason), record
    assert [t["tier"] for t in record["tiers_tried"]] == [tier]
    assert record["usage"]["output_tokens"] > 0
    if tier in SERVED_MODELS:
        assert record["model"] == SERVED_MODELS[tier]
    if tier == "cloud-large":  # priced by its own cost_per_million_tokens
        usage = record["usage"]
        price = usage["input_tokens"] * 2.5 + usage["output_tokens"] * 10.0
        assert record["cost_usd"] == pytest.approx(price / 1_000_000)
    elif tier != "cloud-mini":
        assert record["cost_usd"] == 0.0
    if tools:
        assert "capabilities: gpu-box lacks tools" in record["policies"]
    if reason == "privacy":
        assert "privacy: institutional mode: cloud-mini, cloud-large excluded" in record["policies"]


def test_the_server_lists_and_pins_tiers_by_name(router: StreamChatModel) -> None:
    from fastapi.testclient import TestClient

    from langchain_stream.server.app import create_app

    with TestClient(create_app(router)) as client:
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert models == ["stream-auto", *(f"stream-{n}" for n in get_settings().configured_tiers)]
        assert "stream-cloud-mini" in models
        body = {
            "model": "stream-cloud-mini",
            "messages": [{"role": "user", "content": HIGH}],
            "max_tokens": 8,
        }
        answer = client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["routing"]["tier"] == "cloud-mini"
        assert answer.json()["routing"]["reason"] == "pin"
        unknown = client.post("/v1/chat/completions", json={**body, "model": "stream-cloud"})
        assert unknown.status_code == 404
        assert "stream-gpu-box" in unknown.json()["error"]["message"]


def test_stream_tiers_lists_them_and_which_are_reachable(config_file: Path) -> None:
    done = run_cli("tiers", "--json", env={"STREAM_CONFIG": str(config_file)})
    assert done.returncode == 0, done.stderr
    tiers = {t["name"]: t for t in json.loads(done.stdout.strip().splitlines()[-1])["tiers"]}
    assert list(tiers) == ["laptop", "gpu-box", "hpc", "cloud-mini", "cloud-large"]
    assert all(t["reachable"] for t in tiers.values()), tiers
    assert tiers["gpu-box"]["capabilities"] == ["structured_output"]
    assert (tiers["cloud-large"]["level"], tiers["cloud-large"]["privacy"]) == ("HIGH", "external")
    assert CLOUD_KEY not in done.stdout
    doctor = run_cli("doctor", "--json", env={"STREAM_CONFIG": str(config_file)})
    assert doctor.returncode == 0, doctor.stderr
    rows = {row["part"]: row for row in json.loads(doctor.stdout.strip().splitlines()[-1])}
    assert rows["tier gpu-box (openai, MEDIUM, institutional)"]["healthy"] is True
    assert rows["tier cloud-large (openai, HIGH, external)"]["healthy"] is True
    assert "local endpoint" in rows["tier hpc (hpc, MEDIUM, institutional)"]["detail"]


def test_fallback_walks_the_configured_order_when_servers_stop(
    servers: dict[str, CloudServer], config_file: Path, router: StreamChatModel
) -> None:
    # Runs last in this module: it stops two of the servers.
    servers["cloud-large"].close()
    servers["gpu-box"].close()
    record = routed(router, HIGH)
    tried = record["tiers_tried"]
    # HIGH: cloud-large, then the MEDIUM tiers (free first, in file order), then laptop.
    assert [t["tier"] for t in tried] == ["cloud-large", "gpu-box", "hpc"]
    assert all("Connection" in (t["error"] or "") for t in tried[:2]), tried
    assert (record["tier"], record["reason"]) == ("hpc", "fallback")
    done = run_cli("tiers", "--json", env={"STREAM_CONFIG": str(config_file)})
    assert done.returncode == 0, done.stderr
    reachable = {t["name"]: t["reachable"] for t in json.loads(done.stdout)["tiers"]}
    assert reachable == {
        "laptop": True,
        "gpu-box": False,
        "hpc": True,
        "cloud-mini": True,
        "cloud-large": False,
    }
