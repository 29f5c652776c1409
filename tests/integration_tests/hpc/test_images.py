"""Images on the HPC path, end to end: ChatHPC → task (after a ComputeSerializer round trip) →
worker in a pool process → upload through the real relay → an OpenAI-compatible backend on
loopback that records what it received.

Faults: an upload altered or cut short by the sender (the test plays the client with the
relay's own producer, the only way to make a sender lie), a URL image, and a large image with
no relay to carry it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import os
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from globus_compute_sdk.serialize import ComputeSerializer
from langchain_core.messages import AIMessageChunk, HumanMessage
from PIL import Image
from websockets.asyncio.client import connect

from langchain_stream.errors import ChannelClosedError, InvalidRequestError
from langchain_stream.hpc import ChatHPC, LocalEndpoint, RelayProcess
from langchain_stream.hpc.images import (
    GLOBUS_TASK_PAYLOAD_LIMIT_BYTES,
    UPLOAD_URL_PREFIX,
    Upload,
)
from langchain_stream.hpc.task import (
    TASK_VERSION,
    UPLOAD_READY,
    ChannelSpec,
    TaskRequest,
    UploadSpec,
    decode_piece,
)
from langchain_stream.hpc.uploads import send_images
from langchain_stream.hpc.worker import hpc_worker
from langchain_stream.relay import (
    ChannelSealer,
    ConsumerClient,
    channel_url,
    mint_channel_tokens,
    new_channel_id,
    new_channel_key,
)
from tests.integration_tests.hpc.helpers import UNIT_S, RecordingExecutor
from tests.integration_tests.hpc.image_backend import Received, image_backend

pytestmark = pytest.mark.timeout(180)


def noise_png(side: int) -> bytes:
    """A real PNG of random pixels: it does not compress, so ``side`` sets its size."""
    pixels = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    pixels.save(out, format="PNG", compress_level=1)
    return out.getvalue()


@pytest.fixture(scope="module")
def big_png() -> bytes:
    image = noise_png(1300)
    assert 5_000_000 <= len(image) <= 5_300_000  # a 5 MB image
    return image


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[str, list[Received]]]:
    with image_backend() as served:
        yield served


class MeasuringExecutor(RecordingExecutor):
    """Records each task's serialized size, measured as the Globus SDK packs a submission."""

    def __init__(self, inner: LocalEndpoint) -> None:
        super().__init__(inner)
        self.payload_bytes: list[int] = []
        self.relay_urls = inner.relay_urls
        self.relay_secret = inner.relay_secret

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        serializer = ComputeSerializer()
        packed = serializer.pack_buffers(
            [serializer.serialize(fn), serializer.serialize(args), serializer.serialize(kwargs)]
        )
        self.payload_bytes.append(len(packed.encode()))
        return super().submit(fn, *args, **kwargs)


def data_url(image: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


def vision_hpc(executor: Any, url: str, **kwargs: Any) -> ChatHPC:
    return ChatHPC(
        executor=executor,
        backend_url=url,
        model="vision-test",
        first_token_timeout_s=60 * UNIT_S,
        idle_timeout_s=20 * UNIT_S,
        **kwargs,
    )


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    out = chunks[0]
    for chunk in chunks[1:]:
        out += chunk
    return out


async def test_a_5_mb_image_goes_up_the_relay_and_arrives_intact(
    endpoint: LocalEndpoint, backend: tuple[str, list[Received]], big_png: bytes
) -> None:
    url, received = backend
    small = noise_png(32)
    executor = MeasuringExecutor(endpoint)
    model = vision_hpc(executor, url)
    message = HumanMessage(
        content=[
            {"type": "text", "text": "What do these two images show?"},
            # LangChain's standard block, small: it stays in the task.
            {"type": "image", "base64": base64.b64encode(small).decode(), "mime_type": "image/png"},
            # OpenAI's image_url part, 5 MB: it goes up the relay.
            {"type": "image_url", "image_url": {"url": data_url(big_png)}},
        ]
    )
    before = len(received)
    chunks = [chunk async for chunk in model.astream([message])]
    answer = merged(chunks)

    assert len(received) == before + 1
    seen = received[-1].images
    assert seen == [
        {
            "mime_type": "image/png",
            "bytes": len(small),
            "sha256": hashlib.sha256(small).hexdigest(),
        },
        {
            "mime_type": "image/png",
            "bytes": len(big_png),
            "sha256": hashlib.sha256(big_png).hexdigest(),
        },
    ]
    assert hashlib.sha256(big_png).hexdigest()[:12] in answer.text
    # The task carried the small image and the large one's digest, not its bytes.
    [payload] = executor.payload_bytes
    assert payload < 64 * 1024 < len(big_png)
    assert payload < GLOBUS_TASK_PAYLOAD_LIMIT_BYTES
    hpc = answer.response_metadata["hpc"]
    assert hpc["mode"] == "relay"
    assert hpc["uploaded_images"] == 1 and hpc["upload_bytes"] == len(big_png)
    summary = executor.futures[0].result()
    assert summary["ok"], summary
    assert summary["images"]["inline"] == 1 and summary["images"]["uploaded"] == 1
    assert summary["images"]["upload_bytes"] == len(big_png)


def test_a_small_image_travels_in_the_task_even_in_batch_mode(
    endpoint: LocalEndpoint, backend: tuple[str, list[Received]]
) -> None:
    url, received = backend
    small = noise_png(48)
    executor = MeasuringExecutor(endpoint)
    model = vision_hpc(executor, url, mode="batch")
    message = HumanMessage(
        content=[
            {"type": "text", "text": "Describe it."},
            {"type": "image_url", "image_url": {"url": data_url(small)}},
        ]
    )
    answer = model.invoke([message])
    assert received[-1].images == [
        {"mime_type": "image/png", "bytes": len(small), "sha256": hashlib.sha256(small).hexdigest()}
    ]
    assert "I see 1 image(s)" in answer.text
    assert executor.payload_bytes[0] > len(small)  # it is inside the task


def test_a_large_image_without_a_relay_is_refused_before_any_task(
    endpoint: LocalEndpoint, backend: tuple[str, list[Received]], big_png: bytes
) -> None:
    url, _ = backend
    executor = MeasuringExecutor(endpoint)
    model = vision_hpc(executor, url, mode="batch")
    message = HumanMessage(content=[{"type": "image_url", "image_url": {"url": data_url(big_png)}}])
    with pytest.raises(InvalidRequestError, match=r"inline limit .* batch mode"):
        model.invoke([message])
    assert executor.payload_bytes == []


def test_an_image_url_is_refused_for_the_hpc_tier(
    endpoint: LocalEndpoint, backend: tuple[str, list[Received]]
) -> None:
    url, _ = backend
    executor = MeasuringExecutor(endpoint)
    model = vision_hpc(executor, url)
    message = HumanMessage(
        content=[
            {"type": "text", "text": "What is this?"},
            {"type": "image", "url": "https://example.org/plot.png"},
        ]
    )
    with pytest.raises(InvalidRequestError, match="inline image data only"):
        model.invoke([message])
    assert executor.payload_bytes == []


# --------------------------------------------------------------------------- a lying sender


def _upload_of(image: bytes) -> Upload:
    return Upload(
        mime_type="image/png",
        data=base64.b64encode(image).decode(),
        size=len(image),
        sha256=hashlib.sha256(image).hexdigest(),
    )


Sender = Callable[[list[str], str, str, bytes], Awaitable[object]]
"""Sends the upload: relay URLs, upload channel id, producer token, key."""


def uploading(upload: Upload) -> Sender:
    """A sender that uploads ``upload`` as the client does."""

    def send(urls: list[str], channel_id: str, token: str, key: bytes) -> Awaitable[object]:
        return send_images(urls, channel_id, token, key, [upload])

    return send


async def _run_with_upload(
    endpoint: LocalEndpoint, url: str, declared: Upload, send: Sender
) -> tuple[ChannelClosedError, dict[str, Any]]:
    """Submit a task declaring ``declared``, then let ``send`` upload when the worker asks."""
    urls, secret = endpoint.relay_urls, endpoint.relay_secret or ""
    answer_id, answer_key = new_channel_id(), new_channel_key()
    answer_tokens = mint_channel_tokens(secret, answer_id, 600)
    upload_id, upload_key = new_channel_id(), new_channel_key()
    upload_tokens = mint_channel_tokens(secret, upload_id, 600)
    request = TaskRequest(
        version=TASK_VERSION,
        messages=[
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": f"{UPLOAD_URL_PREFIX}0"}}],
            }
        ],
        params={"max_tokens": 8},
        backend={"url": url, "model": "vision-test"},
    )
    channel = ChannelSpec(
        relay_urls=urls,
        channel_id=answer_id,
        token=answer_tokens.producer,
        key=answer_key.hex(),
        upload=UploadSpec(
            channel_id=upload_id,
            token=upload_tokens.consumer,
            key=upload_key.hex(),
            images=[declared.ref],
        ),
    )
    consumer = ConsumerClient(
        urls,
        answer_id,
        answer_tokens.consumer,
        answer_key,
        first_token_timeout_s=60 * UNIT_S,
        idle_timeout_s=20 * UNIT_S,
    )
    async with consumer:
        task = asyncio.wrap_future(endpoint.submit(hpc_worker, request, channel))
        assert decode_piece(await anext(consumer)) == UPLOAD_READY
        await send(urls, upload_id, upload_tokens.producer, upload_key)
        with pytest.raises(ChannelClosedError) as failed:
            async for _ in consumer:
                pass
    return failed.value, await task


async def test_an_altered_upload_fails_the_digest_check(
    endpoint: LocalEndpoint, backend: tuple[str, list[Received]], big_png: bytes
) -> None:
    url, received = backend
    before = len(received)
    honest = _upload_of(big_png)
    flipped = bytearray(big_png)
    flipped[len(flipped) // 2] ^= 0x01  # one bit, same size
    altered = dataclasses.replace(honest, data=base64.b64encode(bytes(flipped)).decode())
    error, summary = await _run_with_upload(endpoint, url, honest, uploading(altered))
    assert "does not match the SHA-256 digest" in str(error)
    assert not summary["ok"] and "image upload failed" in summary["error"]
    assert len(received) == before  # nothing reached the backend


async def test_a_truncated_upload_is_a_clear_error(
    endpoint: LocalEndpoint, backend: tuple[str, list[Received]], big_png: bytes
) -> None:
    url, received = backend
    before = len(received)
    honest = _upload_of(big_png)
    cut = dataclasses.replace(honest, data=honest.data[: len(honest.data) // 2])
    error, summary = await _run_with_upload(endpoint, url, honest, uploading(cut))
    assert "the image upload is truncated" in str(error)
    assert not summary["ok"]
    assert len(received) == before


async def test_an_upload_frame_altered_in_transit_is_refused(
    endpoint: LocalEndpoint, backend: tuple[str, list[Received]], big_png: bytes
) -> None:
    url, received = backend
    before = len(received)
    honest = _upload_of(big_png)

    async def tamper(urls: list[str], channel_id: str, token: str, key: bytes) -> None:
        # What a hostile relay would forward: the sender's sealed frames, one bit flipped.
        frames = ChannelSealer(key, channel_id).pack_tokens(honest.chunks())
        frames[3] = frames[3][:-1] + bytes([frames[3][-1] ^ 1])
        async with connect(
            channel_url(urls[0], channel_id, "producer"),
            additional_headers={"Authorization": f"Bearer {token}"},
            compression=None,
            max_size=None,
        ) as raw:
            for frame in frames[:5]:
                await raw.send(frame)

    error, summary = await _run_with_upload(endpoint, url, honest, tamper)
    assert "image upload failed: RelayIntegrityError" in str(error)
    assert "failed authentication" in str(error)
    assert not summary["ok"]
    assert len(received) == before


async def test_a_5_mb_upload_crosses_a_relay_set_with_failover_on(
    endpoint: LocalEndpoint, backend: tuple[str, list[Received]], big_png: bytes
) -> None:
    # With two relays or more, every frame is held until acknowledged (a 1 MiB resend
    # window): the upload advances at the pace of the worker's ACKs.
    url, received = backend
    relays = [RelayProcess(secret="relay-set-secret-for-image-uploads") for _ in range(2)]
    for relay in relays:
        relay.start()
    try:
        model = vision_hpc(
            endpoint,
            url,
            relay_urls=[relay.url for relay in relays],
            relay_secret="relay-set-secret-for-image-uploads",
        )
        message = HumanMessage(
            content=[
                {
                    "type": "image",
                    "base64": base64.b64encode(big_png).decode(),
                    "mime_type": "image/png",
                }
            ]
        )
        answer = await model.ainvoke([message])
    finally:
        for relay in relays:
            relay.stop()
    assert received[-1].images[0]["sha256"] == hashlib.sha256(big_png).hexdigest()
    assert answer.response_metadata["hpc"]["uploaded_images"] == 1
