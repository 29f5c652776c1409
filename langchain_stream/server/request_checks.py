"""Checks of a chat request beyond its types, each a 400 about the request.

- **Text**: every string must be valid Unicode; a lone UTF-16 surrogate (``"\\ud800"`` in the
  JSON) cannot be encoded for any tier.
- **JSON schemas** (``tools[].function.parameters``, ``response_format.json_schema.schema``):
  bounded in depth and size (:class:`SchemaLimits`), checked against the JSON Schema
  meta-schema, and every ``$ref`` must point inside the schema, resolve, and not lead back to
  itself (a tier turns a schema into a grammar, which a recursive one would not end).

The walks are iterative and stop at the first limit passed, so a 900-level schema is refused
in microseconds rather than handed to a tier.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel

from langchain_stream.config import Settings
from langchain_stream.server import openai_schema as oa
from langchain_stream.server.errors import ApiError

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DRAFTS = frozenset(
    {
        "json-schema.org/draft/2020-12/schema",
        "json-schema.org/draft/2019-09/schema",
        "json-schema.org/draft-07/schema",
        "json-schema.org/draft-06/schema",
        "json-schema.org/draft-04/schema",
    }
)


def _dialect(uri: str) -> str:
    return uri.removeprefix("https://").removeprefix("http://").removesuffix("#")


@dataclass(frozen=True)
class SchemaLimits:
    """Bounds on the JSON schemas of one request."""

    max_depth: int = 32
    """Deepest nesting of objects and arrays in one schema."""
    max_nodes: int = 2000
    """Most objects, arrays and values in all of a request's schemas together."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SchemaLimits:
        """The limits of ``STREAM_MAX_SCHEMA_DEPTH`` and ``STREAM_MAX_SCHEMA_NODES``."""
        return cls(max_depth=settings.max_schema_depth, max_nodes=settings.max_schema_nodes)


def check_request(request: oa.ChatCompletionRequest, limits: SchemaLimits) -> None:
    """Refuse what no tier can serve, with a 400 naming the field.

    Raises:
        ApiError: 400 ``invalid_string`` or ``invalid_schema``.
    """
    _check_strings(request)
    budget = limits.max_nodes
    for path, schema in _schemas(request):
        budget -= _check_depth_and_size(schema, path, limits)
        if budget < 0:
            raise _schema_error(
                path, f"the request's JSON schemas have more than {limits.max_nodes} nodes"
            )
        _check_against_meta_schema(schema, path)
        _check_refs(schema, path)


def _schemas(request: oa.ChatCompletionRequest) -> Iterator[tuple[str, Any]]:
    for index, tool in enumerate(request.tools or []):
        if tool.function.parameters is not None:
            yield f"tools[{index}].function.parameters", tool.function.parameters
    response_format = request.response_format
    if response_format is not None and response_format.json_schema is not None:
        yield "response_format.json_schema.schema", response_format.json_schema.schema_


def _schema_error(path: str, message: str) -> ApiError:
    return ApiError(400, f"{path}: {message}", code="invalid_schema", param=path)


def _check_depth_and_size(schema: Any, path: str, limits: SchemaLimits) -> int:
    """The schema's node count; refuses one deeper or larger than the limits."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise _schema_error(path, f"the schema has more than {limits.max_nodes} nodes")
        if isinstance(value, dict | list):
            if depth > limits.max_depth:
                raise _schema_error(path, f"the schema nests deeper than {limits.max_depth} levels")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return nodes


def _check_against_meta_schema(schema: Any, path: str) -> None:
    # jsonschema-rs checks a schema against its meta-schema in microseconds (the pure-Python
    # jsonschema takes most of a millisecond per tool).
    import jsonschema_rs

    if not isinstance(schema, dict):
        raise _schema_error(path, "a JSON schema must be an object")
    dialect = schema.get("$schema")
    # Only the drafts it ships: any other "$schema" would be fetched from the network.
    if dialect is not None and (not isinstance(dialect, str) or _dialect(dialect) not in _DRAFTS):
        raise _schema_error(path, f"$schema {_short(str(dialect))!r} is not a known draft")
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(p) for p in exc.instance_path)
        raise _schema_error(
            path, f"not a valid JSON schema at '/{where}': {_short(exc.message)}"
        ) from None
    except jsonschema_rs.ReferencingError as exc:  # e.g. a "$schema" it does not know
        raise _schema_error(path, f"not a valid JSON schema: {_short(str(exc))}") from None


def _check_refs(schema: dict[str, Any], path: str) -> None:
    """Every ``$ref`` local, resolvable, and not leading back to itself."""
    targets: dict[str, Any] = {}
    for ref in _refs_in(schema):
        if not ref.startswith("#"):
            raise _schema_error(path, f"$ref {_short(ref)!r} points outside the schema")
        if ref not in targets:
            targets[ref] = _resolve(schema, ref, path)
    # A ref is recursive when, following refs from its target, it is reached again.
    for start in targets:
        seen: set[str] = set()
        pending = list(_refs_in(targets[start]))
        while pending:
            ref = pending.pop()
            if ref == start:
                raise _schema_error(path, f"$ref {_short(start)!r} is recursive")
            if ref not in seen:
                seen.add(ref)
                pending.extend(_refs_in(targets[ref]))


def _refs_in(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _resolve(schema: dict[str, Any], ref: str, path: str) -> Any:
    """The part of ``schema`` that a local ``$ref`` (a JSON pointer) names."""
    target: Any = schema
    pointer = unquote(ref[1:])
    if pointer and not pointer.startswith("/"):
        raise _schema_error(path, f"$ref {_short(ref)!r} is not a JSON pointer ('#/...')")
    for token in pointer.split("/")[1:] if pointer else []:
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        else:
            raise _schema_error(path, f"$ref {_short(ref)!r} does not resolve")
    return target


def _check_strings(request: BaseModel) -> None:
    """Refuse a string holding a lone surrogate, naming the field."""
    stack: list[tuple[Any, str]] = [(request, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                field = _short(where.lstrip(".") or "body")
                raise ApiError(
                    400,
                    f"{field}: the text holds a lone UTF-16 surrogate, which is not valid "
                    "Unicode; send each character whole (or as a surrogate pair)",
                    code="invalid_string",
                    param=field,
                )
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                stack.append((getattr(value, name), f"{where}.{name}"))
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((key, f"{where}.{key!s}"[:200]))
                stack.append((item, f"{where}.{key!s}"[:200]))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))


def _short(text: str, limit: int = 120) -> str:
    # Part of the client's own text, cut short and made printable for the message.
    text = _SURROGATE.sub("\ufffd", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
