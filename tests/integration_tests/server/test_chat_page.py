"""The chat page at ``/``, in a real browser: Debian's headless Chromium, driven by Playwright.

The server runs on loopback over the embedded model (the local tier) and a real
OpenAI-compatible server on loopback (llama.cpp's, as the cloud tier). The tests find the
page's parts by their ``data-testid`` only. They skip when no Chromium is installed
(``apt-get install chromium``; ``.ci/run`` installs it).

With ``STREAM_UPDATE_SCREENSHOTS=1`` they also write docs/figures/chat_page_{light,dark}.png.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings, get_settings
from langchain_stream.graph import conversation_graph
from langchain_stream.policies.store import AnswerEntry
from langchain_stream.server import KeyStore, create_app
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.cloud_server import CLOUD_KEY, CloudServer
from tests.integration_tests.server.conftest import KEY, free_port, serving

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
CHROMIUM = os.environ.get("STREAM_TEST_CHROMIUM") or shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: apt-get install chromium (Playwright drives the system browser)",
)

OTHER_KEY = "sk-other-" + "5" * 32
LOW_QUESTION = "What is 2 + 2?"
MEDIUM_QUESTION = "Explain in two sentences what a Python list comprehension is."
"""Judged MEDIUM by the keyword judge: without an HPC tier, the cloud's."""
LONG_PROMPT = "Write a very long story about a dragon, with many chapters."
ANSWER_TOKENS = 400
"""The router's answer limit: short questions end well before it, the story does not."""
SLACK_TOKENS = 60
"""Tokens generated between the stop click and generation stopping, generously."""
WAIT_MS = 60_000 * TIME_UNIT_S
playwright_api.expect.set_options(timeout=WAIT_MS)
FIGURES = Path(__file__).resolve().parents[3] / "docs" / "figures"


@pytest.fixture(scope="module")
def cloud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudServer]:
    server = CloudServer(tmp_path_factory.mktemp("cloud") / "access.log")
    yield server
    server.close()


@pytest.fixture(scope="module")
def page_router(local_model: ChatLocal, cloud_server: CloudServer) -> StreamChatModel:
    from langchain_openai import ChatOpenAI

    cloud = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=cloud_server.url,
        api_key=CLOUD_KEY,
        max_retries=0,
        temperature=0,
    )
    return StreamChatModel(
        local=local_model, cloud=cloud, judge="keyword", max_tokens=ANSWER_TOKENS, temperature=0
    )


@pytest.fixture(scope="module")
def page_url(page_router: StreamChatModel) -> Iterator[str]:
    settings = Settings(rate_limit_rpm=0, rate_limit_storage="memory://")
    app = create_app(page_router, settings=settings, keys=KeyStore.of(KEY, OTHER_KEY))
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object, page_url: str) -> Iterator[object]:
    """A fresh browser context (its own session storage) on the page; the page's console
    errors (a CSP violation among them) fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(WAIT_MS)
    page.goto(page_url)
    yield page
    context.close()
    # A wrong key's 401 is logged by the browser as a failed resource; nothing else may be.
    unexpected = [e for e in errors if "401" not in e]
    assert not unexpected, unexpected


def sign_in(page: object, key: str = KEY) -> None:
    field = page.get_by_test_id("api-key")  # type: ignore[attr-defined]
    field.fill(key)
    field.press("Enter")


def ask(page: object, text: str) -> object:
    """Type ``text`` into the composer, send it with Enter, and return its answer element."""
    answers = page.get_by_test_id("answer")  # type: ignore[attr-defined]
    before = answers.count()
    composer = page.get_by_test_id("composer")  # type: ignore[attr-defined]
    composer.fill(text)
    composer.press("Enter")
    answer = answers.nth(before)
    answer.wait_for()
    return answer


def finished(answer: object) -> object:
    playwright_api.expect(answer).to_have_attribute("data-state", "done", timeout=WAIT_MS)
    return answer


def test_the_page_is_served_without_a_key_under_a_strict_policy(page_url: str) -> None:
    page = httpx.get(f"{page_url}/")
    script = httpx.get(f"{page_url}/web/chat.js")
    data = httpx.get(f"{page_url}/v1/stream/status")
    assert page.status_code == 200 and script.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)  # no inline script
    assert " style=" not in page.text and "<style" not in page.text
    assert data.status_code == 401  # the data needs the key


def test_a_wrong_key_shows_an_error_and_nothing_else(page: object) -> None:
    sign_in(page, "sk-wrong")
    error = page.get_by_test_id("login-error")  # type: ignore[attr-defined]
    playwright_api.expect(error).to_be_visible()
    playwright_api.expect(error).to_contain_text("incorrect API key")
    playwright_api.expect(page.get_by_test_id("composer")).to_be_hidden()  # type: ignore[attr-defined]
    assert page.evaluate("sessionStorage.length") == 0  # type: ignore[attr-defined]


def test_a_low_question_is_answered_locally_with_its_routing_badge(page: object) -> None:
    sign_in(page)
    answer = finished(ask(page, LOW_QUESTION))
    playwright_api.expect(answer.get_by_test_id("routing-tier")).to_have_text("local")
    playwright_api.expect(answer.get_by_test_id("routing-reason")).to_contain_text("LOW")
    playwright_api.expect(answer.get_by_test_id("routing-cost")).to_contain_text("cost $0")
    assert answer.inner_text().strip()
    assert float(answer.get_attribute("data-ttft-ms")) > 0
    # The conversation is listed under its question.
    listed = page.get_by_test_id("conversation")  # type: ignore[attr-defined]
    playwright_api.expect(listed.first).to_have_text(LOW_QUESTION)


def test_a_pinned_tier_answers_there(page: object, cloud_server: CloudServer) -> None:
    sign_in(page)
    page.get_by_test_id("tier-select").select_option("stream-cloud")  # type: ignore[attr-defined]
    before = cloud_server.completions_received()
    answer = finished(ask(page, "Say hello."))
    playwright_api.expect(answer.get_by_test_id("routing-tier")).to_have_text("cloud")
    playwright_api.expect(answer.get_by_test_id("routing-reason")).to_contain_text("pin")
    assert cloud_server.completions_received() == before + 1


def test_institutional_privacy_keeps_a_pinned_cloud_request_local(
    page: object, cloud_server: CloudServer
) -> None:
    sign_in(page)
    page.get_by_test_id("tier-select").select_option("stream-cloud")  # type: ignore[attr-defined]
    page.get_by_test_id("privacy").check()  # type: ignore[attr-defined]
    before = cloud_server.completions_received()
    answer = finished(ask(page, "Say hello."))
    playwright_api.expect(answer.get_by_test_id("routing-tier")).not_to_have_text("cloud")
    assert cloud_server.completions_received() == before


def test_a_fallback_and_an_unreachable_tier_are_shown(
    browser: object, local_model: ChatLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cloud tier that refuses connections: a MEDIUM question falls back to the local tier,
    the badge says so, and once the cloud's breaker opens the header shows it unreachable."""
    from langchain_openai import ChatOpenAI

    monkeypatch.setenv("STREAM_BREAKER_FAILURES", "1")  # open after one failure
    get_settings.cache_clear()
    dead = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        api_key="sk-none",
        max_retries=0,
    )
    router = StreamChatModel(local=local_model, cloud=dead, judge="keyword", max_tokens=64)
    settings = Settings(rate_limit_rpm=0, rate_limit_storage="memory://")
    with serving(create_app(router, settings=settings, keys=KeyStore.of(KEY))) as url:
        context = browser.new_context()  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(url)
        sign_in(page)
        cloud = page.locator("[data-testid=tier-status] [data-tier=cloud]")
        playwright_api.expect(cloud).to_have_class(re.compile(r"\bup\b"))
        answer = finished(ask(page, MEDIUM_QUESTION))
        playwright_api.expect(answer.get_by_test_id("routing-tier")).to_have_text("local")
        playwright_api.expect(answer.get_by_test_id("routing-events")).to_contain_text(
            "cloud unavailable → local"
        )
        playwright_api.expect(cloud).to_have_class(re.compile(r"\bdown\b"))
        context.close()


def test_stop_ends_the_generation_on_the_server(page: object, local_model: ChatLocal) -> None:
    sign_in(page)
    page.get_by_test_id("tier-select").select_option("stream-local")  # type: ignore[attr-defined]
    answer = ask(page, LONG_PROMPT)
    # Stop once a few words are on screen.
    playwright_api.expect(answer).to_have_text(re.compile(r"(\S+\s+){8}"))
    turns = local_model.load().turns
    assert turns.busy  # still generating when the stop is clicked
    page.get_by_test_id("stop").click()  # type: ignore[attr-defined]
    stopped_at = time.perf_counter()
    while turns.busy:
        assert time.perf_counter() - stopped_at < 5 * TIME_UNIT_S, "generation never stopped"
        time.sleep(0.005)
    freed_after_s = time.perf_counter() - stopped_at
    playwright_api.expect(answer).to_have_attribute("data-state", "stopped")
    assert answer.inner_text().strip()  # what came before the stop stays on screen
    # Left alone the story runs to the limit; stopped, the model is freed at once, and its
    # context (the prompt, then every token generated) holds far fewer tokens.
    assert freed_after_s < 2 * TIME_UNIT_S
    generated = local_model.load().llama.n_tokens - local_model.count_tokens(
        [HumanMessage(LONG_PROMPT)]
    )
    assert generated < ANSWER_TOKENS - SLACK_TOKENS
    playwright_api.expect(page.get_by_test_id("send")).to_be_visible()  # type: ignore[attr-defined]


def test_a_reloaded_page_reopens_continues_and_deletes_a_conversation(
    page: object, page_url: str
) -> None:
    sign_in(page)
    finished(ask(page, LOW_QUESTION))
    page.reload()  # type: ignore[attr-defined]
    # The key is kept for the tab's session: the page signs in again by itself.
    listed = page.get_by_test_id("conversation").filter(has_text=LOW_QUESTION)  # type: ignore[attr-defined]
    listed.first.click()
    answers = page.get_by_test_id("answer")  # type: ignore[attr-defined]
    playwright_api.expect(answers).to_have_count(1)
    playwright_api.expect(answers.first.get_by_test_id("routing-tier")).to_have_text("local")
    conversation_id = listed.first.get_attribute("data-id")

    follow_up = finished(ask(page, "And what is 3 + 3?"))
    playwright_api.expect(follow_up.get_by_test_id("routing-tier")).to_be_visible()
    headers = {"Authorization": f"Bearer {KEY}"}
    saved = httpx.get(f"{page_url}/v1/stream/conversations/{conversation_id}", headers=headers)
    roles = [m["role"] for m in saved.json()["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert all("ledger" in m for m in saved.json()["messages"] if m["role"] == "assistant")

    # Another key sees none of it.
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    theirs = httpx.get(f"{page_url}/v1/stream/conversations", headers=other).json()["data"]
    assert conversation_id not in [c["id"] for c in theirs]
    foreign = httpx.get(f"{page_url}/v1/stream/conversations/{conversation_id}", headers=other)
    assert (
        foreign.status_code == 404 and foreign.json()["error"]["code"] == "conversation_not_found"
    )
    refused = httpx.delete(f"{page_url}/v1/stream/conversations/{conversation_id}", headers=other)
    assert refused.status_code == 404

    item = page.locator(f"li:has([data-id='{conversation_id}'])")  # type: ignore[attr-defined]
    item.get_by_test_id("delete-conversation").click()
    playwright_api.expect(item).to_have_count(0)
    gone = httpx.get(f"{page_url}/v1/stream/conversations/{conversation_id}", headers=headers)
    assert gone.status_code == 404


def test_answers_render_markdown_and_never_run_their_html(
    page: object, page_router: StreamChatModel
) -> None:
    """A saved answer holding Markdown and hostile HTML, reopened: the Markdown is rendered,
    the HTML's script and handlers are not (model output is untrusted)."""
    hostile = (
        "**bold** and `code`\n\n```python\nprint(1)\n```\n\n"
        '<img src="/nowhere.png" onerror="window.pwned = 1">'
        "<script>window.pwned = 2</script>"
        '<a href="javascript:window.pwned = 3">link</a>'
    )
    conversation_graph().update_state(
        {"configurable": {"thread_id": "hostile"}},
        {"messages": [HumanMessage("Show me HTML."), AIMessage(hostile)]},
    )
    store = page_router.policy_engine().store
    assert store is not None
    store.record_answer(
        AnswerEntry(
            user=KeyStore.of(KEY).authenticate(KEY).name,  # type: ignore[union-attr]
            conversation="hostile",
            privacy="standard",
            sensitive=[],
            complexity="LOW",
            tier="local",
            reason="judge",
            model="smollm2",
            input_tokens=5,
            output_tokens=40,
            cost_usd=0.0,
            cloud_equivalent_usd=None,
            policies=[],
            tiers_tried=[],
        )
    )
    sign_in(page)
    page.locator("[data-id='hostile']").click()  # type: ignore[attr-defined]
    answer = page.get_by_test_id("answer").first  # type: ignore[attr-defined]
    playwright_api.expect(answer.locator("strong")).to_have_text("bold")
    playwright_api.expect(answer.locator("pre code")).to_have_text("print(1)")
    playwright_api.expect(answer.locator("a")).to_have_text("link")
    assert answer.locator("script").count() == 0
    assert answer.locator("[onerror]").count() == 0
    assert not (answer.locator("a").get_attribute("href") or "").startswith("javascript:")
    page.wait_for_timeout(300)  # type: ignore[attr-defined]
    assert page.evaluate("window.pwned") is None  # type: ignore[attr-defined]


def test_retry_asks_again_and_copy_copies_the_answer(page: object) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])  # type: ignore[attr-defined]
    sign_in(page)
    page.get_by_test_id("tier-select").select_option("stream-local")  # type: ignore[attr-defined]
    first = finished(ask(page, LOW_QUESTION))
    text = first.locator(".markdown").inner_text()
    first.get_by_test_id("copy").click()
    copied = page.evaluate("navigator.clipboard.readText()")  # type: ignore[attr-defined]
    assert copied.strip() == text.strip()
    first.get_by_test_id("retry").click()
    answers = page.get_by_test_id("answer")  # type: ignore[attr-defined]
    playwright_api.expect(answers).to_have_count(1)  # the answer is replaced, not added
    finished(answers.first)
    playwright_api.expect(page.get_by_test_id("question")).to_have_count(1)  # type: ignore[attr-defined]


def test_time_to_first_token_in_the_page_and_through_the_openai_client(
    page: object, page_url: str
) -> None:
    """The page's TTFT (send to the first token on screen) next to the official client's on
    the same request (pinned, in a new conversation); and the client's without a
    conversation, which skips the checkpointer. Medians of three, after a warm-up."""
    client = openai.OpenAI(base_url=f"{page_url}/v1", api_key=KEY, max_retries=0)

    def client_ttft_ms(conversation: str | None) -> float:
        extra = {"conversation_id": conversation} if conversation else None
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model="stream-local",
            messages=[{"role": "user", "content": LOW_QUESTION}],
            stream=True,
            extra_body=extra,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                ttft = (time.perf_counter() - started) * 1000
                stream.close()
                return ttft
        raise AssertionError("no token")

    sign_in(page)
    page.get_by_test_id("tier-select").select_option("stream-local")  # type: ignore[attr-defined]
    in_page, same_request, no_conversation = [], [], []
    for run in range(4):
        page.get_by_test_id("new-chat").click()  # type: ignore[attr-defined]
        answer = finished(ask(page, LOW_QUESTION))
        in_page.append(float(answer.get_attribute("data-ttft-ms")))
        same_request.append(client_ttft_ms(f"ttft-{run}"))
        no_conversation.append(client_ttft_ms(None))

    def median(values: list[float]) -> float:
        return sorted(values[1:])[1]

    page_ms, client_ms = median(in_page), median(same_request)
    print(
        f"\nTTFT, median of 3: page {page_ms:.0f} ms; openai client, same request "
        f"{client_ms:.0f} ms; openai client, no conversation {median(no_conversation):.0f} ms"
    )
    # What the page adds (the browser's fetch, parsing and rendering) stays small.
    assert page_ms < client_ms + 250 * TIME_UNIT_S


@pytest.mark.skipif(
    os.environ.get("STREAM_UPDATE_SCREENSHOTS") != "1",
    reason="set STREAM_UPDATE_SCREENSHOTS=1 to rewrite docs/figures/chat_page_*.png",
)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(browser: object, page_url: str, scheme: str) -> None:
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 760}, color_scheme=scheme
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(page_url)
    sign_in(page)
    finished(ask(page, "What is the capital of France?"))
    page.get_by_test_id("new-chat").click()
    finished(ask(page, "What is 2 + 2?"))
    page.get_by_test_id("tier-select").select_option("stream-cloud")
    finished(ask(page, "Show a Python one-liner that squares 1 to 5."))
    page.get_by_test_id("tier-select").select_option("stream-auto")
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"chat_page_{scheme}.png"
    page.screenshot(path=str(path))
    context.close()
    assert path.stat().st_size > 10_000
