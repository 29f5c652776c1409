"""Fixtures on the real embedded model, loaded once per test session, and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_stream import ChatLocal
from tests.integration_tests.postgres import PostgresServer, postgres_bin_dir
from tests.integration_tests.standard_images import StandardImage, serve_standard_image
from tests.integration_tests.vision_server import VisionServer


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


@pytest.fixture(scope="module")
def vision_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VisionServer]:
    """The loopback vision server (vision_server.py) for the module: a vision tier."""
    server = VisionServer(tmp_path_factory.mktemp("vision"))
    yield server
    server.close()


@pytest.fixture
def standard_image(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandardImage]:
    """The standard image tests' fetch from raw.githubusercontent.com, answered offline with a
    real PNG (standard_images.py)."""
    with serve_standard_image(monkeypatch) as image:
        yield image
