"""Images on the HPC tier: which stay in the task, which go up the relay, and their checks.

A Globus Compute submission is bounded (about 10 MB for the whole task, see
:data:`GLOBUS_TASK_PAYLOAD_LIMIT_BYTES`), and what it carries is kept by the Globus service
until the task runs. So an image stays inline in the task only when it is small
(:class:`ImageTransport`); a larger one is replaced in the messages by a reference
(``stream-upload:<n>``) and its bytes go to the worker through the relay, on a second channel
sealed with a key of its own; the task carries only its size, media type and SHA-256 digest
(docs/design.md#images-on-the-hpc-tier).

Everything here is pure: the client splits the messages (:func:`split_images`), the worker
checks what arrived (:func:`unpack_upload`) and puts the images back (:func:`resolve_images`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, TypedDict

from langchain_stream.errors import ConfigurationError, InvalidRequestError
from langchain_stream.images import compact_base64, decode_base64

_KIB = 1024
_MIB = 1024 * _KIB

GLOBUS_TASK_PAYLOAD_LIMIT_BYTES = 10 * 1000 * 1000
"""Globus Compute's documented bound on one task submission (10 MB; the SDK has no constant
for it: the web service refuses a larger one)."""

UPLOAD_URL_PREFIX = "stream-upload:"
"""An ``image_url`` URL naming the n-th uploaded image of the task (never a caller's URL:
the client accepts inline ``data:`` URLs only)."""

UPLOAD_CHUNK_CHARS = 48 * _KIB
"""Base64 characters per relay token of an upload: one token fills most of a 64 KiB frame."""

_DATA_URL = re.compile(r"^data:(?P<mime>[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)(?:;[^,;]*)*;base64,")


@dataclass(frozen=True, slots=True)
class ImageTransport:
    """Bounds on the images of one HPC request, checked by the client and again by the worker."""

    inline_max_bytes: int = 128 * _KIB
    """An image up to this size (decoded) travels inside the task."""
    inline_total_bytes: int = 512 * _KIB
    """Inline images of one request together; past it the next images are uploaded. Base64
    makes that about 0.7 MB of task, far under Globus's 10 MB."""
    max_image_bytes: int = 20 * _MIB
    """One image, decoded."""
    max_images: int = 16
    """Images in one request."""
    max_total_bytes: int = 64 * _MIB
    """All images of one request, decoded."""

    def __post_init__(self) -> None:
        for name in (
            "inline_max_bytes",
            "inline_total_bytes",
            "max_image_bytes",
            "max_images",
            "max_total_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"image limit {name} must be a non-negative integer")


DEFAULT_IMAGE_TRANSPORT = ImageTransport()


class ImageRef(TypedDict):
    """What the task says of one uploaded image: enough to check it, nothing of its content."""

    bytes: int
    mime_type: str
    sha256: str


@dataclass(frozen=True)
class Upload:
    """One image that goes up the relay: its base64 text and what the task says of it."""

    mime_type: str
    data: str = field(repr=False)
    """Canonical base64 of the image's bytes."""
    size: int
    sha256: str

    @property
    def ref(self) -> ImageRef:
        return ImageRef(bytes=self.size, mime_type=self.mime_type, sha256=self.sha256)

    def chunks(self) -> list[str]:
        """The base64 text in relay-token-sized pieces."""
        step = UPLOAD_CHUNK_CHARS
        return [self.data[i : i + step] for i in range(0, len(self.data), step)]


def parse_data_url(url: str) -> tuple[str, bytes]:
    """The media type and bytes of a ``data:image/...;base64,`` URL.

    Raises:
        InvalidRequestError: Not a base64 data URL of an image, or not valid base64.
    """
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequestError(
            "an image must be inline data (data:image/...;base64,...) for the HPC tier"
        )
    mime = match["mime"].lower()
    if not mime.startswith("image/"):
        raise InvalidRequestError(f"an image block carries {mime!r} data, not an image")
    try:
        data = decode_base64(compact_base64(url[match.end() :]))
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"an {mime} image is not valid base64") from None
    if not data:
        raise InvalidRequestError(f"an {mime} image is empty")
    return mime, data


def _image_urls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``image_url`` objects of OpenAI-style messages, in order."""
    found = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                    raise InvalidRequestError("an image_url part has no url")
                found.append(image)
    return found


def image_count(messages: list[dict[str, Any]]) -> int:
    """Image parts in OpenAI-style ``messages``."""
    return len(_image_urls(messages))


def has_images(messages: list[dict[str, Any]]) -> bool:
    """Whether OpenAI-style ``messages`` carry any image part."""
    return bool(_image_urls(messages))


def split_images(
    messages: list[dict[str, Any]], limits: ImageTransport = DEFAULT_IMAGE_TRANSPORT
) -> tuple[list[dict[str, Any]], list[Upload]]:
    """Keep small images inline and take the others out for upload (the client's side).

    Args:
        messages: OpenAI-style messages (``convert_to_openai_messages``), not modified.

    Returns:
        The messages the task carries (large images replaced by ``stream-upload:<n>``), and
        the uploads in reference order.

    Raises:
        InvalidRequestError: An image given by URL (a compute node usually cannot reach the
            internet), not an image, bad base64, or past a bound of ``limits``.
    """
    if not has_images(messages):
        return messages, []
    messages = copy.deepcopy(messages)
    images = _image_urls(messages)
    if len(images) > limits.max_images:
        raise InvalidRequestError(
            f"{len(images)} images in one request; the HPC tier takes at most {limits.max_images}"
        )
    uploads: list[Upload] = []
    inline_total = total = 0
    for number, image in enumerate(images, start=1):
        url = image["url"]
        if url.startswith(("http://", "https://")):
            raise InvalidRequestError(
                f"image {number} is a URL ({url[:60]}); the HPC tier takes inline image data "
                "only (data:image/...;base64,...), because compute nodes usually cannot reach "
                "the internet"
            )
        mime, data = parse_data_url(url)
        if len(data) > limits.max_image_bytes:
            raise InvalidRequestError(
                f"image {number} has {len(data):,} bytes; the HPC tier takes at most "
                f"{limits.max_image_bytes:,} per image"
            )
        total += len(data)
        if total > limits.max_total_bytes:
            raise InvalidRequestError(
                f"the images of this request have over {limits.max_total_bytes:,} bytes, the "
                "HPC tier's bound for one request"
            )
        encoded = base64.b64encode(data).decode("ascii")
        if (
            len(data) <= limits.inline_max_bytes
            and inline_total + len(data) <= limits.inline_total_bytes
        ):
            inline_total += len(data)
            image["url"] = f"data:{mime};base64,{encoded}"
            continue
        image["url"] = f"{UPLOAD_URL_PREFIX}{len(uploads)}"
        digest = hashlib.sha256(data).hexdigest()
        uploads.append(Upload(mime_type=mime, data=encoded, size=len(data), sha256=digest))
    return messages, uploads


def encoded_length(size: int) -> int:
    """Characters of the canonical base64 of ``size`` bytes."""
    return 4 * math.ceil(size / 3)


def check_refs(refs: list[ImageRef], limits: ImageTransport = DEFAULT_IMAGE_TRANSPORT) -> int:
    """Check what a task declares it uploads (the worker's side); return the base64 length due.

    Raises:
        InvalidRequestError: A malformed entry, or past a bound of ``limits``.
    """
    if not isinstance(refs, list) or len(refs) > limits.max_images:
        raise InvalidRequestError(f"a task declares more than {limits.max_images} uploads")
    total = 0
    for number, ref in enumerate(refs, start=1):
        size = ref.get("bytes") if isinstance(ref, dict) else None
        digest = ref.get("sha256") if isinstance(ref, dict) else None
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or not 0 < size <= limits.max_image_bytes
            or not isinstance(digest, str)
            or not re.fullmatch(r"[0-9a-f]{64}", digest)
            or not str(ref.get("mime_type", "")).startswith("image/")
        ):
            raise InvalidRequestError(f"upload {number} of the task is malformed or too large")
        total += size
    if total > limits.max_total_bytes:
        raise InvalidRequestError(f"the task declares over {limits.max_total_bytes:,} bytes")
    return sum(encoded_length(ref["bytes"]) for ref in refs)


def unpack_upload(text: str, refs: list[ImageRef]) -> list[str]:
    """Split and check the uploaded base64 text; return each image as a data URL.

    Raises:
        InvalidRequestError: The upload is truncated, longer than declared, not base64, or an
            image does not match its digest (altered on the way or by the sender).
    """
    due = sum(encoded_length(ref["bytes"]) for ref in refs)
    if len(text) < due:
        raise InvalidRequestError(
            f"the image upload is truncated: {len(text):,} of {due:,} base64 characters arrived"
        )
    if len(text) > due:
        raise InvalidRequestError(
            f"the image upload is longer than the task declares ({len(text):,} > {due:,})"
        )
    urls: list[str] = []
    offset = 0
    for number, ref in enumerate(refs, start=1):
        piece = text[offset : offset + encoded_length(ref["bytes"])]
        offset += len(piece)
        try:
            data = decode_base64(piece)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(f"uploaded image {number} is not valid base64") from None
        if len(data) != ref["bytes"] or hashlib.sha256(data).hexdigest() != ref["sha256"]:
            raise InvalidRequestError(
                f"uploaded image {number} does not match the SHA-256 digest in the task: it "
                "was altered on the way or by the sender"
            )
        urls.append(f"data:{ref['mime_type']};base64,{piece}")
    return urls


def resolve_images(messages: list[dict[str, Any]], uploaded: list[str]) -> list[dict[str, Any]]:
    """The messages with each ``stream-upload:<n>`` replaced by its data URL (the worker's side).

    Every image must then be inline data: the worker never fetches a URL.

    Raises:
        InvalidRequestError: A reference to no upload, or an image that is not inline data.
    """
    if not has_images(messages):
        return messages
    messages = copy.deepcopy(messages)
    for image in _image_urls(messages):
        url = image["url"]
        if url.startswith(UPLOAD_URL_PREFIX):
            index = url[len(UPLOAD_URL_PREFIX) :]
            if not index.isdigit() or int(index) >= len(uploaded):
                raise InvalidRequestError(f"the task refers to an image it did not upload: {url}")
            image["url"] = uploaded[int(index)]
        else:
            parse_data_url(url)  # raises for anything but inline image data
    return messages


__all__ = [
    "DEFAULT_IMAGE_TRANSPORT",
    "GLOBUS_TASK_PAYLOAD_LIMIT_BYTES",
    "UPLOAD_CHUNK_CHARS",
    "UPLOAD_URL_PREFIX",
    "ImageRef",
    "ImageTransport",
    "Upload",
    "check_refs",
    "encoded_length",
    "has_images",
    "image_count",
    "parse_data_url",
    "resolve_images",
    "split_images",
    "unpack_upload",
]
