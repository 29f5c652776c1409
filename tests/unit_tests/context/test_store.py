"""Where summaries live: LangGraph's SQLite checkpointer, usable from async graphs."""

from __future__ import annotations

import operator
import sqlite3
from typing import Annotated, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langchain_stream.context.store import ConversationSaver, conversation_checkpointer
from langchain_stream.errors import ConfigurationError


class Counter(TypedDict):
    count: Annotated[int, operator.add]


def _graph(saver):
    graph = StateGraph(Counter)
    graph.add_node("step", lambda state: {"count": 1})
    graph.add_edge(START, "step")
    graph.add_edge("step", END)
    return graph.compile(checkpointer=saver)


async def test_async_runs_are_saved_and_read_back_by_another_connection(tmp_path) -> None:
    path = tmp_path / "conversations.db"
    saver = ConversationSaver(sqlite3.connect(path, check_same_thread=False))
    config = {"configurable": {"thread_id": "t1"}}
    graph = _graph(saver)
    assert await graph.ainvoke({"count": 1}, config) == {"count": 2}
    assert await graph.ainvoke({"count": 1}, config) == {"count": 4}  # from the saved state
    history = [c async for c in saver.alist(config)]
    assert len(history) >= 2
    # A new connection (as in a new process) sees the same conversation.
    again = ConversationSaver(sqlite3.connect(path, check_same_thread=False))
    assert _graph(again).get_state(config).values == {"count": 4}
    await again.adelete_thread("t1")
    assert _graph(again).get_state(config).values == {}


def test_the_checkpointer_follows_the_database_url(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'stream.db'}"
    saver = conversation_checkpointer(url)
    assert isinstance(saver, ConversationSaver)
    assert conversation_checkpointer(url) is saver  # one per database per process
    assert (tmp_path / "sub" / "stream.db").exists()
    assert isinstance(conversation_checkpointer(None), InMemorySaver)


def test_a_database_it_cannot_use_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="sqlite"):
        conversation_checkpointer("postgresql+psycopg://db.example/stream")
