"""Fixtures on the real embedded model, loaded once per test session."""

from __future__ import annotations

import pytest

from langchain_stream import ChatLocal


@pytest.fixture(scope="session")
def local_model() -> ChatLocal:
    """The local tier on the embedded SmolLM2-135M-Instruct, greedy, short answers."""
    model = ChatLocal(temperature=0.0, max_tokens=48)
    model.load()
    return model
