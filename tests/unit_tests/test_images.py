"""Images in messages: found in every shape langchain-core accepts, checked, described."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from PIL import Image

from langchain_stream.errors import InvalidRequestError
from langchain_stream.images import (
    has_images,
    image_block_from_file,
    image_blocks,
    inspect_images,
)
from langchain_stream.limits import DEFAULT_IMAGE_LIMITS, ImageLimits


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    """A real image, drawn here: a gradient, so the encoded data is not trivial."""
    image = Image.new("RGB", size)
    image.putdata([(x * 4 % 256, y * 5 % 256, 128) for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def ask(*blocks: dict) -> list:
    return [HumanMessage([{"type": "text", "text": "What does this show?"}, *blocks])]


PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "base64": b64(PNG), "mime_type": "image/png"},  # v1
        {"type": "image", "source_type": "base64", "data": b64(PNG), "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
        {"type": "image_url", "image_url": f"data:image/png;base64,{b64(PNG)}"},
    ],
    ids=["v1", "legacy", "openai", "openai-string"],
)
def test_every_inline_shape_is_found_decoded_and_described(block: dict) -> None:
    messages = ask(block)
    assert has_images(messages)
    (info,) = inspect_images(messages)
    assert (info.where, info.source, info.media_type) == (
        "messages[0].content[1]",
        "inline",
        "image/png",
    )
    assert (info.bytes, info.width, info.height) == (len(PNG), 64, 48)
    assert info.describe() == f"image/png, {len(PNG)} bytes, 64x48"
    assert info.record() == {
        "source": "inline",
        "media_type": "image/png",
        "bytes": len(PNG),
        "width": 64,
        "height": 48,
    }


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "url": "https://example.org/plot.png"},
        {"type": "image", "source_type": "url", "url": "https://example.org/plot.png"},
        {"type": "image_url", "image_url": {"url": "https://example.org/plot.png"}},
    ],
    ids=["v1", "legacy", "openai"],
)
def test_an_image_by_url_is_counted_not_fetched(block: dict) -> None:
    (info,) = inspect_images(ask(block))
    assert info.source == "url" and info.bytes is None
    assert info.record() == {"source": "url"}


def test_text_only_messages_have_no_images() -> None:
    messages = [SystemMessage("be brief"), HumanMessage("hi"), AIMessage("hello")]
    assert not has_images(messages)
    assert inspect_images(messages) == []


def test_images_anywhere_in_the_conversation_are_found_in_order() -> None:
    messages = [
        *ask({"type": "image", "base64": b64(JPEG), "mime_type": "image/jpeg"}),
        AIMessage("A gradient."),
        *ask({"type": "image", "base64": b64(PNG), "mime_type": "image/png"}),
    ]
    assert [where for where, _ in image_blocks(messages)] == [
        "messages[0].content[1]",
        "messages[2].content[1]",
    ]
    assert [i.media_type for i in inspect_images(messages)] == ["image/jpeg", "image/png"]


def png_block(data: bytes | str) -> dict:
    """An inline block declared PNG, whatever ``data`` holds."""
    encoded = data if isinstance(data, str) else b64(data)
    return {"type": "image", "base64": encoded, "mime_type": "image/png"}


def refused(block: dict, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        inspect_images(ask(block), limits)
    return str(caught.value)


def test_data_that_is_not_an_image_is_refused() -> None:
    message = refused(
        {"type": "image", "base64": b64(b"%PDF-1.7 not an image at all"), "mime_type": "image/png"}
    )
    assert message.startswith("messages[0].content[1]: the data is not an image")


def test_a_truncated_image_is_refused() -> None:
    for raw in (PNG[: len(PNG) // 2], JPEG[: len(JPEG) // 2]):
        assert "truncated or corrupt" in refused(png_block(raw))


def test_a_corrupt_image_is_refused() -> None:
    corrupt = bytearray(PNG)
    corrupt[60:80] = b"\xff" * 20  # inside the image data: its checksum no longer matches
    assert "truncated or corrupt" in refused(png_block(bytes(corrupt)))


def test_invalid_base64_is_refused() -> None:
    assert "not valid base64" in refused(png_block("!!!not-base64!!!"))


def test_an_oversize_image_is_refused_before_it_is_decoded() -> None:
    limits = ImageLimits(max_bytes=len(PNG) - 1)
    message = refused(png_block(PNG), limits)
    assert f"the image has {len(PNG)} bytes; at most {len(PNG) - 1}" in message
    assert "image_max_bytes" in message
    # far past the limit: refused from the base64 length alone
    assert "image_max_bytes" in refused(png_block("A" * 4_000_000), limits)


def test_too_many_pixels_are_refused_from_the_header() -> None:
    big = image_bytes("PNG", (400, 300))
    message = refused(png_block(big), ImageLimits(max_pixels=100_000))
    assert "400x300 (120000 pixels); at most 100000 pixels" in message
    assert "image_max_pixels" in message


def test_too_many_images_are_refused() -> None:
    block = png_block(PNG)
    with pytest.raises(InvalidRequestError, match=r"3 images; at most 2 .*image_max_count"):
        inspect_images(ask(block, block, block), ImageLimits(max_images=2))


def test_a_type_not_allowed_is_refused() -> None:
    bmp = image_bytes("BMP")
    bmp_block = {"type": "image", "base64": b64(bmp), "mime_type": "image/png"}
    assert "BMP images are not allowed" in refused(bmp_block)
    declared = {"type": "image", "base64": b64(PNG), "mime_type": "image/tiff"}
    assert "the media type 'image/tiff' is not allowed" in refused(declared)
    only_jpeg = ImageLimits(media_types=frozenset({"image/jpeg"}))
    assert "the media type 'image/png' is not allowed" in refused(png_block(PNG), only_jpeg)


def test_a_declared_type_that_lies_is_refused() -> None:
    block = {"type": "image", "base64": b64(JPEG), "mime_type": "image/png"}
    assert "declared 'image/png' but its data is 'image/jpeg'" in refused(block)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"type": "image"}, "no URL or data"),
        ({"type": "image", "base64": b64(PNG)}, "needs its mime_type"),
        ({"type": "image", "source_type": "base64", "data": ""}, "no base64 data"),
        ({"type": "image", "file_id": "file-123"}, "by file id are not supported"),
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, "must be http(s)"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,%89PNG"}}, "base64-encoded"),
    ],
)
def test_blocks_without_usable_data_are_refused(block: dict, expected: str) -> None:
    assert expected in refused(block)


def test_an_image_file_becomes_a_standard_block(tmp_path: Path) -> None:
    path = tmp_path / "plot.jpg"
    path.write_bytes(JPEG)
    block = image_block_from_file(path)
    assert block == {"type": "image", "base64": b64(JPEG), "mime_type": "image/jpeg"}
    (info,) = inspect_images(ask(block))
    assert (info.width, info.height) == (64, 48)


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("just words")
    with pytest.raises(InvalidRequestError, match="not an image"):
        image_block_from_file(path)
    with pytest.raises(InvalidRequestError, match="cannot read the image"):
        image_block_from_file(tmp_path / "missing.png")


def test_a_jpeg_declared_image_jpg_is_a_jpeg() -> None:
    block = {"type": "image", "base64": b64(JPEG), "mime_type": "image/jpg"}
    (info,) = inspect_images(ask(block))
    assert info.media_type == "image/jpeg"
