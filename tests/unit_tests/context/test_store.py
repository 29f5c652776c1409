"""Where summaries live: LangGraph's SQLite (or PostgreSQL) checkpointer, usable from async
graphs."""

from __future__ import annotations

import operator
import sqlite3
from typing import Annotated, TypedDict

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from psycopg.conninfo import conninfo_to_dict

from langchain_stream.context.postgres import libpq_conninfo
from langchain_stream.context.store import ConversationSaver, conversation_checkpointer
from langchain_stream.errors import ConfigurationError


class Counter(TypedDict):
    count: Annotated[int, operator.add]


def counter_graph(saver: BaseCheckpointSaver) -> CompiledStateGraph:
    """A graph whose state counts its inputs and runs, saved by ``saver``."""
    graph = StateGraph(Counter)
    graph.add_node("step", lambda state: {"count": 1})
    graph.add_edge(START, "step")
    graph.add_edge("step", END)
    return graph.compile(checkpointer=saver)


async def test_async_runs_are_saved_and_read_back_by_another_connection(tmp_path) -> None:
    path = tmp_path / "conversations.db"
    saver = ConversationSaver(sqlite3.connect(path, check_same_thread=False))
    config = {"configurable": {"thread_id": "t1"}}
    graph = counter_graph(saver)
    assert await graph.ainvoke({"count": 1}, config) == {"count": 2}
    assert await graph.ainvoke({"count": 1}, config) == {"count": 4}  # from the saved state
    history = [c async for c in saver.alist(config)]
    assert len(history) >= 2
    # A new connection (as in a new process) sees the same conversation.
    again = ConversationSaver(sqlite3.connect(path, check_same_thread=False))
    assert counter_graph(again).get_state(config).values == {"count": 4}
    await again.adelete_thread("t1")
    assert counter_graph(again).get_state(config).values == {}


def test_the_checkpointer_follows_the_database_url(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'stream.db'}"
    saver = conversation_checkpointer(url)
    assert isinstance(saver, ConversationSaver)
    assert conversation_checkpointer(url) is saver  # one per database per process
    assert (tmp_path / "sub" / "stream.db").exists()
    assert isinstance(conversation_checkpointer(None), InMemorySaver)


def test_a_database_it_cannot_use_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="SQLite or PostgreSQL checkpointer") as info:
        conversation_checkpointer("mysql+pymysql://db.example/stream")
    assert "'mysql+pymysql' databases are not supported" in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg://stream:p%40ss word@db.example:5433/conversations",
            {
                "host": "db.example",
                "port": "5433",
                "user": "stream",
                "password": "p@ss word",
                "dbname": "conversations",
            },
        ),
        ("postgresql://db.example/stream", {"host": "db.example", "dbname": "stream"}),
        (
            "postgresql+psycopg:///stream?host=/run/postgresql&sslmode=disable",
            {"host": "/run/postgresql", "sslmode": "disable", "dbname": "stream"},
        ),
    ],
)
def test_sqlalchemy_urls_become_libpq_connection_strings(url: str, expected: dict) -> None:
    assert conninfo_to_dict(libpq_conninfo(url)) == expected
