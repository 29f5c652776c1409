"""Conversions at the HTTP boundary, one function each.

OpenAI request → LangChain messages and call arguments; LangChain chunks → OpenAI deltas,
finish reasons and usage; a merged LangChain answer → an OpenAI chat completion.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata

from langchain_stream.errors import InvalidRequestError
from langchain_stream.server import openai_schema as oa

# Finish reasons a tier may report that OpenAI does not know, and what clients see instead.
_FINISH_ALIASES: dict[str, oa.FinishReason] = {"function_call": "tool_calls", "eos": "stop"}
_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter"})


def _content(content: str | list[Any] | None) -> str | list[str | dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return [part.model_dump(exclude_none=True) for part in content]


def to_langchain_messages(messages: Sequence[oa.Message]) -> list[BaseMessage]:
    """OpenAI chat messages → LangChain messages.

    Raises:
        InvalidRequestError: an assistant tool call's arguments are not a JSON object.
    """
    converted: list[BaseMessage] = []
    for index, message in enumerate(messages):
        if isinstance(message, oa.SystemMessage):
            converted.append(SystemMessage(_content(message.content), name=message.name))
        elif isinstance(message, oa.UserMessage):
            converted.append(HumanMessage(_content(message.content), name=message.name))
        elif isinstance(message, oa.AssistantMessage):
            calls = []
            for call in message.tool_calls or []:
                try:
                    args = json.loads(call.function.arguments or "{}")
                except (json.JSONDecodeError, RecursionError):  # malformed, or nested too deep
                    args = None
                if not isinstance(args, dict):
                    raise InvalidRequestError(
                        f"messages[{index}]: the arguments of tool call {call.id!r} are not "
                        "a JSON object"
                    )
                calls.append({"name": call.function.name, "args": args, "id": call.id})
            converted.append(
                AIMessage(_content(message.content), tool_calls=calls, name=message.name)
            )
        else:
            converted.append(
                ToolMessage(_content(message.content), tool_call_id=message.tool_call_id)
            )
    return converted


def call_kwargs(request: oa.ChatCompletionRequest, *, user: str | None) -> dict[str, Any]:
    """The request's generation parameters as ``StreamChatModel`` call arguments.

    ``user`` is the caller's identity (the API key's name), whose budget the request draws on.

    Raises:
        InvalidRequestError: ``tool_choice`` names a tool that is not among ``tools``.
    """
    kwargs: dict[str, Any] = {"model": request.model}
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        if (value := getattr(request, name)) is not None:
            kwargs[name] = value
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if request.stop:
        kwargs["stop"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.tools:
        kwargs["tools"] = [tool.model_dump(exclude_none=True) for tool in request.tools]
    if request.tool_choice is not None:
        choice = request.tool_choice
        if isinstance(choice, oa.NamedToolChoice):
            names = [tool.function.name for tool in request.tools or []]
            if choice.function.name not in names:
                raise InvalidRequestError(
                    f"tool_choice names {choice.function.name!r}, which is not among the "
                    f"tools {names}"
                )
            kwargs["tool_choice"] = choice.model_dump()
        elif request.tools:
            kwargs["tool_choice"] = choice
    if request.response_format is not None and request.response_format.type != "text":
        kwargs["response_format"] = request.response_format.model_dump(
            by_alias=True, exclude_none=True
        )
    if user is not None:
        kwargs["user"] = user
    if request.conversation_id is not None:
        kwargs["conversation_id"] = request.conversation_id
    if request.privacy == "institutional":  # a request may tighten privacy, never loosen it
        kwargs["privacy"] = "institutional"
    return kwargs


def delta_of(chunk: AIMessageChunk) -> oa.Delta | None:
    """What a LangChain chunk adds to the answer, or ``None`` when it adds nothing."""
    text = chunk.text
    calls = [
        oa.DeltaToolCall(
            index=part.get("index") or 0,
            id=part.get("id"),
            type="function" if part.get("id") else None,
            function=oa.DeltaFunction(name=part.get("name"), arguments=part.get("args") or ""),
        )
        for part in chunk.tool_call_chunks
    ]
    if not text and not calls:
        return None
    return oa.Delta(content=text or None, tool_calls=calls or None)


def finish_reason_of(chunk: AIMessageChunk) -> oa.FinishReason | None:
    """The finish reason a tier reported on this chunk, in OpenAI's vocabulary."""
    reason = chunk.response_metadata.get("finish_reason")
    if not reason:
        return None
    if reason in _FINISH_REASONS:
        return reason  # type: ignore[return-value]
    return _FINISH_ALIASES.get(reason, "stop")


def usage_of(usage: UsageMetadata | None) -> oa.Usage | None:
    """LangChain usage metadata → OpenAI usage."""
    if not usage:
        return None
    prompt, completion = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    total = int(usage.get("total_tokens", prompt + completion))
    return oa.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def completion_of(
    answer: AIMessageChunk,
    *,
    finish_reason: oa.FinishReason | None,
    completion_id: str,
    created: int,
    model: str,
) -> oa.ChatCompletion:
    """A whole answer (the sum of its chunks) → an OpenAI chat completion."""
    calls = [
        oa.ResponseToolCall(
            id=part.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            function=oa.ResponseFunction(
                name=part.get("name") or "", arguments=part.get("args") or ""
            ),
        )
        for part in answer.tool_call_chunks
    ]
    if not calls:  # a tier that returned parsed calls only
        calls = [
            oa.ResponseToolCall(
                id=call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                function=oa.ResponseFunction(name=call["name"], arguments=json.dumps(call["args"])),
            )
            for call in answer.tool_calls
        ]
    text = answer.text
    finish = finish_reason or ("tool_calls" if calls else "stop")
    message = oa.ResponseMessage(
        content=text if text or not calls else None, tool_calls=calls or None
    )
    return oa.ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[oa.Choice(message=message, finish_reason=finish)],
        usage=usage_of(answer.usage_metadata),
        routing=answer.response_metadata.get("routing"),
    )
