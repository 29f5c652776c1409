"""Routing policies end to end, with ChatOpenAI against a real OpenAI-compatible server on
loopback (llama.cpp's server on the embedded model, enforcing an API key) as the cloud tier,
and the HPC tier on a local endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.context import conversation_checkpointer
from langchain_stream.errors import MidStreamError
from langchain_stream.hpc import ChatHPC
from langchain_stream.policies.store import PolicyStore
from langchain_stream.tiers.cloud import build_cloud_model
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.cloud_server import CLOUD_KEY, CloudServer, free_port
from tests.integration_tests.hpc.helpers import shared_endpoint, shutdown_shared_endpoint

HIGH = "Prove that there are infinitely many prime numbers."
MEDIUM = "Explain how a hash map works."
LOW = "What is the capital of France?"


@pytest.fixture(scope="module")
def cloud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudServer]:
    server = CloudServer(tmp_path_factory.mktemp("cloud") / "access.log")
    yield server
    server.close()


def cloud_model(server: CloudServer) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",  # priced in the built-in table, so costs are real numbers
        base_url=server.url,
        api_key=CLOUD_KEY,
        max_retries=0,
        max_tokens=24,
        temperature=0,
        stream_usage=True,
    )


def router(local_model: ChatLocal, server: CloudServer, **fields: Any) -> StreamChatModel:
    return StreamChatModel(local=local_model, cloud=cloud_model(server), judge="keyword", **fields)


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    out = chunks[0]
    for chunk in chunks[1:]:
        out += chunk
    return out


def test_high_goes_to_the_cloud_with_its_cost(local_model, cloud_server) -> None:
    before = cloud_server.completions_received()
    chunks = list(router(local_model, cloud_server).stream(HIGH))
    record = merged(chunks).response_metadata["routing"]
    assert chunks[0].response_metadata["routing"]["tier"] == "cloud"
    assert record["complexity"] == "HIGH"
    assert record["model"] == "gpt-4o-mini"
    assert record["cost_usd"] > 0
    assert record["cost_usd"] == record["cloud_equivalent_usd"]
    assert cloud_server.completions_received() == before + 1


def test_sensitive_request_never_reaches_the_cloud(local_model, cloud_server) -> None:
    model = router(local_model, cloud_server)
    before = cloud_server.completions_received()
    result = model.invoke(f"{HIGH} Send the proof to jane.doe@uni.edu please.")
    record = result.response_metadata["routing"]
    assert record["tier"] == "local"
    assert record["reason"] == "privacy"
    assert record["sensitive"] == ["email"]
    assert cloud_server.completions_received() == before  # asserted at the server
    audit = model.policy_engine().store.audit_entries()[-1]
    assert (audit["tier"], audit["reason"], audit["sensitive"]) == ("local", "privacy", ["email"])
    assert "jane" not in str(audit)  # the audit log keeps kinds, never the data


def test_institutional_mode_never_uses_the_cloud(local_model, cloud_server) -> None:
    before = cloud_server.completions_received()
    model = router(local_model, cloud_server, privacy="institutional")
    assert model.invoke(HIGH).response_metadata["routing"]["tier"] == "local"
    assert model.invoke(HIGH, model="stream-cloud").response_metadata["routing"]["tier"] == "local"
    assert cloud_server.completions_received() == before


def test_sensitive_data_pins_the_rest_of_the_conversation(local_model, cloud_server) -> None:
    model = router(local_model, cloud_server)
    before = cloud_server.completions_received()
    model.invoke("My phone is +1 617-555-0134, remember it.", conversation_id="c-private")
    later = model.invoke(HIGH, conversation_id="c-private").response_metadata["routing"]
    assert later["tier"] == "local"
    assert "privacy: the conversation contained sensitive data: cloud excluded" in later["policies"]
    assert cloud_server.completions_received() == before


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_stickiness_within_a_langgraph_thread(
    local_model, cloud_server, monkeypatch: pytest.MonkeyPatch, request, database: str
) -> None:
    from langchain_stream.config import get_settings

    if database == "postgresql":
        monkeypatch.setenv("STREAM_DATABASE_URL", request.getfixturevalue("postgres_url"))
        get_settings.cache_clear()
    model = router(local_model, cloud_server)
    config = {"configurable": {"thread_id": "thread-sticky"}}
    first = model.invoke(HIGH, config=config).response_metadata["routing"]
    assert first["tier"] == "cloud"
    assert first["conversation"] == "thread-sticky"
    follow_up = model.invoke(LOW, config=config).response_metadata["routing"]
    assert (follow_up["complexity"], follow_up["tier"], follow_up["reason"]) == (
        "LOW",
        "cloud",
        "sticky",
    )
    # The thread's checkpoint and its routing state are in the configured database.
    url = str(get_settings().database_url)
    assert url.startswith("postgresql" if database == "postgresql" else "sqlite")
    assert conversation_checkpointer(url).get_tuple(config) is not None
    assert PolicyStore(url).conversation("thread-sticky").floor_tier == "cloud"
    reset = model.invoke(LOW, config=config, reset_conversation=True)
    assert reset.response_metadata["routing"]["tier"] == "local"


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_budget_exhaustion_mid_day_degrades_and_survives_a_restart(
    local_model, cloud_server, monkeypatch: pytest.MonkeyPatch, request, database: str
) -> None:
    if database == "postgresql":
        monkeypatch.setenv("STREAM_DATABASE_URL", request.getfixturevalue("postgres_url"))
    monkeypatch.setenv("STREAM_BUDGET_DAILY_USD", "0.000001")
    from langchain_stream.config import get_settings

    get_settings.cache_clear()
    model = router(local_model, cloud_server, user="alice")
    spent = model.invoke(HIGH).response_metadata["routing"]
    assert spent["tier"] == "cloud"  # under the cap until this answer is paid for
    capped = model.invoke(HIGH).response_metadata["routing"]
    assert capped["tier"] == "local"  # no HPC configured: HIGH degrades to the next tier
    assert capped["reason"] == "budget"
    assert capped["policies"][0].startswith("budget: daily cap $0.000001 reached")
    other_user = model.invoke(HIGH, user="bob").response_metadata["routing"]
    assert other_user["tier"] == "cloud"  # caps are per user
    # A new router (a restarted process) reads the same ledger.
    restarted = router(local_model, cloud_server, user="alice")
    assert restarted.invoke(HIGH).response_metadata["routing"]["reason"] == "budget"
    url = str(get_settings().database_url)
    assert PolicyStore(url).spent_usd("alice")[0] == pytest.approx(spent["cost_usd"])


def test_costs_command_reports_spend_and_savings(local_model, cloud_server) -> None:
    model = router(local_model, cloud_server)
    model.invoke(HIGH)
    model.invoke(LOW)
    from langchain_stream.config import get_settings

    done = subprocess.run(
        [sys.executable, "-m", "langchain_stream.cli", "costs", "--json"],
        capture_output=True,
        text=True,
        timeout=60 * TIME_UNIT_S,
        env={
            **os.environ,
            "STREAM_DATABASE_URL": str(get_settings().database_url),
            "STREAM_CLOUD_MODEL": "gpt-4o-mini",
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    tiers = {row["tier"] for row in report["by_day_and_tier"]}
    assert tiers == {"cloud", "local"}
    assert report["total_cost_usd"] > 0
    assert report["savings_usd"] > 0  # the local answer cost nothing but had a cloud price


class FaultAt(BaseChatModel):
    """A real tier model whose stream breaks at chunk ``at`` (``-1``: after the last chunk) —
    a fault that cannot be caused on demand in a real server."""

    inner: BaseChatModel
    at: int

    @property
    def _llm_type(self) -> str:
        return "fault-injection"

    @property
    def model_name(self) -> str:
        return getattr(self.inner, "model_name", "fault")

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _stream(
        self, messages, stop=None, run_manager=None, **kwargs
    ) -> Iterator[ChatGenerationChunk]:
        index = -1
        for index, chunk in enumerate(self.inner.stream(messages, stop=stop, **kwargs)):
            if index == self.at:
                raise ConnectionError(f"injected fault at chunk {index}")
            yield ChatGenerationChunk(message=chunk)
        raise ConnectionError(f"injected fault after chunk {index}")

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs):
        index = -1
        async for chunk in self.inner.astream(messages, stop=stop, **kwargs):
            index += 1
            if index == self.at:
                raise ConnectionError(f"injected fault at chunk {index}")
            yield ChatGenerationChunk(message=chunk)
        raise ConnectionError(f"injected fault after chunk {index}")


@pytest.fixture(scope="module")
def hpc_tier() -> Iterator[ChatHPC]:
    """ChatHPC on the HPC tests' shared local endpoint (one worker with the embedded model,
    and its relay), started once for this module."""
    endpoint = shared_endpoint()
    endpoint.start()
    try:
        yield ChatHPC(
            executor=endpoint,
            temperature=0.0,
            max_tokens=24,
            first_token_timeout_s=60 * TIME_UNIT_S,
            idle_timeout_s=10 * TIME_UNIT_S,
        )
    finally:
        shutdown_shared_endpoint()


# The query that goes to each tier first, and where a failure before its first token falls back
# to among the configured tiers (docs/design.md#request-path: LOW local→HPC→cloud, MEDIUM
# HPC→cloud→local, HIGH cloud→HPC→local).
FAULT_CASES = {"local": (LOW, "cloud"), "cloud": (HIGH, "local"), "hpc": (MEDIUM, "cloud")}


@pytest.mark.parametrize("tier", ["local", "cloud", "hpc"])
@pytest.mark.parametrize("at", [0, 3, -1], ids=["chunk0", "chunk3", "end"])
def test_fault_injection_event_sequences(
    local_model, cloud_server, request, tier: str, at: int
) -> None:
    healthy: dict[str, BaseChatModel] = {"local": local_model, "cloud": cloud_model(cloud_server)}
    if tier == "hpc":  # started only for its own cases
        healthy["hpc"] = request.getfixturevalue("hpc_tier")
    tiers = {**healthy, tier: FaultAt(inner=healthy[tier], at=at)}
    model = StreamChatModel(**tiers, judge="keyword", tier=None)
    query, fallback = FAULT_CASES[tier]
    chunks: list[AIMessageChunk] = []
    if at == 0:
        # Before the first token: transparent fallback to the next tier in order.
        chunks = list(model.stream(query))
        record = merged(chunks).response_metadata["routing"]
        assert record["tiers_tried"][0]["tier"] == tier
        assert "injected fault at chunk 0" in record["tiers_tried"][0]["error"]
        assert record["reason"] == "fallback"
        assert record["tier"] == fallback
        assert merged(chunks).text  # the fallback tier's whole answer
        return
    with pytest.raises(MidStreamError) as info:
        for chunk in model.stream(query):
            chunks.append(chunk)
    # Tokens, then one explicit event, then the error; never a second tier's text.
    assert chunks[0].response_metadata["routing"]["tier"] == tier
    assert chunks[-1].response_metadata["routing_event"]["type"] == "mid_stream_failure"
    assert sum("routing_event" in c.response_metadata for c in chunks) == 1
    assert info.value.partial_text == "".join(c.text for c in chunks)
    assert all(c.response_metadata.get("routing", {}).get("tier", tier) == tier for c in chunks)


def test_breaker_opens_after_repeated_failures(local_model, cloud_server) -> None:
    down = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        api_key="sk-x",
        max_retries=0,
        timeout=5,
    )
    model = StreamChatModel(local=local_model, cloud=down, judge="keyword")
    for _ in range(3):
        record = model.invoke(HIGH).response_metadata["routing"]
        assert [t["tier"] for t in record["tiers_tried"]] == ["cloud", "local"]
    skipped = model.invoke(HIGH).response_metadata["routing"]
    assert [t["tier"] for t in skipped["tiers_tried"]] == ["local"]  # the cloud was not tried
    assert skipped["reason"] == "health"
    assert "health: cloud circuit open after repeated failures" in skipped["policies"]


def built_cloud(url: str, key: str) -> BaseChatModel:
    """The cloud tier as the settings build it (with its readiness check)."""
    settings = Settings(cloud_model="gpt-4o-mini", cloud_base_url=url, cloud_api_key=key)
    return build_cloud_model(settings)


def readiness(model: StreamChatModel, tier: str, until: Callable[[str | None], bool]) -> str | None:
    """The router's cached readiness of ``tier``, polled (checks run in the background)."""
    health, tier_model = model.policy_engine().health, model.tier_models()[tier]
    deadline = time.monotonic() + 30 * TIME_UNIT_S
    while not until(reason := health.not_ready(tier, tier_model)):
        assert time.monotonic() < deadline, f"{tier} readiness stayed {reason!r}"
        time.sleep(0.05)
    return reason


async def test_cloud_readiness_asks_the_api_for_its_models(cloud_server) -> None:
    before = cloud_server.completions_received()
    assert await built_cloud(cloud_server.url, CLOUD_KEY).acheck_ready() is None
    wrong = await built_cloud(cloud_server.url, "sk-wrong").acheck_ready()
    assert wrong == f"cloud API at {cloud_server.url} rejected the API key (HTTP 401)"
    closed = f"http://127.0.0.1:{free_port()}/v1"
    down = await built_cloud(closed, CLOUD_KEY).acheck_ready()
    assert down is not None and down.startswith(f"cloud API at {closed} is unreachable: ")
    assert cloud_server.completions_received() == before  # a check costs no completion


def test_a_cloud_that_rejects_the_key_is_skipped_with_the_reason(local_model, cloud_server) -> None:
    model = StreamChatModel(
        local=local_model, cloud=built_cloud(cloud_server.url, "sk-revoked"), judge="keyword"
    )
    reason = readiness(model, "cloud", until=lambda reason: reason is not None)
    assert reason == f"cloud API at {cloud_server.url} rejected the API key (HTTP 401)"
    before = cloud_server.completions_received()
    record = model.invoke(HIGH).response_metadata["routing"]
    assert (record["complexity"], record["tier"], record["reason"]) == ("HIGH", "local", "health")
    assert [t["tier"] for t in record["tiers_tried"]] == ["local"]  # the cloud was not tried
    assert f"health: {reason}" in record["policies"]
    assert cloud_server.completions_received() == before
    audit = model.policy_engine().store.audit_entries()[-1]
    assert f"health: {reason}" in audit["policies"]
