"""Images in chat messages: finding them, checking them against limits, describing them.

A request may carry images in any of the shapes langchain-core 1.x accepts:

- LangChain's standard block, v1: ``{"type": "image", "base64": ..., "mime_type": ...}`` or
  ``{"type": "image", "url": ...}``;
- the same, in the older shape: ``{"type": "image", "source_type": "base64", "data": ...,
  "mime_type": ...}`` or ``{"type": "image", "source_type": "url", "url": ...}``;
- OpenAI's part: ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``
  (or an ``http(s)`` URL).

Inline images are decoded and checked with Pillow (:func:`inspect_images`): the data must be a
whole image of an allowed type, within :class:`ImageLimits`. An image given by URL is not
fetched: the tier that receives it fetches it, so only its count is checked here. What the
routing record and the audit log keep of an image is :class:`ImageInfo`: where it is, its media
type, its size in bytes and pixels, never its bytes (docs/tiers.md#images).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_stream.errors import InvalidRequestError
from langchain_stream.limits import DEFAULT_IMAGE_LIMITS, ImageLimits

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage


IMAGE_BLOCK_TYPES = frozenset({"image", "image_url", "input_image"})
"""Content block types that carry an image (``input_image`` is counted, then refused: see
:func:`responses_image_error`)."""


def responses_image_error(where: str) -> InvalidRequestError:
    """The error for OpenAI's Responses API image block, which no tier here speaks.

    Every tier talks Chat Completions or llama.cpp, where the block means nothing: counted as an
    image (so it is never routed to a tier that cannot see, nor dropped), then refused.
    """
    return InvalidRequestError(
        f"{where}: 'input_image' is the OpenAI Responses API's image block; send the image as "
        "LangChain's image block ({'type': 'image', 'base64': ..., 'mime_type': ...}) or as an "
        "'image_url' part"
    )


@dataclass(frozen=True)
class ImageInfo:
    """What is known of one image, without its bytes."""

    where: str
    """Its place in the request: ``messages[1].content[0]``."""
    source: Literal["inline", "url"]
    """Carried in the request (``inline``) or fetched by the tier (``url``)."""
    media_type: str | None = None
    """The media type of the data (inline images)."""
    bytes: int | None = None
    """Decoded size (inline images)."""
    width: int | None = None
    height: int | None = None

    def describe(self) -> str:
        """One line for the audit log: ``image/png, 48213 bytes, 640x480``."""
        if self.source == "url":
            return "image by URL (not fetched here)"
        return f"{self.media_type}, {self.bytes} bytes, {self.width}x{self.height}"

    def record(self) -> dict[str, Any]:
        """The routing record's entry."""
        entry: dict[str, Any] = {"source": self.source}
        if self.source == "inline":
            entry.update(
                media_type=self.media_type, bytes=self.bytes, width=self.width, height=self.height
            )
        return entry


def image_blocks(messages: Sequence[BaseMessage]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every image block of ``messages``, with its place in the request."""
    for index, message in enumerate(messages):
        if isinstance(message.content, str):
            continue
        for part_index, block in enumerate(message.content):
            if isinstance(block, Mapping) and block.get("type") in IMAGE_BLOCK_TYPES:
                yield f"messages[{index}].content[{part_index}]", block


def has_images(messages: Sequence[BaseMessage]) -> bool:
    """Whether any message carries an image."""
    return next(image_blocks(messages), None) is not None


def inspect_images(
    messages: Sequence[BaseMessage], limits: ImageLimits = DEFAULT_IMAGE_LIMITS
) -> list[ImageInfo]:
    """Check every image of ``messages`` against ``limits`` and describe each.

    Reads each inline image whole (so a truncated or corrupt one is caught), after its header
    showed it within the pixel limit.

    Raises:
        InvalidRequestError: too many images; an image that is not an image, truncated,
            corrupt, of a type not allowed, larger than the limits, or a block without data.
    """
    blocks = list(image_blocks(messages))
    if len(blocks) > limits.max_images:
        raise InvalidRequestError(
            f"the request has {len(blocks)} images; at most {limits.max_images} are allowed "
            "(setting image_max_count)"
        )
    return [_inspect(where, block, limits) for where, block in blocks]


def _inspect(where: str, block: Mapping[str, Any], limits: ImageLimits) -> ImageInfo:
    source = _source(where, block)
    if source[0] == "url":
        return ImageInfo(where=where, source="url")
    _, declared, data = source
    if declared is not None and _canonical(declared) not in limits.media_types:
        raise _bad(where, f"the media type {declared!r} is not allowed")
    raw = _decode_base64(where, data, limits)
    media_type, width, height = _read_image(where, raw, limits)
    if declared is not None and _canonical(declared) != media_type:
        raise InvalidRequestError(
            f"{where}: the image is declared {declared!r} but its data is {media_type!r}"
        )
    return ImageInfo(
        where=where,
        source="inline",
        media_type=media_type,
        bytes=len(raw),
        width=width,
        height=height,
    )


def _source(
    where: str, block: Mapping[str, Any]
) -> tuple[Literal["url"]] | tuple[Literal["inline"], str | None, str]:
    """``("url",)`` or ``("inline", declared media type, base64 data)``."""
    if block.get("type") == "input_image":
        raise responses_image_error(where)
    if block.get("type") == "image_url":
        image = block.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
    elif block.get("source_type") == "base64" or isinstance(block.get("base64"), str):
        data = block.get("data") if block.get("source_type") == "base64" else block.get("base64")
        if not isinstance(data, str) or not data:
            raise InvalidRequestError(f"{where}: the image block has no base64 data")
        media_type = _media_type_of(block)
        if media_type is None:  # langchain-core requires it too, to convert the block
            raise InvalidRequestError(f"{where}: an inline image block needs its mime_type")
        return "inline", media_type, data
    else:
        url = block.get("url")
        if url is None and "file_id" in block:
            raise InvalidRequestError(
                f"{where}: images by file id are not supported; send the image inline "
                "(base64) or by URL"
            )
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"{where}: the image block has no URL or data")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if not comma or ";base64" not in header:
            raise InvalidRequestError(f"{where}: an image data URL must be base64-encoded")
        return "inline", header.split(";")[0].strip() or None, data
    if not url.startswith(("https://", "http://")):
        raise InvalidRequestError(f"{where}: an image URL must be http(s) or a data: URL")
    return ("url",)


_MEDIA_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


def _media_type_of(block: Mapping[str, Any]) -> str | None:
    value = block.get("mime_type")
    return value if isinstance(value, str) and value else None


def _canonical(media_type: str) -> str:
    """A declared media type as Pillow names it (clients often write ``image/jpg``)."""
    media_type = media_type.strip().lower()
    return _MEDIA_ALIASES.get(media_type, media_type)


def compact_base64(data: str) -> str:
    """``data`` without the line breaks and blanks base64 is often wrapped with."""
    # most is not wrapped, and joining 7 MB of it costs 50 ms
    return "".join(data.split()) if any(c in data for c in " \t\r\n") else data


def decode_base64(compact: str) -> bytes:
    """Strict base64 (no character outside the alphabet), decoded in C.

    Raises:
        binascii.Error: not valid base64.
    """
    # b64decode's validate=True checks with a regular expression first: 20 ms a megabyte
    return binascii.a2b_base64(compact, strict_mode=True)


def _decode_base64(where: str, data: str, limits: ImageLimits) -> bytes:
    compact = compact_base64(data)
    # Refuse an oversize image before decoding it: base64 holds 3 bytes in 4 characters.
    if len(compact) // 4 * 3 > limits.max_bytes + 2:
        raise _too_large(where, len(compact) // 4 * 3, limits)
    try:
        raw = decode_base64(compact)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{where}: the image data is not valid base64") from None
    if len(raw) > limits.max_bytes:
        raise _too_large(where, len(raw), limits)
    if not raw:
        raise InvalidRequestError(f"{where}: the image data is empty")
    return raw


def _read_image(where: str, raw: bytes, limits: ImageLimits) -> tuple[str, int, int]:
    """The media type and size of an image, checked whole."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:  # reads the header only
            # A camera's MPO file is a JPEG with more frames after the first: a JPEG to a tier.
            fmt = "JPEG" if image.format == "MPO" else image.format or ""
            media_type = Image.MIME.get(fmt, "")
            width, height = image.size
            if media_type not in limits.media_types:
                allowed = ", ".join(sorted(limits.media_types))
                raise _bad(
                    where,
                    f"{image.format or 'this'} images are not allowed (allowed: {allowed})",
                )
            if width * height > limits.max_pixels:
                raise _too_many_pixels(where, width, height, limits)
            _check_whole(image)
    except UnidentifiedImageError:
        raise InvalidRequestError(
            f"{where}: the data is not an image of a known type (PNG, JPEG, GIF, WebP)"
        ) from None
    except Image.DecompressionBombError:
        raise InvalidRequestError(
            f"{where}: the image has more than {limits.max_pixels} pixels "
            "(setting image_max_pixels)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, InvalidRequestError):
            raise
        raise InvalidRequestError(f"{where}: the image is truncated or corrupt") from None
    return media_type, width, height


def _check_whole(image: Any) -> None:
    """Read the whole image, as cheaply as its format allows: a truncated or corrupt one
    raises. A PNG's chunks are checked against their checksums (without inflating the
    pixels); a JPEG is decoded at an eighth of its size (every byte of it is still read);
    other formats are decoded."""
    if image.format == "PNG":
        image.verify()
        return
    if image.format in ("JPEG", "MPO"):
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()


def _bad(where: str, problem: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {problem} (setting image_media_types)")


def _too_large(where: str, size: int, limits: ImageLimits) -> InvalidRequestError:
    return InvalidRequestError(
        f"{where}: the image has {size} bytes; at most {limits.max_bytes} are allowed "
        "(setting image_max_bytes)"
    )


def _too_many_pixels(
    where: str, width: int, height: int, limits: ImageLimits
) -> InvalidRequestError:
    return InvalidRequestError(
        f"{where}: the image is {width}x{height} ({width * height} pixels); at most "
        f"{limits.max_pixels} pixels are allowed (setting image_max_pixels)"
    )


def image_block_from_file(path: Path, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> dict[str, Any]:
    """A LangChain standard image block holding the image file at ``path`` inline.

    Raises:
        InvalidRequestError: the file cannot be read, or is not an image within ``limits``.
    """
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise _too_large(str(path), size, limits)
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"{path}: cannot read the image: {exc.strerror}") from None
    media_type, _, _ = _read_image(str(path), raw, limits)
    return {
        "type": "image",
        "base64": base64.b64encode(raw).decode("ascii"),
        "mime_type": media_type,
    }


__all__ = [
    "ImageInfo",
    "ImageLimits",
    "compact_base64",
    "decode_base64",
    "has_images",
    "image_block_from_file",
    "image_blocks",
    "inspect_images",
]
