"""Timeouts of the router and its tiers, and bounds on a request's images: value objects with
one documented default each.

Every timeout a tier or the relay client applies by default comes from :data:`DEFAULT_TIMEOUTS`
(the settings' ``first_token_timeout_s`` and ``tier_timeout_s`` default to the same values), so
two modules cannot disagree about, say, how long a stream may stay silent. ``None`` turns a
bound off. The relay *server*'s own bounds (how long a channel may wait for its peer, how
long it may stay idle on both ends) are the server's limits, in
:class:`~langchain_stream.relay.limits.RelayLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_stream.config import Settings


@dataclass(frozen=True)
class Timeouts:
    """How long the router and its tiers wait, in seconds."""

    first_token_s: float | None = 60.0
    """For a tier's first token; past it the router falls back to the next tier."""
    total_s: float | None = 120.0
    """For a whole answer on a tier: waiting, reading the prompt and writing all count."""
    idle_s: float | None = 30.0
    """Between two tokens of a streamed answer, once the first one arrived."""
    open_s: float | None = 10.0
    """For a connection to a relay to open."""
    close_s: float = 2.0
    """For a WebSocket's closing handshake, before the connection is dropped."""
    readiness_s: float = 5.0
    """For a tier's readiness check (e.g. an OpenAI-compatible API's ``GET /models``)."""


DEFAULT_TIMEOUTS = Timeouts()
"""The defaults every module reads."""


DEFAULT_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""The image types OpenAI-compatible vision models commonly accept."""


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on the images of one request (checked by :mod:`langchain_stream.images`)."""

    max_bytes: int = 10 * 1024 * 1024
    """Largest decoded image, in bytes (10 MiB)."""
    max_images: int = 8
    """Most images in one request, over all its messages."""
    max_pixels: int = 40_000_000
    """Most pixels (width x height) of one image: 40 megapixels, more than a phone camera's
    photo (which a vision model downscales anyway), and bounding what decoding one costs."""
    media_types: frozenset[str] = DEFAULT_MEDIA_TYPES
    """Media types accepted for inline images."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        """The limits of the ``image_*`` settings."""
        return cls(
            max_bytes=settings.image_max_bytes,
            max_images=settings.image_max_count,
            max_pixels=settings.image_max_pixels,
            media_types=frozenset(t.strip().lower() for t in settings.image_media_types),
        )


DEFAULT_IMAGE_LIMITS = ImageLimits()
"""The image limits every module reads by default."""

__all__ = [
    "DEFAULT_IMAGE_LIMITS",
    "DEFAULT_MEDIA_TYPES",
    "DEFAULT_TIMEOUTS",
    "ImageLimits",
    "Timeouts",
]
