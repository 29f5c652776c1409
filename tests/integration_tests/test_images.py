"""Images through the router, on every path: the model, the server (with the official
``openai`` client) and the CLI, to a vision tier that is a real OpenAI-compatible server on
loopback which decodes the images it receives and records them (``vision_server.py``).

The default tiers: the local tier on the embedded text model (never sent an image), and the
cloud tier on the loopback vision server. Images may reach it under ``standard`` privacy
because these tests set ``unscannable_content = "cloud"``; under ``institutional`` they may
not.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from PIL import Image

from langchain_stream import StreamChatModel
from langchain_stream.config import get_settings
from langchain_stream.errors import InvalidRequestError
from langchain_stream.policies.engine import PolicyEngine
from tests.conftest import TIME_UNIT_S
from tests.integration_tests.cloud_server import CLOUD_KEY
from tests.integration_tests.server.conftest import serving
from tests.integration_tests.vision_server import MODEL, VisionServer


def drawn(fmt: str, size: tuple[int, int]) -> bytes:
    """A real image: a gradient, encoded as ``fmt``."""
    width, height = size
    image = Image.new("RGB", size)
    image.putdata([(x % 256, y % 256, (x + y) % 256) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


PNG = drawn("PNG", (96, 64))
JPEG = drawn("JPEG", (120, 80))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def ask(*images: tuple[str, bytes]) -> list[HumanMessage]:
    blocks = [{"type": "image", "base64": b64(raw), "mime_type": media} for media, raw in images]
    return [HumanMessage([{"type": "text", "text": "What does this plot show?"}, *blocks])]


@pytest.fixture(scope="module")
def vision(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VisionServer]:
    server = VisionServer(tmp_path_factory.mktemp("vision"))
    yield server
    server.close()


@pytest.fixture
def vision_env(vision: VisionServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The settings: the cloud tier is the loopback vision server."""
    env = {
        "STREAM_CLOUD_MODEL": MODEL,
        "STREAM_CLOUD_BASE_URL": vision.url,
        "STREAM_CLOUD_API_KEY": CLOUD_KEY,
        "STREAM_UNSCANNABLE_CONTENT": "cloud",
        "STREAM_JUDGE": "keyword",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return env


def merged(chunks: Any) -> AIMessageChunk:
    answer: AIMessageChunk | None = None
    for chunk in chunks:
        answer = chunk if answer is None else answer + chunk
    assert answer is not None
    return answer


EXPECTED_IMAGE = {
    "declared": "image/png",
    "format": "PNG",
    "width": 96,
    "height": 64,
    "bytes": len(PNG),
    "sha256": hashlib.sha256(PNG).hexdigest(),
}


def check_answer(answer: AIMessageChunk) -> None:
    assert answer.text == "I see 1 image(s): PNG 96x64."
    record = answer.response_metadata["routing"]
    assert (record["tier"], record["model"]) == ("cloud", MODEL)
    assert record["images"] == [
        {
            "source": "inline",
            "media_type": "image/png",
            "bytes": len(PNG),
            "width": 96,
            "height": 64,
        }
    ]
    assert "capabilities: local lacks vision" in record["policies"]
    assert [t["tier"] for t in record["tiers_tried"]] == ["cloud"]  # never the text model


def test_invoke_and_stream_carry_the_image_to_the_vision_tier(
    vision: VisionServer, vision_env: dict[str, str]
) -> None:
    router, messages = StreamChatModel(), ask(("image/png", PNG))
    before = len(vision.received())
    check_answer(router.invoke(messages))  # type: ignore[arg-type]
    check_answer(merged(router.stream(messages)))
    received = vision.received()[before:]
    assert [request["images"] for request in received] == [[EXPECTED_IMAGE]] * 2


async def test_ainvoke_and_astream_carry_the_image_to_the_vision_tier(
    vision: VisionServer, vision_env: dict[str, str]
) -> None:
    router, messages = StreamChatModel(), ask(("image/png", PNG))
    before = len(vision.received())
    check_answer(await router.ainvoke(messages))  # type: ignore[arg-type]
    check_answer(merged([chunk async for chunk in router.astream(messages)]))
    received = vision.received()[before:]  # the bytes that left are the bytes given
    assert [request["images"] for request in received] == [[EXPECTED_IMAGE]] * 2


def test_a_5_mb_image_reaches_the_vision_tier_whole(
    vision: VisionServer, vision_env: dict[str, str]
) -> None:
    side = 1300  # noise does not compress: about 5 MB as PNG
    noise = Image.frombytes("RGB", (side, side), random.Random(5).randbytes(side * side * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG", compress_level=1)
    raw = out.getvalue()
    assert len(raw) > 5_000_000
    answer = StreamChatModel().invoke(ask(("image/png", raw)))  # type: ignore[arg-type]
    record = answer.response_metadata["routing"]
    print(f"{len(raw)} bytes: TTFT {record['ttft_ms']} ms (tier {record['tier_ttft_ms']} ms)")
    assert record["images"][0]["bytes"] == len(raw)
    (received,) = vision.received()[-1]["images"]
    assert (received["bytes"], received["sha256"]) == (len(raw), hashlib.sha256(raw).hexdigest())


def test_the_audit_log_names_the_rule_and_each_image_never_its_bytes(
    vision: VisionServer, vision_env: dict[str, str]
) -> None:
    router = StreamChatModel()
    router.invoke(ask(("image/png", PNG), ("image/jpeg", JPEG)))
    store = PolicyEngine(get_settings()).store
    assert store is not None
    (entry,) = store.audit_entries()[-1:]
    policies = entry["policies"]
    assert policies[0] == (
        f"images: 2 (image/png, {len(PNG)} bytes, 96x64; image/jpeg, {len(JPEG)} bytes, 120x80)"
    )
    assert any("rule unscannable_content=cloud: the cloud is allowed" in p for p in policies)
    assert b64(PNG)[:32] not in json.dumps(entry, default=str)


def test_institutional_privacy_never_sends_the_image_to_the_cloud(
    vision: VisionServer, vision_env: dict[str, str]
) -> None:
    before = len(vision.received())
    with pytest.raises(InvalidRequestError, match="under privacy=institutional images never go"):
        StreamChatModel(privacy="institutional").invoke(ask(("image/png", PNG)))
    assert len(vision.received()) == before
    store = PolicyEngine(get_settings()).store
    assert store is not None
    failed = store.audit_entries()[-1]
    assert failed["outcome"] == "failed"
    assert any("rule institutional: never to the cloud" in p for p in failed["policies"])


def test_under_institutional_privacy_an_institutional_vision_tier_answers(
    vision: VisionServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tiers that read images, a departmental GPU box and the cloud: under institutional
    privacy the image goes to the GPU box, and the cloud never hears of it."""
    (tmp_path / "gpu-box").mkdir()
    gpu_box = VisionServer(tmp_path / "gpu-box")
    try:
        config = tmp_path / "stream.toml"
        config.write_text(
            f"""
[[tiers]]
name = "laptop"
kind = "llama_cpp"
level = "LOW"
capabilities = ["tools", "structured_output"]

[[tiers]]
name = "gpu-box"
kind = "openai"
base_url = "{gpu_box.url}"
api_key = "{CLOUD_KEY}"
model = "{MODEL}"
level = "MEDIUM"
capabilities = ["vision"]

[[tiers]]
name = "cloud"
kind = "openai"
base_url = "{vision.url}"
api_key = "{CLOUD_KEY}"
model = "{MODEL}"
level = "HIGH"
privacy = "external"
capabilities = ["tools", "structured_output", "vision"]
"""
        )
        monkeypatch.setenv("STREAM_CONFIG", str(config))
        monkeypatch.setenv("STREAM_UNSCANNABLE_CONTENT", "cloud")
        get_settings.cache_clear()
        before = len(vision.received())
        messages = ask(("image/png", PNG))
        standard = StreamChatModel().invoke(messages)  # type: ignore[arg-type]
        assert standard.response_metadata["routing"]["tier"] == "gpu-box"  # MEDIUM, free
        answer = StreamChatModel(privacy="institutional").invoke(messages)  # type: ignore[arg-type]
        record = answer.response_metadata["routing"]
        assert (record["tier"], answer.text) == ("gpu-box", "I see 1 image(s): PNG 96x64.")
        assert any("rule institutional: never to the cloud" in p for p in record["policies"])
        assert [r["images"][0]["sha256"] for r in gpu_box.received()] == [
            hashlib.sha256(PNG).hexdigest()
        ] * 2
        assert len(vision.received()) == before  # the cloud received nothing
    finally:
        gpu_box.close()


def test_no_tier_that_reads_images_is_a_clear_error(
    vision: VisionServer, vision_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_CLOUD_VISION", "false")
    get_settings.cache_clear()
    before = len(vision.received())
    with pytest.raises(
        InvalidRequestError, match="no configured tier reads images: set hpc_vision"
    ):
        StreamChatModel().invoke(ask(("image/png", PNG)))
    assert len(vision.received()) == before


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (PNG[: len(PNG) // 2], "truncated or corrupt"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "truncated or corrupt|not an image"),
        (b"plain text, not an image", "not an image"),
    ],
    ids=["truncated-png", "broken-gif", "text"],
)
def test_a_bad_image_is_refused_and_nothing_is_routed(
    vision: VisionServer, vision_env: dict[str, str], raw: bytes, expected: str
) -> None:
    before = len(vision.received())
    block = {"type": "image", "base64": b64(raw), "mime_type": "image/png"}
    with pytest.raises(InvalidRequestError, match=expected):
        StreamChatModel().invoke([HumanMessage([{"type": "text", "text": "Explain."}, block])])
    assert len(vision.received()) == before


def test_the_server_takes_openai_image_parts_from_the_official_client(
    vision: VisionServer, vision_env: dict[str, str]
) -> None:
    import openai

    from langchain_stream.server import KeyStore, create_app

    app = create_app(StreamChatModel(), keys=KeyStore([]))
    before = len(vision.received())
    with serving(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        content = [
            {"type": "text", "text": "What does this plot show?"},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64(JPEG)}"}},
        ]
        messages: Any = [{"role": "user", "content": content}]
        whole = client.chat.completions.create(model="stream-auto", messages=messages)
        assert whole.choices[0].message.content == "I see 1 image(s): JPEG 120x80."
        routing = whole.model_extra["routing"]  # type: ignore[index]
        assert routing["tier"] == "cloud" and routing["images"][0]["media_type"] == "image/jpeg"
        stream = client.chat.completions.create(model="stream-auto", messages=messages, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "I see 1 image(s): JPEG 120x80."
        assert len(vision.received()) == before + 2
        assert vision.received()[-1]["images"][0]["sha256"] == hashlib.sha256(JPEG).hexdigest()

        # Bad images: a 400 about the request, on both the whole and the streamed path.
        for bad, expected in [
            (f"data:image/png;base64,{b64(PNG[:100])}", "truncated or corrupt"),
            ("data:image/png;base64,bm90IGFuIGltYWdl", "not an image"),
        ]:
            parts = [content[0], {"type": "image_url", "image_url": {"url": bad}}]
            for streamed in (False, True):
                with pytest.raises(openai.BadRequestError) as caught:
                    client.chat.completions.create(
                        model="stream-auto",
                        messages=[{"role": "user", "content": parts}],  # type: ignore[list-item]
                        stream=streamed,
                    )
                assert expected in caught.value.message
        # Under institutional privacy: a 400 naming the rule, and the cloud never asked.
        with pytest.raises(openai.BadRequestError, match="privacy=institutional"):
            client.chat.completions.create(
                model="stream-auto", messages=messages, extra_body={"privacy": "institutional"}
            )
        # Pinned to the text-only local tier: a 400, not a silent drop of the image.
        with pytest.raises(openai.BadRequestError, match="does not read them"):
            client.chat.completions.create(model="stream-local", messages=messages)
    assert len(vision.received()) == before + 2


def test_oversize_images_get_a_clear_error_from_the_server_and_nothing_is_routed(
    vision: VisionServer, vision_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    from langchain_stream.config import Settings
    from langchain_stream.server import KeyStore, create_app

    monkeypatch.setenv("STREAM_IMAGE_MAX_BYTES", str(len(JPEG) - 1))
    get_settings.cache_clear()
    settings = Settings(max_body_bytes=64 * 1024)
    app = create_app(StreamChatModel(), settings=settings, keys=KeyStore([]))
    before = len(vision.received())
    noise = Image.frombytes("RGB", (200, 150), random.Random(0).randbytes(200 * 150 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG")  # noise does not compress: about 90 kB
    big = out.getvalue()
    assert len(big) * 4 // 3 > settings.max_body_bytes
    with serving(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)

        def send(media: str, raw: bytes) -> Any:
            part = {"type": "image_url", "image_url": {"url": f"data:{media};base64,{b64(raw)}"}}
            return client.chat.completions.create(
                model="stream-auto",
                messages=[{"role": "user", "content": [part]}],  # type: ignore[list-item]
            )

        with pytest.raises(openai.BadRequestError, match=r"image_max_bytes"):
            send("image/jpeg", JPEG)
        with pytest.raises(openai.APIStatusError) as caught:
            send("image/png", big)
        assert caught.value.status_code == 413
        assert "setting max_body_bytes" in caught.value.message
    assert len(vision.received()) == before


def test_the_cli_sends_image_files(
    vision: VisionServer, vision_env: dict[str, str], tmp_path: Path
) -> None:
    png, jpeg = tmp_path / "plot.png", tmp_path / "scan.jpg"
    png.write_bytes(PNG)
    jpeg.write_bytes(JPEG)
    before = len(vision.received())
    command = [sys.executable, "-m", "langchain_stream.cli", "chat", "What are these?"]
    done = subprocess.run(
        [*command, "--image", str(png), "--image", str(jpeg), "--json"],
        capture_output=True,
        text=True,
        timeout=120 * TIME_UNIT_S,
        env={**os.environ, **vision_env},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["text"] == "I see 2 image(s): PNG 96x64, JPEG 120x80."
    assert summary["tier"] == "cloud" and summary["routing"]["tier"] == "cloud"
    assert [i["media_type"] for i in summary["images"]] == ["image/png", "image/jpeg"]
    assert [i["sha256"] for i in vision.received()[before]["images"]] == [
        hashlib.sha256(PNG).hexdigest(),
        hashlib.sha256(JPEG).hexdigest(),
    ]
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    refused = subprocess.run(
        [*command, "--image", str(bad)],
        capture_output=True,
        text=True,
        timeout=120 * TIME_UNIT_S,
        env={**os.environ, **vision_env},
        check=False,
    )
    assert refused.returncode == 1
    assert "not an image" in refused.stdout + refused.stderr
    assert len(vision.received()) == before + 1
