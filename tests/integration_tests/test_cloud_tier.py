"""The cloud tier as ``stream serve`` builds it (``ChatOpenAI`` for a compatible base URL)
against a real OpenAI-compatible server on loopback: langchain-tests' standard suite, the request
the SDK would send, and errors still raised as the SDK's."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_stream import StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.server import KeyStore, create_app
from langchain_stream.tiers.cloud import build_cloud_model
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.cloud_server import CLOUD_KEY, CloudServer, free_port
from tests.integration_tests.standard_images import StandardImage, expected_images
from tests.integration_tests.vision_server import MODEL as VISION_MODEL
from tests.integration_tests.vision_server import VisionServer

SERVER_KEY = "sk-served-" + "6" * 32
MODEL = "gpt-4o-mini"  # llama.cpp's server answers with its one model whatever the name
_server: CloudServer | None = None
_vision: VisionServer | None = None  # TestCloudTierVisionIntegration's server, while it runs


def own_http_client() -> openai.DefaultAsyncHttpxClient:
    """An async HTTP client for one model. Without one, langchain-openai shares a client per
    base URL across instances, and its pooled connections belong to the event loop (here: the
    test) that opened them."""
    return openai.DefaultAsyncHttpxClient()


def shared_server() -> CloudServer:
    """One server for the module, started on first use (the suite's params need its URL)."""
    global _server
    if _server is None:
        _server = CloudServer(Path(tempfile.mkdtemp(prefix="cloud-tier-")) / "access.log")
    return _server


@pytest.fixture(scope="module", autouse=True)
def _stop_shared_server() -> Iterator[None]:
    global _server
    yield
    if _server is not None:
        _server.close()
        _server = None


def cloud_tier(base_url: str, api_key: str = CLOUD_KEY) -> BaseChatModel:
    settings = Settings(
        cloud_model=MODEL, cloud_base_url=base_url, cloud_api_key=api_key, max_tokens=24
    )
    return build_cloud_model(settings).model_copy(update={"temperature": 0.0})


class TestCloudTierIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return type(cloud_tier("http://127.0.0.1:9/v1"))

    @property
    def chat_model_params(self) -> dict:
        return {
            "model": MODEL,
            "base_url": shared_server().url,
            "api_key": CLOUD_KEY,
            "max_tokens": 96,
            "temperature": 0.0,
            "stream_usage": True,
            "max_retries": 0,
            "http_async_client": own_http_client(),
        }

    @property
    def has_tool_calling(self) -> bool:
        # llama.cpp's server answers tool requests with text on the embedded model's template.
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False  # one model behind the server, whatever the name

    @pytest.mark.xfail(reason="llama.cpp's server streams no usage", strict=False)
    def test_usage_metadata_streaming(self, model: BaseChatModel) -> None:
        super().test_usage_metadata_streaming(model)


class TestCloudTierVisionIntegration(TestCloudTierIntegration):
    """The same tier on a server that reads images: the loopback vision server
    (vision_server.py), which decodes each image it receives and answers by describing what it
    received. The image is the standard tests' own fetch, answered offline with a real PNG
    (standard_images.py)."""

    @property
    def chat_model_params(self) -> dict:
        assert _vision is not None, "the vision server starts with the class's fixture"
        return {**super().chat_model_params, "model": VISION_MODEL, "base_url": _vision.url}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True  # the link goes to the API, which fetches it

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @pytest.fixture(autouse=True)
    def _vision_api(
        self,
        request: pytest.FixtureRequest,
        vision_server: VisionServer,
        standard_image: StandardImage,
    ) -> Iterator[None]:
        global _vision
        _vision = vision_server
        before = len(vision_server.received())
        yield
        # The standard image tests assert only that the call succeeds: here, that each image
        # reached the API whole.
        expected = expected_images(request.node.originalname, standard_image)
        if expected is not None:
            assert [r["images"] for r in vision_server.received()[before:]] == expected


def test_the_length_limit_reaches_a_compatible_server_as_max_tokens() -> None:
    # llama.cpp's server reads `max_tokens` only: with it the answer stops at the limit.
    model = cloud_tier(shared_server().url).bind(max_tokens=5)
    chunks = list(model.stream("Count from one to fifty in words."))
    assert merged(chunks).response_metadata["finish_reason"] == "length"


def test_the_tier_sends_what_the_sdk_sends_and_reads_the_stream() -> None:
    # What the tier controls is the request: it must be the SDK's own, field for field (the
    # bodies are compared as received by a loopback server, not as built in memory).
    received: list[dict] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "recorded"}}')

        def log_message(self, *args: object) -> None:
            pass

    recorder = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{recorder.server_port}/v1"
        stock = ChatOpenAI(
            model=MODEL,
            base_url=url,
            api_key=CLOUD_KEY,
            temperature=0.0,
            stream_usage=True,
            max_retries=0,
            extra_body={"max_tokens": 24},  # what the tier sends compatible servers besides
        )
        for model in (cloud_tier(url), stock):
            with pytest.raises(openai.BadRequestError):
                list(model.stream("Name three colours."))
    finally:
        recorder.shutdown()
        recorder.server_close()
    ours_body, stock_body = received
    assert ours_body == stock_body and ours_body["max_tokens"] == 24

    # And the SDK's stream, read from the real server, ends as the server says it did.
    chunks = list(cloud_tier(shared_server().url).stream("Name three colours."))
    assert len(chunks) > 2 and "".join(c.text for c in chunks).strip()
    metadata = merged(chunks).response_metadata
    assert metadata["finish_reason"] == "length"
    assert metadata["model_name"]


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    out = chunks[0]
    for chunk in chunks[1:]:
        out += chunk
    return out


async def test_async_stream_equals_sync_stream() -> None:
    model = cloud_tier(shared_server().url)
    question = "Say hello to the reader."
    sync_text = "".join(c.text for c in model.stream(question))
    async_text = "".join([c.text async for c in model.astream(question)])
    assert async_text == sync_text and async_text


async def test_a_rejected_key_raises_the_sdks_error() -> None:
    model = cloud_tier(shared_server().url, api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError):
        async for _ in model.astream("hi"):
            pass


async def test_an_unreachable_api_raises_the_sdks_connection_error() -> None:
    model = cloud_tier(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(openai.APIConnectionError):
        async for _ in model.astream("hi"):
            pass


FIRST_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": MODEL,
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}],
}


class _StandIn(BaseHTTPRequestHandler):
    """A stand-in API's handler: reads the request, logs nothing."""

    def read_request(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))

    def log_message(self, *args: object) -> None:
        pass


class _Refusing(_StandIn):
    """Refuses every request with the status in its path (``/v1/<status>/chat/completions``)."""

    def do_POST(self) -> None:
        self.read_request()
        status = int(self.path.split("/")[2])
        body = json.dumps({"error": {"message": f"refused with {status}", "type": "x"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (418, openai.APIStatusError),
    ],
)
async def test_a_refused_request_raises_what_the_sdk_raises(
    status: int, error: type[openai.APIStatusError]
) -> None:
    with serving_handler(_Refusing) as url:
        base = f"{url}/{status}"
        ours = cloud_tier(base, api_key="sk-any")
        with pytest.raises(error) as raised:
            async for _ in ours.astream("hi"):
                pass
        stock = ChatOpenAI(
            model=MODEL,
            base_url=base,
            api_key="sk-any",
            max_retries=0,
            http_async_client=own_http_client(),
        )
        with pytest.raises(error) as expected:
            async for _ in stock.astream("hi"):
                pass
    assert type(raised.value) is type(expected.value)
    assert str(raised.value) == str(expected.value)
    assert raised.value.status_code == status
    assert raised.value.body == expected.value.body


class _ErrorMidStream(_StandIn):
    """Streams one chunk, then an error event, as OpenAI does when generation fails."""

    def do_POST(self) -> None:
        self.read_request()
        error = {"error": {"message": "the backend failed", "type": "server_error"}}
        body = f"data: {json.dumps(FIRST_CHUNK)}\n\ndata: {json.dumps(error)}\n\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Stalling(_StandIn):
    """Streams one chunk, then goes silent (headers sent, connection open) for a while."""

    def do_POST(self) -> None:
        self.read_request()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(f"data: {json.dumps(FIRST_CHUNK)}\n\n".encode())
        self.wfile.flush()
        time.sleep(3 * TIME_UNIT_S)


async def test_a_silent_stream_times_out_after_stream_chunk_timeout() -> None:
    settings = Settings(cloud_model=MODEL, cloud_base_url="http://unused/v1", cloud_api_key="k")
    with serving_handler(_Stalling) as url:
        model = type(build_cloud_model(settings))(
            model=MODEL, base_url=url, api_key="sk-any", stream_chunk_timeout=0.3, max_retries=0
        )
        received = []
        started = time.monotonic()
        # langchain-openai's own bound (its error is also a TimeoutError), which the router's
        # boundary reads as the tier timing out.
        with pytest.raises(TimeoutError):
            async for chunk in model.astream("hi"):
                received.append(chunk.text)
        assert received == ["Hel"]
        assert time.monotonic() - started < 2.5 * TIME_UNIT_S


@contextmanager
def serving_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A stand-in API on loopback, for faults llama.cpp's server cannot be made to show."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def failing_server() -> Iterator[str]:
    with serving_handler(_ErrorMidStream) as url:
        yield url


async def test_an_error_event_mid_stream_raises_after_the_first_chunk(failing_server) -> None:
    model = cloud_tier(failing_server, api_key="sk-any")
    received = []
    with pytest.raises(openai.APIError, match="the backend failed"):
        async for chunk in model.astream("hi"):
            received.append(chunk.text)
    assert received == ["Hel"]


async def test_served_the_first_event_carries_the_first_token() -> None:
    # The tier opens with a chunk that names the role and says nothing: the router folds it
    # into the first token, so the first event a client reads carries text.
    router = StreamChatModel(cloud=cloud_tier(shared_server().url), judge="keyword")
    app = create_app(router, keys=KeyStore.of(SERVER_KEY), langserve=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {SERVER_KEY}"},
            json={
                "model": "stream-cloud",
                "messages": [{"role": "user", "content": "Name three colours."}],
                "stream": True,
            },
        )
    assert response.status_code == 200
    events = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    first = events[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"]
    assert events[0]["routing"]["tier"] == "cloud"
    assert all("role" not in e["choices"][0]["delta"] for e in events[1:] if e["choices"])
