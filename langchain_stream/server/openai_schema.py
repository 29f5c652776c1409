"""The OpenAI chat-completions wire format, as pydantic models: requests in, responses out.

Requests are validated strictly (a string where a number belongs is an error, as at OpenAI);
parameters outside the fields below are kept aside for
:func:`~langchain_stream.server.parameters.check_parameters`, which refuses those that ask for
what no tier serves (``logprobs``, ``n > 1``, ...) and those OpenAI does not know either.
Responses carry every field the official ``openai`` client reads, plus ``routing``: the
routing record of the answer (see :class:`~langchain_stream.routing.RoutingRecord`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


# --- request ------------------------------------------------------------------------------------


class TextPart(_Request):
    """A text content part."""

    type: Literal["text"]
    text: str


class ImageUrl(_Request):
    """Where an image is (a URL or a ``data:`` URL)."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Request):
    """An image content part (served by tiers whose model reads images)."""

    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class SystemMessage(_Request):
    """Instructions from the developer (``system`` or ``developer``)."""

    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Request):
    """A user turn."""

    role: Literal["user"]
    content: str | list[ContentPart]
    name: str | None = None


class FunctionCall(_Request):
    """A function name and its JSON-encoded arguments."""

    name: str
    arguments: str


class ToolCall(_Request):
    """A tool call made by the assistant in an earlier turn."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(_Request):
    """An earlier assistant turn: text, tool calls, or both."""

    role: Literal["assistant"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None


class ToolMessage(_Request):
    """The result of a tool call."""

    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


class FunctionDefinition(_Request):
    """A function the model may call."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Request):
    """A tool offered to the model."""

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Request):
    """The function a named tool choice forces."""

    name: str


class NamedToolChoice(_Request):
    """Force a call of one named tool."""

    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Request):
    """Options of a streamed answer."""

    include_usage: bool = False
    """Send a last chunk with ``usage`` and no choices."""


class JsonSchemaFormat(_Request):
    """A JSON schema the answer must follow."""

    name: str
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    """The JSON schema; empty means any JSON value."""
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Request):
    """``text``, ``json_object``, or ``json_schema`` with its schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("a json_schema response format needs its json_schema")
        return self


class ChatCompletionRequest(_Request):
    """``POST /v1/chat/completions``.

    Two fields extend OpenAI's: ``conversation_id`` names the conversation an answer belongs
    to (routing stickiness), and ``privacy="institutional"`` keeps this request off the cloud
    tier.
    """

    # Other parameters are kept in `model_extra` for `check_parameters`.
    model_config = ConfigDict(strict=True, extra="allow")

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1)
    """Only one choice per request is served: ``n > 1`` is refused by name."""
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    conversation_id: str | None = Field(default=None, max_length=200)
    privacy: Literal["standard", "institutional"] | None = None


# --- responses -----------------------------------------------------------------------------------


class Usage(BaseModel):
    """Token counts of one answer."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseFunction(BaseModel):
    """A called function and its JSON-encoded arguments."""

    name: str
    arguments: str


class ResponseToolCall(BaseModel):
    """A tool call in a complete answer."""

    id: str
    type: Literal["function"] = "function"
    function: ResponseFunction


class ResponseMessage(BaseModel):
    """The assistant's complete answer."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ResponseToolCall] | None = None
    refusal: str | None = None


class Choice(BaseModel):
    """The one choice of a complete answer."""

    index: int = 0
    message: ResponseMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A complete (non-streamed) answer."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    routing: dict[str, Any] | None = None
    """Where the request went and why (the routing record)."""


class DeltaFunction(BaseModel):
    """Part of a streamed function call: the name once, then argument fragments."""

    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(BaseModel):
    """Part of a streamed tool call; ``id`` and ``type`` come with its first part."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunction | None = None


class Delta(BaseModel):
    """What one streamed chunk adds to the answer."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChunkChoice(BaseModel):
    """The one choice of a streamed chunk."""

    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    routing: dict[str, Any] | None = None
    """The routing record: its first part on the first chunk, all of it on the last."""


class ModelCard(BaseModel):
    """One served model id."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "langchain-stream"


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    """What went wrong, as OpenAI clients read it."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error response: ``{"error": {...}}``."""

    error: ErrorBody


class Health(BaseModel):
    """``GET /healthz``: the process is up; nothing else."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """``GET /readyz``: whether each tier can take a request now (``ready`` when one can)."""

    status: Literal["ready", "not_ready"]
    tiers: dict[str, bool]
    """Per configured tier, whether it can take a request now (reasons: ``stream doctor`` and
    the server log)."""
