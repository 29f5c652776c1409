"""The image langchain-tests' image tests fetch, served offline, and what a vision tier received.

``test_image_inputs`` and ``test_image_tool_message`` of langchain-tests' standard suite fetch a
PNG from raw.githubusercontent.com with ``httpx.get`` when they run. There is no internet here,
so :func:`serve_standard_image` answers that one fetch with a real PNG drawn with Pillow,
through httpx's public ``MockTransport``: every other ``httpx.get`` goes out as usual, and the
models' own traffic (their ``openai`` clients, to the loopback servers) is untouched. The PNG
is real: the router checks it whole with Pillow, and the loopback vision server decodes it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

IMAGE_HOST = "raw.githubusercontent.com"
"""Where the standard image tests fetch their image from."""


def plot_png() -> bytes:
    """A small line plot as a PNG: axes, a rising curve, a few markers."""
    image = Image.new("RGB", (160, 120), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(20, 100), (150, 100)], fill="black", width=2)  # x axis
    draw.line([(20, 10), (20, 100)], fill="black", width=2)  # y axis
    points = [(20 + 13 * i, 100 - (i * i) * 0.9) for i in range(11)]
    draw.line(points, fill="blue", width=2)
    for x, y in points[::2]:
        draw.ellipse([(x - 3, y - 3), (x + 3, y + 3)], fill="red")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class StandardImage:
    """The PNG served in place of the standard tests' image, and the URLs they fetched."""

    png: bytes = field(default_factory=plot_png)
    fetched: list[str] = field(default_factory=list)

    def as_received(self) -> dict[str, Any]:
        """The PNG as the loopback vision server records an inline image it decoded."""
        with Image.open(io.BytesIO(self.png)) as image:
            width, height = image.size
        return {
            "declared": "image/png",
            "format": "PNG",
            "width": width,
            "height": height,
            "bytes": len(self.png),
            "sha256": hashlib.sha256(self.png).hexdigest(),
        }


@contextmanager
def serve_standard_image(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandardImage]:
    """Answer the standard image tests' fetch from raw.githubusercontent.com with a real PNG."""
    image = StandardImage()

    def answer(request: httpx.Request) -> httpx.Response:
        image.fetched.append(str(request.url))
        return httpx.Response(200, content=image.png, headers={"content-type": "image/png"})

    real_get = httpx.get
    with httpx.Client(transport=httpx.MockTransport(answer)) as offline:

        def get(url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
            if httpx.URL(url).host != IMAGE_HOST:
                return real_get(url, **kwargs)
            return offline.get(url, **kwargs)

        monkeypatch.setattr(httpx, "get", get)
        yield image


def expected_images(test: str, image: StandardImage) -> list[list[dict[str, Any]]] | None:
    """The images a vision server should have received, request by request, during the
    standard test named ``test``; ``None`` for a test that sends none."""
    inline = [image.as_received()]
    if test == "test_image_inputs":
        # OpenAI's image_url part, the standard base64 block, the standard URL block: the
        # inline ones byte for byte, the link as given (the tier fetches it).
        (url,) = set(image.fetched)
        return [inline, inline, [{"url": url}]]
    if test == "test_image_tool_message":
        return [inline, inline]  # the tool's image: OpenAI's part, then the standard block
    return None
