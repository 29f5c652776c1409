"""The local tier: a LangChain chat model on llama-cpp-python, defaulting to the embedded model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field, PrivateAttr

from langchain_stream._threads import BlockingSource
from langchain_stream.config import get_settings
from langchain_stream.errors import InvalidRequestError
from langchain_stream.images import IMAGE_BLOCK_TYPES, image_blocks, responses_image_error
from langchain_stream.llama.runtime import GenerationStats, LlamaModel, Sampling, load_model
from langchain_stream.llama.turns import Cutoff
from langchain_stream.structured import StreamFirstChatModel
from langchain_stream.tiers import tool_calls
from langchain_stream.tiers.embedded import embedded_model_path

_TEXT_BLOCK_TYPES = {"text"}
# LangChain's standard image block and OpenAI's part (with the older LangChain spellings).
# Blocks that restate what ``AIMessage.tool_calls`` already carries.
_TOOL_BLOCK_TYPES = {"tool_use", "tool_call", "function_call"}


def _default_model_path() -> str | None:
    return get_settings().local_model


def _default_temperature() -> float:
    return get_settings().temperature


def _default_max_tokens() -> int | None:
    return get_settings().max_tokens


def _default_n_ctx() -> int:
    return get_settings().local_n_ctx


def _default_n_threads() -> int | None:
    return get_settings().local_n_threads


def _default_timeout_s() -> float:
    return get_settings().tier_timeout_s


class ChatLocal(StreamFirstChatModel):
    """A chat model on llama.cpp, in process: real token streaming, sync and async, and tools.

    With no arguments it runs the embedded SmolLM2-135M-Instruct GGUF (no download). Any other
    GGUF file is used through ``model_path`` or ``STREAM_LOCAL_MODEL``. Models are loaded once
    per process, shared between instances and warmed up at load; each runs one call at a time,
    the lightest waiting one first, and a call gives up at its deadline (``timeout_s``).
    Construction does no I/O; the model loads on first use or on :meth:`load`.

    Example:
        .. code-block:: python

            from langchain_stream import ChatLocal

            llm = ChatLocal(max_tokens=64)
            for chunk in llm.stream("Name three primary colours."):
                print(chunk.content, end="", flush=True)
    """

    model_path: str | None = Field(default_factory=_default_model_path)
    """Path to a GGUF file; ``None`` means the embedded SmolLM2-135M-Instruct."""
    temperature: float = Field(default_factory=_default_temperature)
    """Sampling temperature; 0 is greedy."""
    max_tokens: int | None = Field(default_factory=_default_max_tokens)
    """Maximum tokens to generate; ``None`` means up to the end of the context window."""
    stop: list[str] | None = None
    """Stop sequences: generation ends before any of them."""
    top_p: float = 0.95
    """Nucleus sampling threshold."""
    repeat_penalty: float = 1.1
    """Penalty on recently generated tokens; small models loop without one."""
    seed: int | None = None
    """Sampling seed, for reproducible answers at non-zero temperature."""
    n_ctx: int = Field(default_factory=_default_n_ctx)
    """Context window the model is loaded with, in tokens."""
    n_threads: int | None = Field(default_factory=_default_n_threads)
    """CPU threads for llama.cpp; ``None`` means half the logical cores."""
    timeout_s: float = Field(default_factory=_default_timeout_s, gt=0)
    """Total deadline of one call, waiting for the model included (``STREAM_TIER_TIMEOUT_S``);
    past it the call raises :class:`~langchain_stream.errors.TierDeadlineError`."""
    projector_path: str | None = None
    """The model's vision projector (mmproj) GGUF; with it the model reads images (LangChain's
    ``image`` blocks and OpenAI's ``image_url`` parts, inline data only). ``None``: text only."""

    _model: LlamaModel | None = PrivateAttr(default=None)
    ls_provider: ClassVar[str] = "llama.cpp"

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def resolved_model_path(self) -> Path:
        """The GGUF file this model runs."""
        return Path(self.model_path) if self.model_path else embedded_model_path()

    @property
    def model_name(self) -> str:
        """The model file's name without extension."""
        return Path(self.model_path).stem if self.model_path else "SmolLM2-135M-Instruct.Q4_1"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx}

    def _ls_model_name(self, override: str | None) -> str:
        return Path(override).stem if override else self.model_name

    def load(self, model_path: str | None = None) -> LlamaModel:
        """Load (once per process) and warm up the model; later calls return it at once.

        Args:
            model_path: another GGUF file to load instead of this model's own (a per-call
                ``model`` override).
        """
        projector = Path(self.projector_path) if self.projector_path else None
        if model_path is not None:
            return load_model(
                Path(model_path), n_ctx=self.n_ctx, n_threads=self.n_threads, projector=projector
            )
        if self._model is None:
            self._model = load_model(
                self.resolved_model_path,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                projector=projector,
            )
        return self._model

    def count_tokens(
        self,
        messages: Sequence[BaseMessage],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | bool | None = None,
    ) -> int:
        """Prompt tokens of ``messages`` as this model's tokenizer and chat template see them.

        Args:
            messages: the conversation, rendered exactly as a call would render it.
            tools: OpenAI-format tools bound to the call; their instructions count too.
            tool_choice: the call's ``tool_choice`` (``"none"`` leaves the tools out).
        """
        model = self.load()
        plan = tool_calls.plan_tools(tools, tool_choice) if tools else None
        images = len(_image_blocks(messages)) if self.projector_path else 0
        if images:  # the text as the template renders it, and an estimate per image
            messages = [_without_images(message) for message in messages]
        prompt, _, added = model.format_prompt(_to_role_content(messages, plan))
        return len(model.prompt_tokens(prompt, added)) + images * _IMAGE_TOKENS_ESTIMATE

    # --- generation --------------------------------------------------------------------------

    def _chunk_source(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> BlockingSource[ChatGenerationChunk]:
        # llama.cpp blocks: async callers read the chunks from a worker thread.
        return BlockingSource(lambda cancel: self._iter_chunks(messages, stop, cancel, **kwargs))

    def _iter_chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        cancel: threading.Event,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The one generation path behind sync and async streaming."""
        if not messages:
            raise InvalidRequestError("the message list is empty: nothing to answer")
        timeout_s = kwargs.get("timeout_s", self.timeout_s)
        cutoff = Cutoff(cancel, time.monotonic() + timeout_s, timeout_s)
        plan = tool_calls.plan_tools(kwargs.get("tools"), kwargs.get("tool_choice"))
        response_format = kwargs.get("response_format")
        images = _image_blocks(messages)
        if images and self.projector_path is None:
            kinds = ", ".join(sorted({repr(kind) for kind in images}))
            raise InvalidRequestError(
                f"the local tier reads text only: this request has {len(images)} image "
                f"block(s) ({kinds}) and the model has no vision projector (set "
                "projector_path, or a tier's projector, to the model's mmproj GGUF)"
            )
        if images and (plan.mode != "none" or response_format):
            raise InvalidRequestError(
                "the local tier reads images without tools or response_format: ask one or the other"
            )
        model = self.load(kwargs.get("model"))
        stop = list(stop or self.stop or [])
        if images:
            sampling = self._sampling(kwargs, stop)
            yield from self._vision_chunks(model, messages, len(images), sampling, cutoff)
            return
        prompt, template_stop, added = model.format_prompt(_to_role_content(messages, plan))
        tokens = model.prompt_tokens(prompt, added)
        run = _Run(model, self._sampling(kwargs, [*stop, *template_stop]), cutoff)
        started = time.perf_counter()
        if plan.mode == "forced":
            pieces = _forced_call(run, tokens, plan)
        elif plan.mode == "auto":
            pieces = _auto_call(run, prompt, tokens, added, plan)
        else:
            grammar = _response_format_grammar(response_format)
            pieces = (AIMessageChunk(content=text) for text in run.generate(tokens, grammar))
        for message_chunk in pieces:
            yield ChatGenerationChunk(message=message_chunk)
        yield self._last_chunk(model, run.stats, time.perf_counter() - started)

    def _sampling(self, kwargs: dict[str, Any], stop: list[str]) -> Sampling:
        """The request's sampling options, each defaulting to this model's own."""
        return Sampling(
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            temperature=kwargs.get("temperature", self.temperature),
            top_p=kwargs.get("top_p", self.top_p),
            repeat_penalty=kwargs.get("repeat_penalty", self.repeat_penalty),
            seed=kwargs.get("seed", self.seed),
            stop=stop,
        )

    def _vision_chunks(
        self,
        model: LlamaModel,
        messages: list[BaseMessage],
        images: int,
        sampling: Sampling,
        cutoff: Cutoff,
    ) -> Iterator[ChatGenerationChunk]:
        """Answer a request with images through the model's projector."""
        openai_messages = _inline_images_only(convert_to_openai_messages(messages))
        stats = GenerationStats()
        started = time.perf_counter()
        text_tokens = sum(len(m.text) for m in messages) // 4
        pieces = model.chat(
            openai_messages,
            sampling,
            stats=stats,
            cutoff=cutoff,
            # A turn's weight is its prompt: an image is a few hundred tokens once projected.
            weight=text_tokens + images * _IMAGE_TOKENS_ESTIMATE,
        )
        for text in pieces:
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        yield self._last_chunk(model, stats, time.perf_counter() - started)

    def _last_chunk(
        self, model: LlamaModel, stats: GenerationStats, elapsed: float
    ) -> ChatGenerationChunk:
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=UsageMetadata(
                    input_tokens=stats.prompt_tokens,
                    output_tokens=stats.output_tokens,
                    total_tokens=stats.prompt_tokens + stats.output_tokens,
                ),
                response_metadata={
                    "model_name": model.name,
                    "extra_buffers": model.extra_buffers.to_metadata(),
                    "finish_reason": stats.finish_reason,
                    "generation_ms": round(elapsed * 1000.0, 2),
                },
                chunk_position="last",
            ),
            generation_info={"finish_reason": stats.finish_reason},
        )


@dataclass
class _Run:
    """One text generation: the model, its sampling, when it stops early, and its figures."""

    model: LlamaModel
    sampling: Sampling
    cutoff: Cutoff
    stats: GenerationStats = field(default_factory=GenerationStats)

    def generate(self, tokens: list[int], grammar: Any = None) -> Iterator[str]:
        return self.model.generate(
            tokens, self.sampling, grammar=grammar, stats=self.stats, cutoff=self.cutoff
        )


def _forced_call(
    run: _Run, tokens: list[int], plan: tool_calls.ToolPlan
) -> Iterator[AIMessageChunk]:
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_string(tool_calls.call_grammar_text(plan), verbose=False)
    parser = tool_calls.StreamingCallParser()
    for text in run.generate(tokens, grammar):
        if deltas := parser.feed(text):
            yield AIMessageChunk(content="", tool_call_chunks=deltas)
    if deltas := parser.finish():
        yield AIMessageChunk(content="", tool_call_chunks=deltas)
    run.stats.finish_reason = "tool_calls"


def _auto_call(
    run: _Run, prompt: str, tokens: list[int], added: bool, plan: tool_calls.ToolPlan
) -> Iterator[AIMessageChunk]:
    """Stream free text; if the answer opens with the call marker, switch to a forced call."""
    held = ""
    deciding = True
    free = run.generate(tokens)
    called = False
    try:
        for text in free:
            if not deciding:
                yield AIMessageChunk(content=text)
                continue
            held += text
            if held.lstrip().startswith(tool_calls.CALL_OPEN):
                called = True
                break
            if not tool_calls.is_marker_prefix(held):
                deciding = False
                yield AIMessageChunk(content=held)
    finally:
        free.close()  # releases the model's lock before a forced call takes it
    if not called:
        if held and deciding:
            yield AIMessageChunk(content=held)
        return
    # The model chose a tool: continue from the marker under the call grammar.
    free_output_tokens = run.stats.output_tokens
    call_tokens = run.model.prompt_tokens(prompt + tool_calls.CALL_OPEN, added)
    forced = tool_calls.ToolPlan(tools=plan.tools, mode="forced")
    yield from _forced_call(run, call_tokens, forced)
    run.stats.prompt_tokens = len(tokens)
    run.stats.output_tokens += free_output_tokens


def _response_format_grammar(response_format: dict[str, Any] | None) -> Any:
    """A grammar for OpenAI-style ``response_format`` (json_object / json_schema), or None."""
    if not response_format or response_format.get("type") == "text":
        return None
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import JSON_GBNF

    what = "response_format's JSON schema"
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        return LlamaGrammar.from_string(tool_calls.schema_grammar(schema, what=what), verbose=False)
    if response_format.get("type") == "json_object":
        if schema := response_format.get("schema"):
            grammar = tool_calls.schema_grammar(schema, what=what)
            return LlamaGrammar.from_string(grammar, verbose=False)
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    raise InvalidRequestError(f"unsupported response_format type {response_format.get('type')!r}")


_IMAGE_TOKENS_ESTIMATE = 256


def _image_blocks(messages: Sequence[BaseMessage]) -> list[str]:
    """The type of each image block in the messages' content.

    Raises:
        InvalidRequestError: a Responses API ``input_image`` block (no tier here reads it).
    """
    kinds = []
    for where, block in image_blocks(messages):
        if block.get("type") == "input_image":
            raise responses_image_error(where)
        kinds.append(str(block["type"]))
    return kinds


def _without_images(message: BaseMessage) -> BaseMessage:
    if not isinstance(message.content, list):
        return message
    content = [
        block
        for block in message.content
        if not (isinstance(block, dict) and block.get("type") in IMAGE_BLOCK_TYPES)
    ]
    return message.model_copy(update={"content": content})


def _inline_images_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages, if every image is inline data: llama-cpp-python would fetch a URL."""
    for message in messages:
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = str((part.get("image_url") or {}).get("url", ""))
                if not url.startswith("data:image/"):
                    raise InvalidRequestError(
                        "the local tier reads inline images only (data:image/...;base64,...), "
                        f"not {url[:60]!r}"
                    )
    return messages


def _text_of(content: str | list[Any], role: str) -> str:
    """Plain text of a message's content; non-text blocks are an error, not silently dropped."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") in _TEXT_BLOCK_TYPES:
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") in _TOOL_BLOCK_TYPES:
            continue
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise InvalidRequestError(
                f"the local tier reads text only; a {role} message has a {kind!r} content block"
            )
    return "".join(parts)


def _to_role_content(
    messages: Sequence[BaseMessage], plan: tool_calls.ToolPlan | None
) -> list[dict[str, str]]:
    """LangChain messages → the role/content dicts a chat template renders."""
    rendered: list[dict[str, str]] = []
    for message in messages:
        text = _text_of(message.content, message.type)
        if isinstance(message, SystemMessage):
            rendered.append({"role": "system", "content": text})
        elif isinstance(message, AIMessage):
            calls = "".join(
                tool_calls.render_tool_call(c["name"], c["args"]) for c in message.tool_calls
            )
            rendered.append({"role": "assistant", "content": text + calls})
        elif isinstance(message, ToolMessage):
            label = f"Result of tool call {message.tool_call_id}"
            if message.name:
                label += f" ({message.name})"
            rendered.append({"role": "user", "content": f"{label}:\n{text}"})
        elif message.type in ("human", "chat", "generic"):
            rendered.append({"role": "user", "content": text})
        else:
            raise InvalidRequestError(f"unsupported message type {message.type!r}")
    if plan is not None and plan.mode != "none":
        instructions = tool_calls.tools_system_prompt(plan)
        if rendered and rendered[0]["role"] == "system":
            rendered[0] = {
                "role": "system",
                "content": f"{rendered[0]['content']}\n\n{instructions}",
            }
        else:
            rendered.insert(0, {"role": "system", "content": instructions})
    return rendered
