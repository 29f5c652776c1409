"""One call of a tier by the router's tier node: fit the history to the tier's window, stream
the tier's chunks with the routing record, and apply the error contract to a failure
(docs/design.md#the-error-contract)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.messages.utils import count_tokens_approximately, message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.constants import TAG_NOSTREAM

from langchain_stream.config import get_settings
from langchain_stream.context import ConversationSummary, TierFitter
from langchain_stream.errors import (
    ContextOverflowError,
    InvalidRequestError,
    MidStreamError,
    tier_error,
)
from langchain_stream.request import TierName
from langchain_stream.routing import RoutingRecord, TierAttempt

if TYPE_CHECKING:
    from langchain_stream.graph import RouterContext, RouterState


# Sent to the next tier when it continues an answer the previous tier left unfinished.
CONTINUE_PROMPT = (
    "Your previous answer was cut off. Continue it from exactly where it stopped, "
    "without repeating any of it."
)

# The tier's own chat-model run sits under its node in a trace; its tokens reach the caller
# through the router's run, so LangGraph's message stream must not show them a second time.
TIER_RUN_CONFIG: RunnableConfig = {"tags": [TAG_NOSTREAM]}


class TierCall:
    """One tier call: fit the history, stream the tier's chunks with the routing record, turn a
    failure into a fallback, an explicit event or an error (the error contract)."""

    def __init__(self, tier: TierName, context: RouterContext, state: RouterState) -> None:
        self.tier, self.state, self.started = tier, state, context.request.started_at
        self.record = RoutingRecord.model_validate(state.get("record", {}))
        self.models = context.models()
        self.model = self.models[tier]
        self.engine, self.request = context.policy_engine(), context.request
        self.kwargs = dict(context.request.call_kwargs)
        self.continues = context.request.continue_after_failure
        self.candidates = state.get("candidates", [])
        # A continuation: the previous tier's partial answer is context, and this tier's record
        # travels under its own key (merging two records under one key would garble both).
        self.prefix = state.get("partial") or ""
        self.key = "routing_continuation" if self.prefix else "routing"
        self.history: list[BaseMessage] = list(state["messages"])
        if self.prefix:
            self.history += [AIMessage(content=self.prefix), HumanMessage(content=CONTINUE_PROMPT)]
        self.chunks: list[AIMessageChunk] = []
        self.leading: list[AIMessageChunk] = []
        self.first_token_at: float | None = None
        self.called_at = time.perf_counter()  # the tier is called right after this
        self.kept: dict[str, Any] = {}  # state that outlives this tier call (the summary)
        self.update: dict[str, Any] = {}
        """The state update, once the stream is over."""

    def stream(self) -> Iterator[AIMessageChunk]:
        """The chunks to pass on; :attr:`update` is set when it ends."""
        try:
            history = self._fit(self._fitter())
            for chunk in self.model.stream(history, TIER_RUN_CONFIG, **self.kwargs):
                if (out := self._on_chunk(chunk)) is not None:  # type: ignore[arg-type]
                    yield out
        except Exception as exc:
            yield from self._on_error(exc)
            return
        yield from self._finish()
        self._persist()

    async def astream(self) -> AsyncIterator[AIMessageChunk]:
        """:meth:`stream` for async callers: counting, summarizing and database writes run
        off the event loop."""
        try:
            fitter = self._fitter()
            if fitter.fits_outright(self.history):
                history = self._fit(fitter)
            else:
                history = await asyncio.to_thread(self._fit, fitter)
            async for chunk in self.model.astream(history, TIER_RUN_CONFIG, **self.kwargs):
                if (out := self._on_chunk(chunk)) is not None:  # type: ignore[arg-type]
                    yield out
        except Exception as exc:
            for event in self._on_error(exc):
                yield event
            return
        for out in self._finish():
            yield out
        await asyncio.to_thread(self._persist)

    def _fitter(self) -> TierFitter:
        return TierFitter.for_tier(self.tier, self.models, self.kwargs, get_settings())

    def _fit(self, fitter: TierFitter) -> list[BaseMessage]:
        """Fit the history to this tier's window (docs/design.md#context); keep a summary it
        extended."""
        stored = self.state.get("summary")
        summary = ConversationSummary.model_validate(stored) if stored else None
        outcome = fitter.fit(self.history, summary)
        self.record.compression = outcome.report
        if outcome.summary_changed and outcome.summary is not None:
            self.kept["summary"] = outcome.summary.model_dump()
        self.history = outcome.messages
        self.called_at = time.perf_counter()  # the tier's own TTFT starts after fitting
        return self.history

    def _on_chunk(self, chunk: AIMessageChunk) -> AIMessageChunk | None:
        """The chunk to pass on (the first with content carries the routing record)."""
        if self.first_token_at is None:
            if not (chunk.content or chunk.tool_call_chunks):
                self.leading.append(chunk)  # an empty role/metadata chunk: fold it forward
                return None
            self.first_token_at = time.perf_counter()
            chunk = self._with_record(add_ai_message_chunks(*self.leading, chunk))
            self.leading = []
        self.chunks.append(chunk)
        return chunk

    def _on_error(self, exc: Exception) -> Iterator[AIMessageChunk]:
        """A retryable failure before the first token: a fallback update. After it: an explicit
        event in the stream, then either a continuation on the next tier (when configured) or
        :class:`~langchain_stream.errors.MidStreamError`. Any other error (a bad request, a
        refusal, a programming error in the tier) reaches the caller as it is."""
        error = tier_error(exc, self.tier)
        # One of the project's tiers refusing the request before answering (it cannot read an
        # image, say) is not down: the next candidate may serve it; when every tier refused, the
        # caller gets the refusals (a 400). An API's own 400 is the caller's to see.
        refused = isinstance(exc, InvalidRequestError) and self.first_token_at is None
        if not (refused or getattr(error, "is_retryable", False)):
            if error is exc:
                raise exc
            raise error from exc
        if not isinstance(error, ContextOverflowError | InvalidRequestError):
            # the request's size or content, not the tier's fault: no mark against its breaker
            self.engine.health.breaker(self.tier).record_failure()
        if self.first_token_at is None:
            self.record.tiers_tried.append(TierAttempt(tier=self.tier, error=_describe(error)))
            self.update = {
                "failed": True,
                "record": self.record.model_dump(mode="json", exclude_none=True),
                **self.kept,
            }
            return
        partial = self.prefix + "".join(c.text for c in self.chunks)
        successor = self._successor()
        event: dict[str, Any] = {
            "type": "mid_stream_failure",
            "tier": self.tier,
            "error": _describe(error),
        }
        if successor is not None:
            event["continues_on"] = successor
        yield AIMessageChunk(content="", response_metadata={f"{self.key}_event": event})
        self.record.tiers_tried[-1] = TierAttempt(tier=self.tier, error=_describe(error))
        self.engine.record(self.record, self.request, answered=False)
        if successor is None:
            raise MidStreamError(
                f"the {self.tier} tier failed mid-answer: {_describe(error)}",
                tier=self.tier,
                partial_text=partial,
            ) from exc
        self.update = {
            "failed": True,
            "partial": partial,
            "record": self.record.model_dump(mode="json", exclude_none=True),
            **self.kept,
        }

    def _successor(self) -> TierName | None:
        """The tier that continues a broken answer: only when configured, only once, and
        only for text (half a tool call cannot be continued)."""
        if not self.continues or self.prefix:
            return None
        if any(c.tool_call_chunks for c in self.chunks):
            return None
        remaining = self.candidates[1:]
        return remaining[0] if remaining else None

    def _finish(self) -> Iterator[AIMessageChunk]:
        """The closing chunk(s); sets the node's state update."""
        now = time.perf_counter()
        if self.first_token_at is None:  # an empty answer: still deliver the metadata
            self.first_token_at = now
            if self.leading:
                first = self._with_record(add_ai_message_chunks(*self.leading))
            else:
                first = self._with_record(AIMessageChunk(content=""))
            self.chunks.append(first)
            yield first
        merged = add_ai_message_chunks(*self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        usage = merged.usage_metadata or self._estimated_usage()
        self.record.duration_ms = round((now - self.started) * 1000.0, 3)
        if usage:
            self.record.usage = {k: int(v) for k, v in usage.items() if isinstance(v, int)}
            gen_s = now - self.first_token_at
            if gen_s > 0 and usage.get("output_tokens"):
                self.record.tokens_per_s = round(usage["output_tokens"] / gen_s, 2)
        self.engine.health.breaker(self.tier).record_success()
        cloud = self.models.get("cloud")
        self.engine.price_answer(self.record, _model_name(cloud) if cloud is not None else None)
        closing = AIMessageChunk(
            content="",
            response_metadata={self.key: self.record.final_chunk_metadata()},
        )
        yield closing
        message = message_chunk_to_message(merged + closing)
        if self.prefix:  # the whole answer: what the failed tier wrote, then this tier's part
            message = message.model_copy(update={"content": self.prefix + message.text})
        self.update = {
            "messages": [message],
            "failed": False,
            "partial": None,
            "record": self.record.model_dump(mode="json", exclude_none=True),
            **self.kept,
        }

    def _estimated_usage(self) -> dict[str, int] | None:
        """Usage for tiers that stream none (some OpenAI-compatible servers): the prompt by
        LangChain's approximate count, the answer by its chunks (about one token each)."""
        output = sum(1 for c in self.chunks if c.content or c.tool_call_chunks)
        prompt = count_tokens_approximately(self.history)
        self.record.usage_estimated = True
        return {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}

    def _persist(self) -> None:
        """Write the answer to the ledger and the audit log (after the last token)."""
        self.engine.record(self.record, self.request, answered=True)

    def _with_record(self, chunk: AIMessageChunk) -> AIMessageChunk:
        self.record.tier = self.tier
        self.record.model = _model_name(self.model)
        first = self.first_token_at or 0.0
        self.record.ttft_ms = round((first - self.started) * 1000.0, 3)
        self.record.tier_ttft_ms = round((first - self.called_at) * 1000.0, 3)
        self.record.tiers_tried.append(TierAttempt(tier=self.tier))
        metadata = {**chunk.response_metadata, self.key: self.record.first_chunk_metadata()}
        return chunk.model_copy(update={"response_metadata": metadata})


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _model_name(model: BaseChatModel) -> str:
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


__all__ = ["CONTINUE_PROMPT", "TIER_RUN_CONFIG", "TierCall"]
