"""Shared test settings: one place to scale waits, and isolation from the user's config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every timing-sensitive wait in the suite is a multiple of this (seconds).
TIME_UNIT_S = float(os.environ.get("STREAM_TEST_TIME_UNIT_S", "1.0"))


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Tests see only the STREAM_* variables they set, no config file of the user's, and a
    policy database (ledger, audit log) of their own."""
    for name in list(os.environ):
        if name.startswith("STREAM_") and name != "STREAM_TEST_TIME_UNIT_S":
            monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty-stream.toml"
    empty.write_text("")
    monkeypatch.setenv("STREAM_CONFIG", str(empty))
    monkeypatch.setenv("STREAM_DATABASE_URL", f"sqlite:///{tmp_path / 'stream.db'}")
    from langchain_stream.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
