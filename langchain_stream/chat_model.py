"""``StreamChatModel``: the router graph as a drop-in LangChain chat model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextvars import Context, ContextVar, copy_context
from functools import cache
from typing import Any, Literal
from uuid import uuid4

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseRunManager,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config
from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from langchain_stream._threads import aiter_in_task
from langchain_stream.config import TIERS, Settings, Tier, get_settings
from langchain_stream.errors import InvalidRequestError
from langchain_stream.graph import RouterContext, astream_router, stream_router
from langchain_stream.judge import ComplexityJudge, resolve_judge
from langchain_stream.judge.offload import in_judge_pool
from langchain_stream.judge.shares import RoutingShares
from langchain_stream.policies.engine import PolicyEngine
from langchain_stream.request import RouteRequest
from langchain_stream.structured import StreamFirstChatModel

USER_METADATA_KEY = "stream_user"
"""Run metadata naming whose budget a request draws on, for callers that cannot pass ``user``
(the server's LangServe routes put the API key's name there)."""


def _default_pin() -> Tier | None:
    return get_settings().tier


class StreamChatModel(StreamFirstChatModel):
    """A chat model that routes each request to the local, HPC or cloud tier and streams it back.

    With no arguments it answers on the local tier with the embedded model; the HPC and cloud
    tiers join when configured (see :mod:`langchain_stream.config`), or a ``[[tiers]]`` list
    replaces all three (docs/tiers.md). Every answer carries the routing record in
    ``response_metadata["routing"]`` (on a stream: the first chunk, completed by the last).

    Example:
        .. code-block:: python

            from langchain_stream import StreamChatModel

            llm = StreamChatModel()
            for chunk in llm.stream("What is the capital of France?"):
                print(chunk.content, end="", flush=True)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    model: str | None = None
    """``auto`` (route by complexity) or a tier to pin every request to: ``local``, ``hpc``,
    ``cloud``, each also as ``stream-<tier>`` (the server's model ids); ``None`` keeps the
    settings' pin (``STREAM_TIER``). A per-call ``model`` overrides it."""
    tier: Tier | None = Field(default_factory=_default_pin)
    """Pin every request to this tier, skipping the judge (``model`` says the same by name)."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds one request may take on a tier: the local tier's deadline, the cloud API's
    request timeout, the HPC tier's bound on the whole answer; ``None`` keeps the settings'.
    Past it before the first token the router falls back to the next tier."""
    max_retries: int | None = Field(default=None, ge=0)
    """Retries of a failed cloud API call before the router falls back to another tier;
    ``None`` means none (the fallback is the retry)."""
    cloud_model: str | None = None
    """The cloud tier's model (``STREAM_CLOUD_MODEL``); setting it adds the cloud tier."""
    cloud_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("cloud_api_key", "api_key")
    )
    """The cloud API's key (also accepted as ``api_key``); ``None`` keeps
    ``STREAM_CLOUD_API_KEY``."""
    cloud_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("cloud_base_url", "base_url")
    )
    """The cloud API's OpenAI-compatible base URL (also accepted as ``base_url``); ``None``
    keeps ``STREAM_CLOUD_BASE_URL``."""
    hpc_api_key: SecretStr | None = None
    """The key of the HPC tier's OpenAI-compatible backend; ``None`` keeps
    ``STREAM_HPC_BACKEND_API_KEY``."""
    hpc_base_url: str | None = None
    """The HPC tier's OpenAI-compatible backend as the compute node sees it; ``None`` keeps
    ``STREAM_HPC_BACKEND_URL``."""
    streaming: bool = False
    """LangChain's flag; the router always streams from its tier, ``invoke`` included."""
    judge: str | ComplexityJudge | None = None
    """The complexity judge, or its name; ``None`` uses the one in the settings."""
    local: BaseChatModel | None = None
    """The local tier's chat model; ``None`` builds it from the settings."""
    hpc: BaseChatModel | None = None
    """The HPC tier's chat model; ``None`` builds it from the settings when configured."""
    cloud: BaseChatModel | None = None
    """The cloud tier's chat model; ``None`` builds it from the settings when configured."""
    temperature: float | None = None
    """Sampling temperature passed to the tier; ``None`` keeps the tier's own."""
    max_tokens: int | None = None
    """Maximum answer tokens passed to the tier; ``None`` keeps the tier's own."""
    stop: list[str] | None = None
    """Stop sequences passed to the tier."""
    privacy: Literal["standard", "institutional"] | None = None
    """``institutional`` never uses the cloud; ``None`` keeps the settings' mode."""
    user: str | None = None
    """Whose cloud budget requests draw on (a per-call ``user`` overrides it)."""

    _tiers: dict[Tier, BaseChatModel] | None = PrivateAttr(default=None)
    _policies: PolicyEngine | None = PrivateAttr(default=None)
    _judge_loaded: bool = PrivateAttr(default=False)

    @model_validator(mode="before")
    @classmethod
    def _known_arguments(cls, data: Any) -> Any:
        """Refuse an argument that is not a field, naming the valid ones (a misspelt
        ``timeout`` must not pass silently as if it took effect)."""
        if isinstance(data, dict):
            unknown = sorted(set(data) - _argument_names(cls))
            if unknown:
                raise ValueError(
                    f"{cls.__name__} got unknown argument(s) {', '.join(unknown)}; "
                    f"valid: {', '.join(sorted(_argument_names(cls)))}"
                )
        return data

    @model_validator(mode="after")
    def _pin_by_model(self) -> StreamChatModel:
        if self.model is None:
            return self
        pin = _pin_from_model_name(self.model, get_settings().configured_tiers)
        if "tier" in self.model_fields_set and self.tier != pin:
            raise ValueError(f"model={self.model!r} and tier={self.tier!r} disagree: give one")
        self.tier = pin
        return self

    def resolved_settings(self) -> Settings:
        """The process settings with this model's overrides (cloud and HPC keys and URLs)."""
        overrides = {
            "cloud_model": self.cloud_model,
            "cloud_api_key": self.cloud_api_key,
            "cloud_base_url": self.cloud_base_url,
            "hpc_backend_api_key": self.hpc_api_key,
            "hpc_backend_url": self.hpc_base_url,
        }
        update = {k: v for k, v in overrides.items() if v is not None}
        settings = get_settings()
        return settings.model_copy(update=update) if update else settings

    @property
    def _llm_type(self) -> str:
        return "langchain-stream-router"

    @property
    def model_name(self) -> str:
        """The router's name; the model that answered is in the routing record."""
        return "stream-auto" if self.tier is None else f"stream-{self.tier}"

    def tier_models(self) -> dict[Tier, BaseChatModel]:
        """The chat model of each available tier, built once."""
        if self._tiers is None:
            from langchain_stream.tiers import TierOptions, build_tier_models

            settings = self.resolved_settings()
            options = TierOptions(timeout_s=self.timeout, max_retries=self.max_retries)
            configured = build_tier_models(settings, options)
            given = {"local": self.local, "hpc": self.hpc, "cloud": self.cloud}
            for tier, model in given.items():
                if model is not None:
                    configured[tier] = model
            # Configured tiers keep their order; the default ones keep theirs.
            order = [s.name for s in settings.tiers] or list(TIERS)
            names = [t for t in order if t in configured]
            names += [t for t in configured if t not in names]
            self._tiers = {t: configured[t] for t in names}
        return self._tiers

    def policy_engine(self) -> PolicyEngine:
        """This model's policies (breakers, ledger, audit), built once from the settings."""
        if self._policies is None:
            self._policies = PolicyEngine(self.resolved_settings())
        return self._policies

    def reset_conversation(self, conversation_id: str) -> None:
        """Forget a conversation's floor tier and privacy pin (stickiness restarts)."""
        store = self.policy_engine().store
        if store is not None:
            store.reset_conversation(conversation_id)

    def routing_shares(self) -> RoutingShares:
        """Share of each class and tier over this model's recent requests (the last
        ``judge_share_window``), and its drift from the calibration target ``judge_target``."""
        return self.policy_engine().shares.snapshot()

    def complexity_judge(self) -> ComplexityJudge:
        """The judge that routes this model's requests."""
        if self.judge is None:
            return resolve_judge(get_settings().judge)
        return resolve_judge(self.judge) if isinstance(self.judge, str) else self.judge

    # --- the call's config ---------------------------------------------------------------------
    #
    # langchain-core hands `_stream` no run manager when it streams (`stream`, `astream`, or
    # `invoke` under a streaming handler), and never the caller's config. The public entry
    # points therefore fix the run's id in the config and keep the config in a context
    # variable of a context private to the call: `_stream` makes the router graph a child of
    # that run, with the caller's handlers, tags and metadata. A LangGraph thread is a
    # conversation: its id (from the config, or the enclosing graph's) becomes the call's
    # `conversation_id`.

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config, kwargs, call = _call(config, kwargs)
        return call.run(super().invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config, kwargs, call = _call(config, kwargs)
        return await asyncio.create_task(super().ainvoke(input, config, **kwargs), context=call)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config, kwargs, call = _call(config, kwargs)
        return _iterate_in(call, call.run(super().stream, input, config, **kwargs))

    def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config, kwargs, call = _call(config, kwargs)
        return aiter_in_task(super().astream(input, config, **kwargs), call)

    # --- generation --------------------------------------------------------------------------

    def _router_input(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        run_metadata: dict[str, Any],
    ) -> tuple[dict[str, Any], RouterContext]:
        """The graph's input and the run's context, the request resolved once: the call's
        arguments first, then this model's fields, the run's metadata and the settings."""
        if not messages:
            raise InvalidRequestError("the message list is empty: nothing to answer")
        settings = get_settings()
        call_kwargs = {
            k: v
            for k, v in {
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "stop": stop or self.stop,
            }.items()
            if v is not None
        }
        call_kwargs.update(kwargs)
        call_kwargs.pop("ls_structured_output_format", None)
        pin = _pin_from_model_name(call_kwargs.pop("model", None), self.tier_models()) or self.tier
        request = RouteRequest(
            user=str(
                call_kwargs.pop("user", None)
                or run_metadata.get(USER_METADATA_KEY)
                or self.user
                or "default"
            ),
            # LangGraph puts a thread's id in the metadata of runs inside its graphs.
            conversation_id=call_kwargs.pop("conversation_id", None)
            or run_metadata.get("thread_id"),
            privacy=call_kwargs.pop("privacy", None) or self.privacy or settings.privacy,
            reset_conversation=bool(call_kwargs.pop("reset_conversation", False)),
            pin=pin,
            call_kwargs=call_kwargs,
            continue_after_failure=settings.continue_after_mid_stream_failure,
        )
        context = RouterContext(
            tiers=self.tier_models(),
            judge=self.complexity_judge(),
            policies=self.policy_engine(),
            request=request,
        )
        return {"messages": messages}, context

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        metadata, callbacks = _run_of(run_manager, self)
        state, context = self._router_input(messages, stop, kwargs, metadata)
        # The run's handlers see each chunk yielded here (reported by langchain-core when it
        # streams, by `_report` otherwise); the tier's run is tagged `nostream`.
        for chunk in stream_router(state, context, callbacks):
            yield ChatGenerationChunk(message=_as_chunk(chunk))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        metadata, callbacks = _run_of(run_manager, self)
        if not self._judge_loaded:  # loading a judge may take seconds (llama.cpp): off the loop
            await in_judge_pool(self.complexity_judge)
            self._judge_loaded = True
        state, context = self._router_input(messages, stop, kwargs, metadata)
        async for chunk in astream_router(state, context, callbacks):
            yield ChatGenerationChunk(message=_as_chunk(chunk))


_CALL_CONFIG: ContextVar[RunnableConfig | None] = ContextVar(
    "langchain_stream_call_config", default=None
)


def _call(
    config: RunnableConfig | None, kwargs: dict[str, Any]
) -> tuple[RunnableConfig, dict[str, Any], Context]:
    """The call's config with its run id fixed, its kwargs with the conversation id, and a
    context private to the call that holds the config."""
    config = ensure_config(config)  # the enclosing runnable's config merged in
    config["run_id"] = config.get("run_id") or uuid4()
    call = copy_context()
    call.run(_CALL_CONFIG.set, {**config})
    # The router's graph is the model run's child, not the enclosing graph's subgraph.
    call.run(var_child_runnable_config.set, None)
    if "conversation_id" not in kwargs:
        thread = config.get("configurable", {}).get("thread_id")
        if thread is not None:
            kwargs = {**kwargs, "conversation_id": str(thread)}
    return config, kwargs, call


def _run_of(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    model: BaseChatModel,
) -> tuple[dict[str, Any], CallbackManager | None]:
    """The metadata of the model's run, and the callbacks its children inherit (the handlers,
    tags and metadata a chain run's ``get_child()`` would give; an LLM run has none)."""
    if run_manager is not None:
        run: BaseRunManager | CallbackManager = run_manager
        run_id, metadata = run_manager.run_id, run_manager.metadata
    else:
        config = _CALL_CONFIG.get()
        if config is None:  # called other than through the public entry points
            return {}, None
        _CALL_CONFIG.set(None)  # one run per call: a nested call must not take it for its own
        run = CallbackManager.configure(
            config.get("callbacks"),
            model.callbacks,
            model.verbose,
            config.get("tags"),
            model.tags,
            config.get("metadata"),
            model.metadata,
        )
        run_id, metadata = config["run_id"], dict(config.get("metadata") or {})
    children = CallbackManager(handlers=[], parent_run_id=run_id)
    children.set_handlers(run.inheritable_handlers)
    children.add_tags(run.inheritable_tags)
    children.add_metadata(run.inheritable_metadata)
    return metadata, children


def _iterate_in(context: Context, chunks: Iterator[Any]) -> Iterator[Any]:
    """Each step of ``chunks`` (a generator) runs in ``context``."""
    try:
        while True:
            try:
                chunk = context.run(next, chunks)
            except StopIteration:
                return
            yield chunk
    finally:
        context.run(chunks.close)  # type: ignore[attr-defined]


def _as_chunk(item: Any) -> AIMessageChunk:
    if not isinstance(item, AIMessageChunk):
        raise TypeError(f"the router streamed {type(item).__name__}, not AIMessageChunk")
    return item


def _pin_from_model_name(name: str | None, configured: Iterable[str]) -> Tier | None:
    """The tier a ``model`` name pins: ``auto`` routes, a tier's name pins it (each also as
    ``stream-<name>``, the names the server lists). The default tiers count as known even when
    not configured, so a pin to one of them is a clear "not configured" later, not a typo."""
    if name is None:
        return None
    tier = name.removeprefix("stream-")
    if tier == "auto":
        return None
    known = list(dict.fromkeys([*configured, *TIERS]))
    if tier not in known:
        raise InvalidRequestError(
            f"unknown model {name!r}: use auto or a tier, {', '.join(known)} "
            "(each also as stream-<name>)"
        )
    return tier


@cache
def _argument_names(cls: type[StreamChatModel]) -> frozenset[str]:
    """Every keyword the model's constructor accepts: field names and their aliases."""
    names = set(cls.model_fields)
    for field in cls.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            names.update(c for c in field.validation_alias.choices if isinstance(c, str))
        elif isinstance(field.validation_alias, str):
            names.add(field.validation_alias)
        if field.alias:
            names.add(field.alias)
    return frozenset(names)
