"""MkDocs hooks: the configuration reference is generated from ``Settings`` at build time.

A page that holds the marker ``<!-- settings-table -->`` gets, in its place, one row per field of
:class:`langchain_stream.config.Settings`: its environment variable, type, default, bounds and
docstring. The table is built from the pydantic model itself, so the reference cannot drift.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

MARKER = "<!-- settings-table -->"
_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def _type_text(annotation: Any) -> str:
    """A reader's name for a field type: ``int | None``, ``auto | on | off``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_text(arg) for arg in args)
    if origin is not None:
        inner = ", ".join(_type_text(arg) for arg in args)
        return f"{origin.__name__}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, Path):
            return "computed (see meaning)"
        return "empty" if not value else f"`{value}`"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _bounds_text(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for name, sign in _BOUNDS.items():
            value = getattr(item, name, None)
            if value is not None:
                parts.append(f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_table() -> str:
    """The markdown table of every ``Settings`` field, in declaration order."""
    from langchain_stream.config import Settings, environment_variable

    lines = [
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"Settings.{name} has no docstring: the reference needs one")
        bounds = _bounds_text(field)
        meaning = _cell(field.description) + (f" ({bounds})" if bounds else "")
        lines.append(
            f"| `{environment_variable(name)}` | {_type_text(field.annotation)} "
            f"| {_default_text(field)} | {meaning} |"
        )
    return "\n".join(lines)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace the settings marker with the generated table."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, settings_table())
