"""The chat page's files and data routes, in process (no model is loaded).

Conversations are written where the router writes them: answers in the policy store's ledger
(``PolicyStore.record_answer``), messages and summary in the router graph's checkpointer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_stream.chat_model import StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.context.summary import ConversationSummary
from langchain_stream.graph import conversation_graph
from langchain_stream.policies.store import AnswerEntry
from langchain_stream.server import KeyStore, create_app
from langchain_stream.server.auth import hash_key, parse_keys_file
from langchain_stream.server.chat_page import WEB_DIR

KEY = "sk-page-" + "6" * 32
OTHER = "sk-other-" + "7" * 32
AUTH = {"Authorization": f"Bearer {KEY}"}
OTHER_AUTH = {"Authorization": f"Bearer {OTHER}"}
DATA_ROUTES = ["/v1/stream/status", "/v1/stream/conversations", "/v1/stream/conversations/x"]


@pytest.fixture
def model() -> StreamChatModel:
    return StreamChatModel()


@pytest.fixture
async def client(model: StreamChatModel, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"{hash_key(KEY)} name=alice\n{hash_key(OTHER)} name=bob\n")
    settings = Settings(rate_limit_rpm=0)
    keys = KeyStore(parse_keys_file(keys_file))
    app = create_app(model, settings=settings, keys=keys, langserve=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def answered(model: StreamChatModel, user: str, conversation: str, tier: str = "local") -> None:
    """One answer in the ledger, as the router records it."""
    store = model.policy_engine().store
    assert store is not None
    store.record_answer(
        AnswerEntry(
            user=user,
            conversation=conversation,
            privacy="standard",
            sensitive=[],
            complexity="LOW",
            tier=tier,
            reason="judge",
            model="smollm2",
            input_tokens=12,
            output_tokens=5,
            cost_usd=0.0,
            cloud_equivalent_usd=0.00002,
            policies=[],
            tiers_tried=[{"tier": tier, "error": None}],
        )
    )


def saved(conversation: str, *messages: HumanMessage | AIMessage, summary: dict | None = None):
    """The conversation's messages (and summary) in the router graph's checkpointer."""
    values: dict = {"messages": list(messages)}
    if summary is not None:
        values["summary"] = summary
    conversation_graph().update_state({"configurable": {"thread_id": conversation}}, values)


async def test_the_page_and_its_files_need_no_key_and_carry_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    for path in ["/", "/web/chat.js", "/web/chat.css", "/web/vendor/marked.esm.js"]:
        response = await client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    page = (await client.get("/")).text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # no inline script
    # Data routes carry no page policy, and nothing outside the web directory is served.
    assert "content-security-policy" not in (await client.get("/healthz")).headers
    assert (await client.get("/web/%2e%2e/app.py")).status_code == 404


@pytest.mark.parametrize("path", DATA_ROUTES)
async def test_the_data_routes_need_a_key(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 401
    wrong = await client.get(path, headers={"Authorization": "Bearer sk-nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


async def test_status_names_each_tier_the_privacy_mode_and_the_budget(
    client: httpx.AsyncClient, model: StreamChatModel
) -> None:
    answered(model, "alice", "c1", tier="cloud")
    status = (await client.get("/v1/stream/status", headers=AUTH)).json()
    assert [t["tier"] for t in status["tiers"]] == list(model.tier_models())
    assert all(t["reachable"] for t in status["tiers"])
    assert status["privacy"] == "standard"
    assert status["models"][0] == "stream-auto"
    assert status["budget"] == {"daily_usd": None, "spent_today_usd": 0.0}


async def test_a_key_lists_reads_and_deletes_only_its_own_conversations(
    client: httpx.AsyncClient, model: StreamChatModel
) -> None:
    summary = ConversationSummary(notes=["The user asked about sums."], turns=1, tokens=9)
    saved(
        "mine",
        HumanMessage("What is 2 + 2?"),
        AIMessage("4"),
        HumanMessage("And 3 + 3?"),
        AIMessage("6"),
        summary=summary.model_dump(),
    )
    answered(model, "alice", "mine")
    answered(model, "alice", "mine")
    saved("theirs", HumanMessage("Hello"), AIMessage("Hi"))
    answered(model, "bob", "theirs")
    answered(model, "bob", "mine")  # naming alice's conversation does not make it bob's

    bobs = (await client.get("/v1/stream/conversations", headers=OTHER_AUTH)).json()["data"]
    assert [c["id"] for c in bobs] == ["theirs"]
    intruder = await client.get("/v1/stream/conversations/mine", headers=OTHER_AUTH)
    assert intruder.status_code == 404

    listed = (await client.get("/v1/stream/conversations", headers=AUTH)).json()["data"]
    assert [(c["id"], c["title"], c["answers"]) for c in listed] == [("mine", "What is 2 + 2?", 2)]
    conversation = (await client.get("/v1/stream/conversations/mine", headers=AUTH)).json()
    assert [(m["role"], m["content"]) for m in conversation["messages"]] == [
        ("user", "What is 2 + 2?"),
        ("assistant", "4"),
        ("user", "And 3 + 3?"),
        ("assistant", "6"),
    ]
    assert conversation["messages"][1]["ledger"]["tier"] == "local"
    assert conversation["summary"]["notes"] == ["The user asked about sums."]

    for method in ("GET", "DELETE"):
        foreign = await client.request(method, "/v1/stream/conversations/theirs", headers=AUTH)
        assert foreign.status_code == 404
        assert foreign.json()["error"]["code"] == "conversation_not_found"
    deleted = await client.delete("/v1/stream/conversations/mine", headers=AUTH)
    assert deleted.json() == {"id": "mine", "deleted": True}
    assert (await client.get("/v1/stream/conversations", headers=AUTH)).json()["data"] == []
    gone = await client.get("/v1/stream/conversations/mine", headers=AUTH)
    assert gone.status_code == 404
    # The ledger keeps all four answers (alice's two, bob's two); bob's conversation stays.
    store = model.policy_engine().store
    assert store is not None
    assert [r["requests"] for r in store.spend_by_day_and_tier() if r["tier"] == "local"] == [4]
    assert (await client.get("/v1/stream/conversations/theirs", headers=OTHER_AUTH)).is_success


def test_the_vendored_files_are_those_their_versions_file_names() -> None:
    vendor = WEB_DIR / "vendor"
    rows = [
        line.split()
        for line in (vendor / "VERSIONS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {row[0] for row in rows} == {"marked.esm.js", "purify.min.js"}
    for row in rows:
        digest = hashlib.sha256((vendor / row[0]).read_bytes()).hexdigest()
        assert row[-1] == digest, f"{row[0]} differs from the copy VERSIONS records"
