"""Tool calling for models with no native tool API: a prompt, a grammar, and a streaming parser.

The model calls a tool by writing ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.
When a call is forced (``tool_choice`` "any"/"required" or a named tool), generation is
constrained by a llama.cpp grammar built from the tools' JSON schemas, so the call is always
valid JSON for one of the allowed tools. With ``tool_choice="auto"`` the model writes freely;
if its answer opens with the call marker, generation restarts from the marker under the same
grammar. Arguments stream as they are generated, in ``tool_call_chunks``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_stream.errors import InvalidRequestError

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"

ToolChoice = str | dict[str, Any] | None


@dataclass(frozen=True)
class ToolPlan:
    """What the tools and tool choice of one request ask of generation."""

    tools: list[dict[str, Any]]
    """OpenAI-format function tools, narrowed to the allowed ones."""
    mode: str
    """``"none"`` (no tools), ``"auto"`` (the model decides), or ``"forced"``."""


def plan_tools(tools: Sequence[dict[str, Any]] | None, tool_choice: ToolChoice) -> ToolPlan:
    """Interpret OpenAI-format ``tools`` and ``tool_choice`` (plus LangChain's ``"any"``).

    Raises:
        InvalidRequestError: ``tool_choice`` names a tool that is not bound, or is malformed.
    """
    functions = [t.get("function", t) for t in tools or []]
    if not functions or tool_choice in ("none", False):
        return ToolPlan(tools=[], mode="none")
    if tool_choice in (None, "auto"):
        return ToolPlan(tools=functions, mode="auto")
    if tool_choice in ("any", "required", True):
        return ToolPlan(tools=functions, mode="forced")
    name = tool_choice
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    chosen = [f for f in functions if f.get("name") == name]
    if not chosen:
        raise InvalidRequestError(
            f"tool_choice names {name!r}, which is not among the bound tools "
            f"{[f.get('name') for f in functions]}"
        )
    return ToolPlan(tools=chosen, mode="forced")


def tools_system_prompt(plan: ToolPlan) -> str:
    """Instructions appended to the system prompt so the model knows its tools."""
    listing = "\n".join(
        json.dumps(
            {
                "name": f["name"],
                "description": f.get("description", ""),
                "parameters": f.get("parameters", {}),
            },
            ensure_ascii=False,
        )
        for f in plan.tools
    )
    how = (
        "Call exactly one tool now."
        if plan.mode == "forced"
        else "If a tool helps, reply with only the call; otherwise answer directly."
    )
    return (
        f"You can call these tools:\n{listing}\n"
        f'To call a tool, write {CALL_OPEN}{{"name": "<tool name>", "arguments": {{...}}}}'
        f"{CALL_CLOSE}. {how}"
    )


def call_grammar_text(plan: ToolPlan) -> str:
    """GBNF for one JSON call object ``{"name": ..., "arguments": ...}`` of an allowed tool.

    Raises:
        InvalidRequestError: a tool's schema is one llama.cpp's converter cannot follow.
    """
    variants, own_schemas = [], {}
    for index, function in enumerate(plan.tools):
        # A tool's "#/..." references point into its own schema, kept under the combined
        # schema's $defs (llama.cpp's converter resolves pointers through objects only).
        arguments = _arguments_schema(function.get("parameters"), f"#/$defs/tool{index}")
        own_schemas[f"tool{index}"] = arguments
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": arguments},
                "required": ["name", "arguments"],
            }
        )
    schema: dict[str, Any] = variants[0] if len(variants) == 1 else {"oneOf": variants}
    if "$ref" in json.dumps(own_schemas):
        schema = {**schema, "$defs": own_schemas}
    return schema_grammar(schema, prop_order=["name", "arguments"], what="tools' JSON schemas")


def schema_grammar(schema: Any, *, prop_order: list[str] | None = None, what: str) -> str:
    """GBNF for a JSON schema, by llama.cpp's converter.

    Raises:
        InvalidRequestError: the converter cannot follow the schema (it knows a subset of JSON
            Schema): the request's fault, said in words rather than as the converter's error.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(json.dumps(schema), prop_order=prop_order)
    except (AssertionError, KeyError, IndexError, TypeError, ValueError, RecursionError) as exc:
        detail = str(exc.args[0]) if exc.args else "a construct it does not support"
        if isinstance(exc, KeyError):
            detail = f"it cannot resolve {detail!r}"
        raise InvalidRequestError(
            f"the local tier cannot follow the {what}: {detail[:200]}"
        ) from None


def _arguments_schema(parameters: dict[str, Any] | None, base: str) -> dict[str, Any]:
    if not parameters or not parameters.get("properties"):
        return {"type": "object", "properties": {}, "additionalProperties": False}
    return _rebased(parameters, base)


def _rebased(schema: Any, base: str) -> Any:
    """``schema`` with its local ``$ref`` pointers prefixed by ``base`` (a copy)."""
    if isinstance(schema, dict):
        return {
            key: base + value[1:]
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else _rebased(value, base)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_rebased(item, base) for item in schema]
    return schema


def render_tool_call(name: str, args: dict[str, Any]) -> str:
    """How an earlier tool call of the assistant is written back into the prompt."""
    payload = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
    return f"{CALL_OPEN}{payload}{CALL_CLOSE}"


def is_marker_prefix(text: str) -> bool:
    """Whether ``text`` (leading whitespace ignored) could still become the call marker."""
    stripped = text.lstrip()
    return CALL_OPEN.startswith(stripped) or stripped.startswith(CALL_OPEN)


_HEAD = re.compile(r'^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


@dataclass
class StreamingCallParser:
    """Turns the generated JSON call text into tool-call chunk deltas as it grows.

    The name is emitted once it is complete, then the arguments JSON piece by piece. The
    outer object's closing brace is held back so the streamed arguments are exactly the
    arguments object.
    """

    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")
    _text: str = ""
    _name: str | None = None
    _args_start: int = 0
    _sent: int = 0

    def feed(self, piece: str) -> list[dict[str, Any]]:
        """Add generated text; return the tool-call chunk deltas it completes."""
        self._text += piece
        deltas: list[dict[str, Any]] = []
        if self._name is None:
            match = _HEAD.match(self._text)
            if match is None:
                return deltas
            self._name = json.loads(f'"{match.group(1)}"')
            self._args_start = self._sent = match.end()
            deltas.append({"name": self._name, "args": "", "id": self.call_id, "index": 0})
        body = self._text[self._sent :]
        cut = body.rfind("}")
        safe = body[:cut] if cut >= 0 else body
        if safe:
            deltas.append({"name": None, "args": safe, "id": None, "index": 0})
            self._sent += len(safe)
        return deltas

    def finish(self) -> list[dict[str, Any]]:
        """Flush what was held back once generation has ended.

        Raises:
            InvalidRequestError: the generated text is not a complete call (e.g. the answer
                hit ``max_tokens`` first).
        """
        try:
            call = json.loads(self._text)
            name, args = call["name"], call["arguments"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRequestError(
                "the model's tool call was cut short or malformed "
                f"(raise max_tokens?): {self._text[:200]!r}"
            ) from exc
        deltas: list[dict[str, Any]] = []
        if self._name is None:
            self._name = name
            deltas.append({"name": name, "args": "", "id": self.call_id, "index": 0})
            self._sent = self._args_start = len(self._text)
            rest = json.dumps(args, ensure_ascii=False)
        else:
            tail = self._text[self._sent :].rstrip()
            rest = tail[:-1].rstrip() if tail.endswith("}") else tail
        if rest:
            deltas.append({"name": None, "args": rest, "id": None, "index": 0})
        return deltas
