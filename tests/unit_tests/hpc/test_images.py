"""Which images stay in the HPC task and which are uploaded, and the worker's checks on them."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from langchain_stream.errors import ConfigurationError, InvalidRequestError
from langchain_stream.hpc.images import (
    UPLOAD_CHUNK_CHARS,
    UPLOAD_URL_PREFIX,
    ImageTransport,
    check_refs,
    encoded_length,
    parse_data_url,
    resolve_images,
    split_images,
    unpack_upload,
)

SMALL = bytes(range(256)) * 4  # 1 KiB
LARGE = bytes(range(256)) * 1200  # 300 KiB


def url_of(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def user(*images: str, text: str = "What is this?") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {"role": "user", "content": parts}


def urls(messages: list[dict[str, Any]]) -> list[str]:
    return [
        part["image_url"]["url"]
        for message in messages
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


def test_messages_without_images_pass_untouched() -> None:
    messages = [{"role": "user", "content": "hi"}, user(text="no image")]
    assert split_images(messages) == (messages, [])


def test_a_small_image_stays_inline_and_a_large_one_is_referenced() -> None:
    messages = [user(url_of(SMALL), url_of(LARGE, "image/jpeg"))]
    task_messages, uploads = split_images(messages)
    assert urls(task_messages) == [url_of(SMALL), f"{UPLOAD_URL_PREFIX}0"]
    assert urls(messages)[1] == url_of(LARGE, "image/jpeg")  # the caller's messages unchanged
    [upload] = uploads
    assert upload.ref == {
        "bytes": len(LARGE),
        "mime_type": "image/jpeg",
        "sha256": hashlib.sha256(LARGE).hexdigest(),
    }
    assert "".join(upload.chunks()) == base64.b64encode(LARGE).decode()
    assert max(len(chunk) for chunk in upload.chunks()) == UPLOAD_CHUNK_CHARS


def test_inline_images_share_one_budget() -> None:
    limits = ImageTransport(inline_max_bytes=1024, inline_total_bytes=2048)
    task_messages, uploads = split_images([user(*[url_of(SMALL)] * 3)], limits)
    assert urls(task_messages) == [url_of(SMALL), url_of(SMALL), f"{UPLOAD_URL_PREFIX}0"]
    assert len(uploads) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.org/a.png", "inline image data only"),
        ("http://10.0.0.1/a.png", "compute nodes usually cannot reach"),
        ("file:///etc/passwd", "must be inline data"),
        ("data:image/png,rawbytes", "must be inline data"),
        ("data:text/plain;base64,aGk=", "not an image"),
        ("data:image/png;base64,***", "not valid base64"),
        ("data:image/png;base64,", "is empty"),
    ],
)
def test_what_the_hpc_tier_cannot_take_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        split_images([user(url)])


def test_bounds_on_count_and_size() -> None:
    with pytest.raises(InvalidRequestError, match="at most 2"):
        split_images([user(*[url_of(SMALL)] * 3)], ImageTransport(max_images=2))
    with pytest.raises(InvalidRequestError, match="per image"):
        split_images([user(url_of(LARGE))], ImageTransport(max_image_bytes=1000))
    with pytest.raises(InvalidRequestError, match="bound for one request"):
        split_images([user(url_of(SMALL), url_of(SMALL))], ImageTransport(max_total_bytes=1500))


def test_base64_with_line_breaks_is_read_and_sent_canonical() -> None:
    wrapped = base64.encodebytes(SMALL).decode()  # 76-character lines
    mime, data = parse_data_url(f"data:image/png;base64,{wrapped}")
    assert (mime, data) == ("image/png", SMALL)
    task_messages, _ = split_images([user(f"data:image/PNG;base64,{wrapped}")])
    assert urls(task_messages) == [url_of(SMALL)]


def test_limits_are_checked_on_creation() -> None:
    with pytest.raises(ConfigurationError):
        ImageTransport(max_images=-1)


# --------------------------------------------------------------------------- the worker's side


def _uploaded(*images: bytes) -> tuple[list[Any], str]:
    _, uploads = split_images(
        [user(*[url_of(i) for i in images])], ImageTransport(inline_max_bytes=0)
    )
    return [u.ref for u in uploads], "".join(u.data for u in uploads)


def test_the_worker_splits_checks_and_puts_the_images_back() -> None:
    refs, text = _uploaded(LARGE, SMALL)
    assert check_refs(refs) == len(text) == encoded_length(len(LARGE)) + encoded_length(len(SMALL))
    data_urls = unpack_upload(text, refs)
    assert data_urls == [url_of(LARGE), url_of(SMALL)]
    task = [user(f"{UPLOAD_URL_PREFIX}1", url_of(SMALL), f"{UPLOAD_URL_PREFIX}0")]
    assert urls(resolve_images(task, data_urls)) == [url_of(SMALL), url_of(SMALL), url_of(LARGE)]


def test_a_truncated_or_padded_upload_is_refused() -> None:
    refs, text = _uploaded(LARGE)
    with pytest.raises(InvalidRequestError, match="truncated"):
        unpack_upload(text[:-4], refs)
    with pytest.raises(InvalidRequestError, match="longer than the task declares"):
        unpack_upload(text + "AAAA", refs)


def test_an_altered_upload_fails_its_digest() -> None:
    refs, text = _uploaded(LARGE)
    altered = ("B" if text[100] == "A" else "A").join((text[:100], text[101:]))
    with pytest.raises(InvalidRequestError, match="does not match the SHA-256 digest"):
        unpack_upload(altered, refs)


def test_the_worker_refuses_references_to_nothing_and_urls() -> None:
    with pytest.raises(InvalidRequestError, match="did not upload"):
        resolve_images([user(f"{UPLOAD_URL_PREFIX}0")], [])
    with pytest.raises(InvalidRequestError, match="did not upload"):
        resolve_images([user(f"{UPLOAD_URL_PREFIX}x")], [url_of(SMALL)])
    with pytest.raises(InvalidRequestError, match="inline"):
        resolve_images([user("https://example.org/a.png")], [])


@pytest.mark.parametrize(
    "ref",
    [
        {"bytes": 0, "mime_type": "image/png", "sha256": "0" * 64},
        {"bytes": 10, "mime_type": "text/plain", "sha256": "0" * 64},
        {"bytes": 10, "mime_type": "image/png", "sha256": "xyz"},
        {"bytes": True, "mime_type": "image/png", "sha256": "0" * 64},
        {"bytes": 10**9, "mime_type": "image/png", "sha256": "0" * 64},
    ],
)
def test_the_worker_refuses_a_malformed_or_oversized_declaration(ref: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match="malformed or too large"):
        check_refs([ref])  # type: ignore[list-item]
