"""Wrong API keys are limited per client address: a guessing address is refused early, with 429
and Retry-After, while clients on other addresses go on as before (a real server on loopback)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from langchain_stream import StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.server import KeyStore, create_app
from tests.integration_tests.server.conftest import KEY, serving

GUESSES = 300
THRESHOLD = 20
GUESSER = "127.0.0.2"
OTHER = "127.0.0.3"


def _client(base_url: str, source: str, key: str) -> httpx.Client:
    """An HTTP client whose connections leave from ``source`` (a loopback address)."""
    return httpx.Client(
        base_url=base_url,
        transport=httpx.HTTPTransport(local_address=source),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30.0,
    )


@pytest.fixture(scope="module")
def guarded_url(router: StreamChatModel) -> Iterator[str]:
    settings = Settings(rate_limit_rpm=0, auth_failure_limit=THRESHOLD, auth_failure_window_s=60)
    with serving(create_app(router, settings=settings, keys=KeyStore.of(KEY))) as url:
        yield url


def test_an_address_guessing_keys_is_refused_early_and_others_are_unaffected(
    guarded_url: str,
) -> None:
    statuses: list[int] = []
    started = time.perf_counter()
    with _client(guarded_url, GUESSER, "sk-wrong") as guesser:
        for n in range(GUESSES):
            guesser.headers["Authorization"] = f"Bearer sk-guess-{n:04d}"
            statuses.append(guesser.get("/v1/models").status_code)
        refused = guesser.get("/v1/models")
        # Once refused, even the right key from that address is not checked.
        guesser.headers["Authorization"] = f"Bearer {KEY}"
        right_key_from_guesser = guesser.get("/v1/models")
    elapsed = time.perf_counter() - started

    assert statuses[:THRESHOLD] == [401] * THRESHOLD
    assert statuses[THRESHOLD:] == [429] * (GUESSES - THRESHOLD)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "too_many_failed_authentications"
    assert "Traceback" not in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert right_key_from_guesser.status_code == 429

    # A client with the right key on another address: the official client, a real answer.
    with _client(guarded_url, OTHER, KEY) as http:
        client = openai.OpenAI(base_url=f"{guarded_url}/v1", api_key=KEY, http_client=http)
        assert "stream-auto" in [m.id for m in client.models.list().data]
        answer = client.chat.completions.create(
            model="stream-local",
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=4,
        )
        assert answer.choices[0].message.content is not None
    print(f"{GUESSES} wrong keys from {GUESSER} in {elapsed:.2f} s")


def test_a_missing_key_is_not_counted_as_a_guess(guarded_url: str) -> None:
    with httpx.Client(
        base_url=guarded_url, transport=httpx.HTTPTransport(local_address="127.0.0.4")
    ) as anonymous:
        statuses = {anonymous.get("/v1/models").status_code for _ in range(THRESHOLD + 5)}
        assert statuses == {401}
        anonymous.headers["Authorization"] = f"Bearer {KEY}"
        assert anonymous.get("/v1/models").status_code == 200
