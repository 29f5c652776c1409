"""``with_structured_output`` for chat models taking OpenAI-style ``tools``/``response_format``.

``function_calling`` forces a call of the schema as a tool; ``json_schema`` and ``json_mode``
pass ``response_format`` so the tier constrains the reply text itself (a grammar for llama.cpp,
the provider's structured outputs for OpenAI-compatible servers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, ClassVar, Literal, Protocol

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from langchain_stream.errors import InvalidRequestError

StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]


def with_structured_output_via(
    model: BaseChatModel,
    schema: dict[str, Any] | type | None,
    *,
    method: StructuredMethod = "function_calling",
    include_raw: bool = False,
    **kwargs: Any,
) -> Runnable[LanguageModelInput, Any]:
    """Build the structured-output runnable of ``model`` (which must accept tools kwargs)."""
    kwargs.pop("strict", None)  # accepted for compatibility: the tiers' output is always strict
    if kwargs:
        raise InvalidRequestError(f"unsupported with_structured_output arguments: {sorted(kwargs)}")
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    structured_format = {"kwargs": {"method": method}, "schema": schema}
    if method == "function_calling":
        if schema is None:
            raise InvalidRequestError("method='function_calling' needs a schema")
        tool = convert_to_openai_tool(schema)
        llm = model.bind_tools(  # type: ignore[call-arg]
            [tool], tool_choice="any", ls_structured_output_format=structured_format
        )
        parser: Runnable[Any, Any] = (
            PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
            if is_pydantic
            else JsonOutputKeyToolsParser(key_name=tool["function"]["name"], first_tool_only=True)
        )
    elif method in ("json_schema", "json_mode"):
        if method == "json_schema":
            if schema is None:
                raise InvalidRequestError("method='json_schema' needs a schema")
            json_schema = convert_to_json_schema(schema)
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": json_schema.get("title", "output"), "schema": json_schema},
            }
        else:
            # With a schema, the reply is held to it as well: a grammar costs nothing extra, and
            # a small model cannot be trusted to follow a schema it is only told about.
            response_format = (
                {"type": "json_object"}
                if schema is None
                else {
                    "type": "json_object",
                    "schema": convert_to_json_schema(schema),
                }
            )
        llm = model.bind(
            response_format=response_format, ls_structured_output_format=structured_format
        )
        parser = (
            PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
            if is_pydantic
            else JsonOutputParser()
        )
    else:
        raise InvalidRequestError(f"unknown structured output method {method!r}")
    if not include_raw:
        return llm | parser
    parsed = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parsed.with_fallbacks([unparsed], exception_key="parsing_error")


def openai_tool_choice(
    tool_choice: str | dict[str, Any] | bool | None, tools: Sequence[dict[str, Any]] | None
) -> str | dict[str, Any] | None:
    """LangChain's ``tool_choice`` spellings → the OpenAI form every tier and backend accepts.

    Raises:
        InvalidRequestError: a tool is named that is not among ``tools``.
    """
    if tool_choice is None or isinstance(tool_choice, dict):
        return tool_choice
    if tool_choice is True or tool_choice == "any":
        return "required"
    if tool_choice is False:
        return "none"
    if tool_choice in ("auto", "none", "required"):
        return tool_choice
    names = [t.get("function", t).get("name") for t in tools or ()]
    if tool_choice not in names:
        raise InvalidRequestError(f"tool_choice names {tool_choice!r}, not among the tools {names}")
    return {"type": "function", "function": {"name": tool_choice}}


class ChunkSource(Protocol):
    """An answer's chunks, written once (blocking or async) and read from either side."""

    def iterate(self) -> Iterator[ChatGenerationChunk]: ...

    def aiterate(self) -> AsyncIterator[ChatGenerationChunk]: ...


class StreamFirstChatModel(BaseChatModel):
    """Base of the package's chat models: they implement streaming only (invoke is derived from
    the stream), and hand OpenAI-format ``tools``, ``tool_choice`` and ``response_format`` on
    to whatever answers (a llama.cpp grammar, a tier, a worker's backend).

    A model gives its answer's chunks once, through :meth:`_chunk_source`, and ``_stream`` and
    ``_astream`` read them and report each to the run's handlers; or it overrides both."""

    ls_provider: ClassVar[str] = "langchain-stream"
    """The provider named in traces (LangSmith's ``ls_provider``)."""

    @property
    def model_name(self) -> str:
        """The model named in traces."""
        return self._llm_type

    def _ls_model_name(self, override: str | None) -> str:
        """The model named in a trace when the call passes ``model=override``."""
        return override or self.model_name

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.ls_provider
        params["ls_model_name"] = self._ls_model_name(kwargs.get("model"))
        for name in ("temperature", "max_tokens"):
            if (value := kwargs.get(name, getattr(self, name, None))) is not None:
                params[f"ls_{name}"] = value  # type: ignore[literal-required]
        if stop := stop or getattr(self, "stop", None):
            params["ls_stop"] = stop
        return params

    def _chunk_source(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChunkSource:
        """Where the answer's chunks come from, for both sync and async callers."""
        raise NotImplementedError(f"{type(self).__name__} streams by _stream/_astream")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunk_source(messages, stop, kwargs).iterate():
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._chunk_source(messages, stop, kwargs).aiterate():
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools in OpenAI format, passed on with the request.

        ``tool_choice``: "auto" (default), "any"/"required", "none", or a tool's name.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        choice = openai_tool_choice(tool_choice, formatted)
        if choice is not None:
            kwargs["tool_choice"] = choice
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: StructuredMethod = "function_calling",
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Structured answers through the tools or ``response_format`` passed on."""
        return with_structured_output_via(
            self, schema, method=method, include_raw=include_raw, **kwargs
        )
