"""Fake tiers and a fixed judge for the router's unit tests (no model, no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field

from langchain_stream.judge.base import Complexity, Judgment


class FixedJudge:
    """Judges every query the same."""

    name = "fixed"

    def __init__(self, complexity: Complexity = Complexity.HIGH) -> None:
        self.complexity = complexity

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        scores = {c: (0.8 if c == self.complexity else 0.1) for c in Complexity}
        return Judgment(complexity=self.complexity, scores=scores, judge=self.name)


class ScriptedTier(BaseChatModel):
    """A tier that streams ``tokens``, then raises ``fail()`` when it is set."""

    tokens: list[str] = Field(default_factory=lambda: ["Lima", " is", " the", " capital."])
    fail: Callable[[], BaseException] | None = None
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-tier"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.calls += 1
        for token in self.tokens:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        if self.fail is not None:
            raise self.fail()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.calls += 1
        for token in self.tokens:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                await run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        if self.fail is not None:
            raise self.fail()
