"""A conversation's summary is saved with it (in SQLite or PostgreSQL) and extended, even by
another process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, messages_to_dict

from langchain_stream import StreamChatModel
from langchain_stream.config import get_settings
from langchain_stream.context import ConversationSummary, fit
from langchain_stream.context.store import RecentSummaries
from langchain_stream.graph import conversation_graph

from .test_compression import filler

# The next request, in a process of its own: the history on stdin, the routing record out.
NEXT_PROCESS = """
import json, sys
from langchain_core.messages import messages_from_dict
from langchain_stream import StreamChatModel

history = messages_from_dict(json.load(sys.stdin))
config = {"configurable": {"thread_id": sys.argv[1]}}
answer = StreamChatModel(judge="keyword").invoke(history, config=config)
print(json.dumps(answer.response_metadata["routing"]))
"""


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings both processes read: the embedded model with a 1024-token window."""
    for name, value in {
        "STREAM_LOCAL_N_CTX": "1024",
        "STREAM_MAX_TOKENS": "16",
        "STREAM_TEMPERATURE": "0",
        "STREAM_CONTEXT_LOW_WATER": "0.8",
        "STREAM_CONTEXT_NOTE_TOKENS": "20",
    }.items():
        monkeypatch.setenv(name, value)


def saved_summary(thread: str) -> ConversationSummary:
    state = conversation_graph().get_state({"configurable": {"thread_id": thread}})
    return ConversationSummary.model_validate(state.values["summary"])


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_new_process_extends_the_saved_summary(
    small_window: None,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    database: str,
) -> None:
    # This process remembers the summaries it made by the history they cover, and earlier tests
    # summarized these turns too: start from an empty memory, so the summary is created here.
    monkeypatch.setattr(fit, "recent_summaries", RecentSummaries())
    if database == "postgresql":
        # Both processes save the conversation in PostgreSQL, as servers on several machines do.
        monkeypatch.setenv("STREAM_DATABASE_URL", request.getfixturevalue("postgres_url"))
        get_settings.cache_clear()
    assert str(get_settings().database_url).startswith(database)
    thread = f"conversation-{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread}}
    history = [
        SystemMessage("You are a helpful assistant. Answer briefly."),
        *filler(10, start=12),
        HumanMessage("What is 2 + 2?"),
    ]
    first = StreamChatModel(judge="keyword").invoke(history, config=config)
    record = first.response_metadata["routing"]
    assert record["tier"] == "local" and record["conversation"] == thread
    assert record["compression"]["summary"] == "created"
    saved = saved_summary(thread)
    assert saved.turns == record["compression"]["summary_turns"] > 0

    history += [AIMessage(first.text), *filler(6, start=22), HumanMessage("And what is 3 + 3?")]
    done = subprocess.run(
        [sys.executable, "-c", NEXT_PROCESS, thread],
        input=json.dumps(messages_to_dict(history)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    compression = json.loads(done.stdout.strip().splitlines()[-1])["compression"]
    assert compression["summary"] == "extended"
    assert compression["summary_turns"] > saved.turns

    extended = saved_summary(thread)
    assert extended.created_at == saved.created_at  # the same summary, not a new one
    assert extended.extensions == saved.extensions + 1
    assert extended.covered > saved.covered and extended.turns > saved.turns
    if extended.compactions == saved.compactions:
        assert extended.notes[: len(saved.notes)] == saved.notes  # old notes kept as they were
