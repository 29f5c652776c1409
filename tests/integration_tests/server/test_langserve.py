"""LangServe's routes (the optional [langserve] extra), through RemoteRunnable on loopback."""

from __future__ import annotations

import httpx
import pytest

from langchain_stream.server.langserve_routes import LANGSERVE_PATH
from tests.integration_tests.server.conftest import KEY

langserve = pytest.importorskip(
    "langserve", reason="LangServe routes need the extra: pip install 'langchain-stream[langserve]'"
)


@pytest.fixture
def remote(server_url: str) -> object:
    return langserve.RemoteRunnable(
        f"{server_url}{LANGSERVE_PATH}", headers={"Authorization": f"Bearer {KEY}"}
    )


def test_invoke_returns_the_answer_with_its_routing_record(remote: object) -> None:
    answer = remote.invoke("What is the capital of France?", {"configurable": {}})  # type: ignore[attr-defined]
    assert answer.type == "ai" and answer.content
    assert answer.response_metadata["routing"]["tier"] == "local"
    assert answer.response_metadata["routing"]["user"] == "tests"  # the key's name pays


def test_stream_yields_tokens_one_by_one(remote: object) -> None:
    chunks = list(remote.stream("Name a fruit."))  # type: ignore[attr-defined]
    assert len([c for c in chunks if c.content]) > 1
    assert chunks[0].response_metadata["routing"]["tier"] == "local"


async def test_batch_answers_each_input(remote: object) -> None:
    try:
        answers = await remote.abatch(["Say yes.", "Say no."])  # type: ignore[attr-defined]
    finally:
        await remote.async_client.aclose()  # type: ignore[attr-defined]  # on this test's loop
    assert len(answers) == 2 and all(a.content for a in answers)


def test_the_routes_need_the_key(server_url: str) -> None:
    response = httpx.post(f"{server_url}{LANGSERVE_PATH}/invoke", json={"input": "hi"})
    assert response.status_code == 401
