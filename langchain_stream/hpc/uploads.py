"""Image uploads through the relay: the client produces, the worker consumes.

The roles of the answer channel are reversed on a second channel of the same relays, sealed
with a key of its own (docs/design.md#images-on-the-hpc-tier). The worker joins first and says
so on the answer channel (:data:`~langchain_stream.hpc.task.UPLOAD_READY`); only then does the
client connect and send, so the relay forwards the bytes to a waiting consumer instead of
buffering them (its pre-consumer buffer holds 1 MiB), and an upload never waits on a queued
task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from langchain_stream.errors import InvalidRequestError
from langchain_stream.hpc.images import ImageRef, Upload, check_refs, unpack_upload
from langchain_stream.hpc.task import UploadSpec
from langchain_stream.relay.client import AsyncProducerClient, ConsumerClient

DEFAULT_UPLOAD_TIMEOUT_S = 30.0
"""The worker's wait for the client to start sending after it said it is ready, and between
two frames of the upload."""


async def send_images(
    relay_urls: Sequence[str],
    channel_id: str,
    token: str,
    key: bytes,
    uploads: Sequence[Upload],
) -> int:
    """Send the images' base64 text on the upload channel and end it with FINAL.

    Returns:
        The base64 characters sent.

    Raises:
        RelayError: The relay refused the channel or was lost during the upload.
    """
    # No coalescing window: every token already fills most of a frame.
    producer = AsyncProducerClient(list(relay_urls), channel_id, token, key, coalesce_s=0.0)
    sent = 0
    async with producer:
        for upload in uploads:
            for chunk in upload.chunks():
                producer.send(chunk)
                sent += len(chunk)
        await producer.finish()
    return sent


def receive_images(
    relay_urls: Sequence[str],
    spec: UploadSpec,
    ready: Callable[[], None],
    *,
    timeout_s: float = DEFAULT_UPLOAD_TIMEOUT_S,
) -> list[str]:
    """Join the upload channel, call ``ready`` (which tells the client), read and check the images.

    Runs on the worker's thread, with an event loop of its own for the consumer.

    Returns:
        Each image as a ``data:`` URL, in ``stream-upload:<n>`` order.

    Raises:
        InvalidRequestError: The task's upload spec is malformed or past a bound, or what
            arrived is truncated, too long or does not match a digest.
        RelayError: The relay refused the channel, the client failed, or a timeout passed.
    """
    refs: list[ImageRef] = spec["images"]
    due = check_refs(refs)
    try:
        key = bytes.fromhex(spec["key"])
    except (ValueError, TypeError):
        raise InvalidRequestError("the task's upload key is not hex") from None
    consumer = ConsumerClient(
        list(relay_urls),
        spec["channel_id"],
        spec["token"],
        key,
        first_token_timeout_s=timeout_s,
        idle_timeout_s=timeout_s,
    )

    async def read() -> str:
        await consumer.connect()
        try:
            await asyncio.to_thread(ready)
            parts: list[str] = []
            received = 0
            async for token in consumer:
                received += len(token)
                if received > due:  # never hold more than the task declared
                    raise InvalidRequestError(
                        f"the image upload is longer than the task declares ({due:,} characters)"
                    )
                parts.append(token)
            return "".join(parts)
        finally:
            await consumer.close()

    return unpack_upload(asyncio.run(read()), refs)


__all__ = ["DEFAULT_UPLOAD_TIMEOUT_S", "receive_images", "send_images"]
