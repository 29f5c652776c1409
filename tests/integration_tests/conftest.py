"""Fixtures on the real embedded model, loaded once per test session, and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_stream import ChatLocal
from tests.integration_tests.postgres import PostgresServer, postgres_bin_dir


@pytest.fixture(scope="session")
def local_model() -> ChatLocal:
    """The local tier on the embedded SmolLM2-135M-Instruct, greedy, short answers."""
    model = ChatLocal(temperature=0.0, max_tokens=48)
    model.load()
    return model


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL on 127.0.0.1 for the session (skips where it is not installed;
    `.ci/run` installs it)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin: apt-get install postgresql"
        )
    server = PostgresServer(bin_dir)
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The SQLAlchemy URL of a fresh database on the session's PostgreSQL."""
    return postgres_server.create_database()
