"""Vision for llama.cpp models: a projector (mmproj) GGUF beside the language model's.

llama.cpp reads images through the model's multimodal projector, a second GGUF file (for
SmolVLM-256M-Instruct: ``mmproj-SmolVLM-256M-Instruct-Q8_0.gguf``). llama-cpp-python's generic
``MTMDChatHandler`` loads it (``clip_model_path``) and renders the chat with the model's own
template. Before llama.cpp sees the file, its structure is checked like any model file
(:mod:`~langchain_stream.llama.gguf_file`) and it must be a projector (architecture ``clip``):
handing llama.cpp the wrong file must be a clear error, never a crash.
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

from langchain_stream.errors import ModelLoadError
from langchain_stream.llama.gguf_file import GGUFInfo, check_gguf_file

PROJECTOR_ARCHITECTURE = "clip"
"""``general.architecture`` of every llama.cpp multimodal projector GGUF."""


def check_projector(path: Path) -> GGUFInfo:
    """Check that ``path`` is a complete projector GGUF.

    Raises:
        ModelLoadError: Missing, not GGUF, truncated or corrupt, or not a projector.
    """
    try:
        info = check_gguf_file(path)
    except ModelLoadError as exc:
        raise ModelLoadError(f"vision projector (mmproj): {exc}", path=str(path)) from exc
    if info.architecture != PROJECTOR_ARCHITECTURE:
        raise ModelLoadError(
            f"{path} is not a vision projector (mmproj) GGUF: its architecture is "
            f"{info.architecture!r}, a projector's is {PROJECTOR_ARCHITECTURE!r}",
            path=str(path),
        )
    return info


def projector_handler(path: Path) -> Any:
    """The llama-cpp-python chat handler that reads images through the projector at ``path``.

    Raises:
        ModelLoadError: The file fails :func:`check_projector`, or llama-cpp-python refuses it.
    """
    check_projector(path)
    from llama_cpp.llama_chat_format import MTMDChatHandler

    try:
        # CPU only: the package runs llama.cpp on the CPU (docs/design.md#testing).
        return MTMDChatHandler(clip_model_path=str(path), verbose=False, use_gpu=False)
    except ValueError as exc:
        raise ModelLoadError(
            f"llama.cpp refused the projector {path}: {exc}", path=str(path)
        ) from exc


def warm_up_image() -> str:
    """A 16 × 16 grey PNG as a data URL: the image a vision model is warmed up with."""
    side = 16
    rows = b"".join(b"\x00" + b"\x80" * side for _ in range(side))  # filter byte, grey pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


__all__ = ["PROJECTOR_ARCHITECTURE", "check_projector", "projector_handler", "warm_up_image"]
