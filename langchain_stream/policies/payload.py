"""What the cloud tier would send, and every piece of text in it.

The privacy check reads the request as it would leave: the messages in OpenAI's format
(content in all its parts, names, assistant tool calls with their arguments, tool results) and
every call argument (``tools`` with their descriptions and parameter schemas,
``response_format`` schemas, ``stop``, ...). Strings that hold JSON (tool-call arguments) are
read as JSON too, so escapes such as ``\\u0040`` hide nothing; ``data:`` URLs of a text type
are decoded and read. Content that cannot be read (images, inline or by URL, audio, files,
other binary data URLs) is reported as unscannable, for the ``unscannable_content`` rule to
decide; the URL of an image is read as text too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from langchain_core.messages import BaseMessage, convert_to_openai_messages
from pydantic import BaseModel

# Media types of data URLs read as text; any other data URL cannot be scanned.
_TEXT_MEDIA = ("text/", "application/json", "application/xml", "application/x-yaml")
# Containers of inline binary content in OpenAI's message format.
_BINARY_PARTS = {"input_audio": "audio", "file_data": "file"}
_KEY = "\x00key"  # marks a mapping's key in the walk
# Keys whose values are structure, not prose: read, but not joined into the flow.
_STRUCTURAL = frozenset({"role", "type", "id", "tool_call_id", "model", "format", "detail"})


@dataclass
class PayloadContent:
    """The text of a payload, and what in it could not be read."""

    texts: list[str] = field(default_factory=list)
    """Every string, keys and structural values (roles, ids) included."""
    flow: list[str] = field(default_factory=list)
    """The strings a reader would read on, in order: without keys and structural values, so
    data split across parts or messages joins up again."""
    unscannable: list[str] = field(default_factory=list)
    """What could not be scanned, described (``"data URL (image/png)"``), never its content."""


def cloud_payload(messages: Sequence[BaseMessage], call_kwargs: Mapping[str, Any]) -> dict:
    """The request body the cloud tier would send (OpenAI's chat-completions format)."""
    return {"messages": convert_to_openai_messages(list(messages)), **call_kwargs}


def payload_content(payload: Any) -> PayloadContent:
    """Every string in ``payload`` (keys included), in order, and its unscannable parts."""
    content = PayloadContent()
    stack: list[tuple[Any, str | None]] = [(payload, None)]
    while stack:  # a walk of its own, not recursion: a payload may nest deeply
        value, key = stack.pop()
        if isinstance(value, str):
            _read_string(value, key, content, stack)
        elif isinstance(value, Mapping):
            if (remote := _remote_content(value)) is not None:
                content.unscannable.append(remote)
            for name, item in reversed(list(value.items())):
                if name in _BINARY_PARTS and not isinstance(item, str | None):
                    content.unscannable.append(_BINARY_PARTS[name])
                    continue
                stack.append((item, str(name)))
                stack.append((str(name), _KEY))
        elif isinstance(value, list | tuple):
            stack.extend((item, key) for item in reversed(value))
        elif isinstance(value, BaseModel):
            stack.append((value.model_dump(mode="json"), key))
        elif isinstance(value, type) and issubclass(value, BaseModel):
            stack.append((value.model_json_schema(), key))
        elif isinstance(value, bytes | bytearray):
            content.unscannable.append("binary data")
        elif value is not None and not isinstance(value, bool | int | float):
            content.texts.append(str(value))
            content.flow.append(str(value))
    return content


def _remote_content(part: Mapping[str, Any]) -> str | None:
    """What a content part fetches rather than carries (an image by URL, a stored file)."""
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        return None if isinstance(url, str) and url.startswith("data:") else "image (URL)"
    if kind == "file":
        file = part.get("file")
        if isinstance(file, Mapping) and "file_id" in file:
            return "file (by id)"
    return None


def _read_string(
    value: str, key: str | None, content: PayloadContent, stack: list[tuple[Any, str | None]]
) -> None:
    if value.startswith("data:"):
        _read_data_url(value, content)
        return
    if key in _BINARY_PARTS:  # inline base64 of an audio clip or a file
        content.unscannable.append(_BINARY_PARTS[key])
        return
    content.texts.append(value)
    if key not in _STRUCTURAL and key != _KEY:
        content.flow.append(value)
    stripped = value.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            parsed = json.loads(stripped)
        except (ValueError, RecursionError):  # read as the text it is
            return
        stack.append((parsed, key))


def _read_data_url(url: str, content: PayloadContent) -> None:
    header, _, data = url[5:].partition(",")
    media = header.split(";")[0].strip().lower() or "text/plain"
    if not media.startswith(_TEXT_MEDIA):
        content.unscannable.append(f"data URL ({media})")
        return
    try:
        compact = "".join(data.split())  # base64 may be wrapped over lines
        raw = base64.b64decode(compact, validate=True) if ";base64" in header else None
        text = (raw if raw is not None else unquote_to_bytes(data)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        content.unscannable.append(f"data URL ({media}, undecodable)")
        return
    content.texts.append(text)
    content.flow.append(text)
