"""The ledger, audit log, conversation state and conversation summaries on a real PostgreSQL
server (127.0.0.1)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langchain_stream.context import conversation_checkpointer
from langchain_stream.context.postgres import PostgresConversationSaver, postgres_checkpointer
from langchain_stream.errors import ConfigurationError
from langchain_stream.policies.store import PolicyStore
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.postgres import PostgresServer
from tests.unit_tests.context.test_store import counter_graph
from tests.unit_tests.policies.test_store import entry

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from langchain_stream.policies.store import PolicyStore
from tests.unit_tests.policies.test_store import entry

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()  # both writers open the fresh database and write at the same moment
store = PolicyStore(url)
for i in range(count):
    store.record_answer(entry(user=name, cost_usd=0.01, conversation="shared"))
    store.record_failure(entry(user=name, tier="", conversation=None))
print("done", flush=True)
"""

CONVERSATION_WRITER = """
import sys
import langchain_stream.context.postgres  # loaded before the signal: the setups run at once
from langchain_stream.context import conversation_checkpointer
from tests.unit_tests.context.test_store import counter_graph

url, name, turns = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()  # both set the fresh database up at the same moment
graph = counter_graph(conversation_checkpointer(url))
for _ in range(turns):
    graph.invoke({"count": 1}, {"configurable": {"thread_id": name}})
"""


def test_ledger_and_audit_log_round_trip(postgres_url: str) -> None:
    store = PolicyStore(postgres_url)
    now = time.time()
    store.record_answer(entry(cost_usd=0.25, sensitive=["email"]), now=now)
    store.record_answer(entry(tier="local", cost_usd=0.0, cloud_equivalent_usd=0.1), now=now)
    store.record_answer(entry(cost_usd=3.0), now=now - 40 * 86400)  # an earlier month
    store.record_failure(entry(tier="", policies=["health: cloud down"]), now=now)
    assert store.spent_usd("alice", now=now) == (0.25, 0.25)
    audit = store.audit_entries()
    assert [row["outcome"] for row in audit] == ["answered"] * 3 + ["failed"]
    assert audit[0]["sensitive"] == ["email"]
    assert audit[0]["tiers_tried"] == [{"tier": "cloud", "error": None}]
    assert audit[-1]["policies"] == ["health: cloud down"] and audit[-1]["tier"] is None
    by_tier = {(row["day"], row["tier"]): row for row in store.spend_by_day_and_tier()}
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    assert by_tier[(today, "local")]["cloud_equivalent_usd"] == pytest.approx(0.1)
    assert by_tier[(today, "cloud")]["requests"] == 1
    assert store.conversation("c1").floor_tier == "cloud"  # local later never lowers it
    assert store.conversation("c1").private
    store.reset_conversation("c1")
    assert store.conversation("c1").floor_tier is None


def test_ledger_survives_a_database_restart(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = PolicyStore(postgres_url)
    store.record_answer(entry(cost_usd=1.25))
    postgres_server.stop()
    postgres_server.start()
    # The same store (its pooled connections died with the server) and a new process read it.
    assert store.spent_usd("alice")[0] == 1.25
    code = (
        "from langchain_stream.policies.store import PolicyStore;"
        f"print(PolicyStore({postgres_url!r}).spent_usd('alice')[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60 * TIME_UNIT_S,
    )
    assert float(out.stdout) == 1.25


def _run_at_once(script: str, url: str, count: str) -> None:
    """Run ``script`` as two processes (alice and bob) released together once both are ready."""
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, name, count],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,  # the writer imports the test helpers
        )
        for name in ("alice", "bob")
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        for writer in writers:
            _, err = writer.communicate(timeout=60 * TIME_UNIT_S)
            assert writer.returncode == 0, err
    finally:
        for writer in writers:
            writer.kill()


def test_two_processes_write_one_fresh_database_at_once(postgres_url: str) -> None:
    count = 40
    _run_at_once(WRITER, postgres_url, str(count))
    store = PolicyStore(postgres_url)
    assert store.spent_usd("alice")[0] == pytest.approx(count * 0.01)
    assert store.spent_usd("bob")[0] == pytest.approx(count * 0.01)
    outcomes = [row["outcome"] for row in store.audit_entries(limit=10 * count)]
    assert outcomes.count("answered") == outcomes.count("failed") == 2 * count
    assert store.conversation("shared").floor_tier == "cloud"


async def test_conversations_are_saved_and_survive_a_fresh_checkpointer_and_a_restart(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    saver = conversation_checkpointer(postgres_url)
    assert isinstance(saver, PostgresConversationSaver)
    assert conversation_checkpointer(postgres_url) is saver  # one per database per process
    config = {"configurable": {"thread_id": "t1"}}
    graph = counter_graph(saver)
    assert await graph.ainvoke({"count": 1}, config) == {"count": 2}
    assert await graph.ainvoke({"count": 1}, config) == {"count": 4}  # from the saved state
    assert len([c async for c in saver.alist(config)]) >= 2
    # A checkpointer of its own (as in a new process) sees the same conversation.
    fresh = postgres_checkpointer(postgres_url)
    assert counter_graph(fresh).get_state(config).values == {"count": 4}
    # The process's checkpointer outlives a server restart (its pooled connection does not).
    postgres_server.stop()
    postgres_server.start()
    assert await graph.ainvoke({"count": 1}, config) == {"count": 6}
    await fresh.adelete_thread("t1")
    assert graph.get_state(config).values == {}
    fresh.conn.close()


def test_two_processes_set_up_one_fresh_checkpointer_database_at_once(postgres_url: str) -> None:
    turns = 5
    _run_at_once(CONVERSATION_WRITER, postgres_url, str(turns))
    saver = postgres_checkpointer(postgres_url)
    graph = counter_graph(saver)
    for name in ("alice", "bob"):
        state = graph.get_state({"configurable": {"thread_id": name}})
        assert state.values == {"count": 2 * turns}
    saver.conn.close()


def test_an_unreachable_conversation_database_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    url = f"postgresql+psycopg://stream:secret@127.0.0.1:{port}/stream"
    with pytest.raises(ConfigurationError, match="cannot open the conversation database") as info:
        conversation_checkpointer(url)
    assert "secret" not in str(info.value)
