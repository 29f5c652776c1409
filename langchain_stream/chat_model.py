"""``StreamChatModel``: the router graph as a drop-in LangChain chat model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_stream.config import TIERS, Tier, get_settings
from langchain_stream.errors import InvalidRequestError
from langchain_stream.graph import RouterContext, isolated_astream, isolated_stream
from langchain_stream.judge import ComplexityJudge, resolve_judge
from langchain_stream.judge.shares import RoutingShares
from langchain_stream.policies.decide import RoutingRequest
from langchain_stream.policies.engine import PolicyEngine
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

    model_config = ConfigDict(arbitrary_types_allowed=True)

    tier: Tier | None = Field(default_factory=_default_pin)
    """Pin every request to this tier, skipping the judge."""
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

    @property
    def _llm_type(self) -> str:
        return "langchain-stream-router"

    @property
    def model_name(self) -> str:
        """The router's name; the model that answered is in the routing record."""
        return "stream-auto" if self.tier is None else f"stream-{self.tier}"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "langchain-stream"
        params["ls_model_name"] = kwargs.get("model", self.model_name)
        if (temperature := kwargs.get("temperature", self.temperature)) is not None:
            params["ls_temperature"] = temperature
        if (max_tokens := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = max_tokens
        if stop := stop or self.stop:
            params["ls_stop"] = stop
        return params

    def tier_models(self) -> dict[Tier, BaseChatModel]:
        """The chat model of each available tier, built once."""
        if self._tiers is None:
            from langchain_stream.tiers import build_tier_models

            settings = get_settings()
            configured = build_tier_models(settings)
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

    def _pin_from_model_name(self, name: str | None) -> Tier | None:
        """A per-call ``model`` of ``stream-<tier name>`` pins a tier; ``stream-auto`` routes."""
        if name is None or name == "stream-auto":
            return None
        tier = name.removeprefix("stream-")
        known = tier in self.tier_models() or tier in TIERS  # an unconfigured default: 503
        if not known or not name.startswith("stream-"):
            served = ", ".join(["stream-auto", *(f"stream-{t}" for t in self.tier_models())])
            raise InvalidRequestError(f"unknown model {name!r}: use one of {served}")
        return tier

    def policy_engine(self) -> PolicyEngine:
        """This model's policies (breakers, ledger, audit), built once from the settings."""
        if self._policies is None:
            self._policies = PolicyEngine(get_settings())
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

    # --- conversations -----------------------------------------------------------------------
    #
    # A LangGraph thread is a conversation. langchain-core does not hand the caller's
    # `configurable` to `_stream`, so the public entry points read the thread id here (from the
    # given config, or the enclosing graph's) and pass it on as `conversation_id`.

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return super().invoke(input, config, **_with_thread(config, kwargs))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await super().ainvoke(input, config, **_with_thread(config, kwargs))

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return super().stream(input, config, **_with_thread(config, kwargs))

    def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return super().astream(input, config, **_with_thread(config, kwargs))

    # --- generation --------------------------------------------------------------------------

    def _router_input(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        run_metadata: dict[str, Any],
    ) -> tuple[dict[str, Any], RouterContext]:
        if not messages:
            raise InvalidRequestError("the message list is empty: nothing to answer")
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
        pin = self._pin_from_model_name(call_kwargs.pop("model", None)) or self.tier
        request = RoutingRequest(
            user=str(
                call_kwargs.pop("user", None)
                or run_metadata.get(USER_METADATA_KEY)
                or self.user
                or "default"
            ),
            # LangGraph puts a thread's id in the metadata of runs inside its graphs.
            conversation_id=call_kwargs.pop("conversation_id", None)
            or run_metadata.get("thread_id"),
            privacy=call_kwargs.pop("privacy", None) or self.privacy or get_settings().privacy,
            reset_conversation=bool(call_kwargs.pop("reset_conversation", False)),
        )
        context = RouterContext(
            tiers=self.tier_models(),
            judge=self.complexity_judge(),
            call_kwargs=call_kwargs,
            policies=self.policy_engine(),
            request=request,
        )
        return {"messages": messages, "tier": pin}, context

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        metadata = run_manager.metadata if run_manager else {}
        state, context = self._router_input(messages, stop, kwargs, metadata)
        for chunk in isolated_stream(state, context):
            generation = ChatGenerationChunk(message=_as_chunk(chunk))
            if run_manager:
                run_manager.on_llm_new_token(generation.text, chunk=generation)
            yield generation

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        metadata = run_manager.metadata if run_manager else {}
        state, context = self._router_input(messages, stop, kwargs, metadata)
        async for chunk in isolated_astream(state, context):
            generation = ChatGenerationChunk(message=_as_chunk(chunk))
            if run_manager:
                await run_manager.on_llm_new_token(generation.text, chunk=generation)
            yield generation


def _with_thread(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "conversation_id" in kwargs:
        return kwargs
    thread = ensure_config(config).get("configurable", {}).get("thread_id")
    return {**kwargs, "conversation_id": str(thread)} if thread is not None else kwargs


def _as_chunk(item: Any) -> AIMessageChunk:
    if not isinstance(item, AIMessageChunk):
        raise TypeError(f"the router streamed {type(item).__name__}, not AIMessageChunk")
    return item
