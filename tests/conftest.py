"""Shared test settings: one place to scale waits, and isolation from the user's config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every timing-sensitive wait in the suite is a multiple of this (seconds).
TIME_UNIT_S = float(os.environ.get("STREAM_TEST_TIME_UNIT_S", "1.0"))


@pytest.fixture(scope="session")
def machine_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of machine-specific answers (the extra-buffer probe) for the whole session,
    outside the user's home: the probe runs once per test session."""
    return tmp_path_factory.mktemp("machine-cache")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, machine_cache_dir: Path):
    """Tests see only the STREAM_* variables they set, no config file of the user's, a
    policy database (ledger, audit log) of their own and the session's machine cache."""
    for name in list(os.environ):
        if name.startswith("STREAM_") and name != "STREAM_TEST_TIME_UNIT_S":
            monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty-stream.toml"
    empty.write_text("")
    monkeypatch.setenv("STREAM_CONFIG", str(empty))
    monkeypatch.setenv("STREAM_DATABASE_URL", f"sqlite:///{tmp_path / 'stream.db'}")
    monkeypatch.setenv("STREAM_CACHE_DIR", str(machine_cache_dir))
    from langchain_stream.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
