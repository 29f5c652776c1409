"""``ChatHPC``: the HPC tier as a LangChain chat model (docs/design.md#hpc-tier).

Each request goes to the endpoint as one task on any :class:`concurrent.futures.Executor`
(the control plane: a ``globus_compute_sdk.Executor`` in production, a
:class:`~langchain_stream.hpc.local_endpoint.LocalEndpoint` on one machine). The tokens come
back through a relay (the data plane) on a fresh channel with a fresh AES-256 key and token
pair, so no key is ever reused. The key travels only in the task's arguments.

Failure before the first token raises — :class:`~langchain_stream.errors.FirstTokenTimeoutError`
when the endpoint is cold or queued, :class:`~langchain_stream.errors.TierUnavailableError`
when the endpoint, worker, backend or relay fails — so the router falls back to another tier
before anything reaches the user. Stopping early (sync or async) cancels the channel, which
stops the worker's backend at its next token, and cancels a task that has not started.

Images (docs/design.md#images-on-the-hpc-tier) must be inline data. Small ones travel in the
task; larger ones go up the relay on a second channel with a key of their own, once the worker
says it is ready for them, and the task carries only their sizes and SHA-256 digests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, ClassVar, Literal

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import ChatGenerationChunk
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from langchain_stream._threads import AsyncSource
from langchain_stream.config import Settings, get_settings
from langchain_stream.errors import (
    ConfigurationError,
    FirstTokenTimeoutError,
    InvalidRequestError,
    RelayError,
    RelayUnavailableError,
    TierUnavailableError,
)
from langchain_stream.hpc.chunks import (
    last_chunk,
    piece_chunk,
    summary_chunks,
    task_summary,
)
from langchain_stream.hpc.images import (
    DEFAULT_IMAGE_TRANSPORT,
    ImageTransport,
    Upload,
    split_images,
)
from langchain_stream.hpc.status import ensure_logged_in, globus_status_client, not_ready_reason
from langchain_stream.hpc.task import (
    TASK_VERSION,
    UPLOAD_READY,
    ChannelSpec,
    TaskRequest,
    TaskSummary,
    UploadSpec,
    decode_piece,
)
from langchain_stream.hpc.uploads import send_images
from langchain_stream.hpc.worker import hpc_worker
from langchain_stream.limits import DEFAULT_TIMEOUTS
from langchain_stream.llama.embedded import EMBEDDED_MODEL_NAME
from langchain_stream.relay.client import DEFAULT_COALESCE_S, ConsumerClient
from langchain_stream.relay.protocol import new_channel_key
from langchain_stream.relay.tokens import DEFAULT_TOKEN_TTL_S, mint_channel_tokens, new_channel_id
from langchain_stream.structured import StreamFirstChatModel, openai_tool_choice

LOCAL_ENDPOINT_ID = "local"
"""The ``endpoint_id`` that runs the HPC tier on this machine (see ``LocalEndpoint``)."""

DEFAULT_IDLE_TIMEOUT_S = DEFAULT_TIMEOUTS.idle_s
"""Default wait between frames once tokens flow."""

_TIER = "hpc"


def _settings_value(name: str) -> Callable[[], Any]:
    return lambda: getattr(get_settings(), name)


class ChatHPC(StreamFirstChatModel):
    """A chat model on an HPC cluster: Globus Compute dispatches, a WebSocket relay streams.

    Construction does no I/O; the Globus Compute executor is built on first use (it may ask
    you to log in), and never when ``executor`` is given.

    Example:
        .. code-block:: python

            from langchain_stream.hpc import ChatHPC, LocalEndpoint

            # On one machine: a process pool stands in for the endpoint, with a local relay.
            llm = ChatHPC(executor=LocalEndpoint(), max_tokens=64)
            for chunk in llm.stream("What is a supercomputer?"):
                print(chunk.content, end="", flush=True)

            # On a cluster: a Globus Compute endpoint and your relays.
            llm = ChatHPC(
                endpoint_id="…",
                relay_urls=["wss://relay-a.example.org", "wss://relay-b.example.org"],
                relay_secret="…",
                backend_url="http://127.0.0.1:8000/v1",  # vLLM on the compute node
                model="meta-llama/Llama-3.1-8B-Instruct",
            )
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    endpoint_id: str | None = Field(default_factory=_settings_value("hpc_endpoint_id"))
    """Globus Compute endpoint id; ``"local"`` runs a :class:`LocalEndpoint` on this machine.
    Ignored when ``executor`` is given."""
    executor: Executor | None = Field(default=None, exclude=True)
    """Any ``concurrent.futures.Executor`` that runs the worker (the control plane)."""
    relay_urls: list[str] = Field(default_factory=_settings_value("relay_urls"))
    """Relay base URLs; each channel picks one by rendezvous hashing and fails over. Empty:
    the executor's own relay (a ``LocalEndpoint`` has one), else batch mode."""
    relay_secret: SecretStr | None = Field(default_factory=_settings_value("relay_secret"))
    """Secret of the relays, to mint each channel's producer and consumer tokens."""
    model: str | None = Field(default_factory=_settings_value("hpc_model"))
    """Served model name at ``backend_url``, or a GGUF path on the node for llama.cpp."""
    projector: str | None = None
    """For llama.cpp on the node: the model's vision projector (mmproj) GGUF, as the node
    sees it; with it the worker's model reads images."""
    backend_url: str | None = Field(default_factory=_settings_value("hpc_backend_url"))
    """OpenAI-compatible server on the compute node (vLLM), as the node sees it; ``None``:
    llama.cpp in the worker process."""
    api_key: SecretStr | None = Field(default_factory=_settings_value("hpc_backend_api_key"))
    """API key of the backend server, sent to the worker on the control plane."""
    temperature: float = Field(default_factory=_settings_value("temperature"))
    """Sampling temperature."""
    max_tokens: int | None = Field(default_factory=_settings_value("max_tokens"))
    """Maximum answer tokens."""
    stop: list[str] | None = None
    """Stop sequences."""
    top_p: float | None = None
    """Nucleus sampling threshold; ``None`` keeps the backend's default."""
    seed: int | None = None
    """Sampling seed."""
    mode: Literal["relay", "batch"] = Field(default_factory=_settings_value("hpc_mode"))
    """``relay`` streams through the relay; ``batch`` returns the answer through the task."""
    batch_fallback: bool = True
    """When no relay is reachable from here, answer in batch mode instead of failing."""
    first_token_timeout_s: float = Field(default_factory=_settings_value("first_token_timeout_s"))
    """Time from the call to the first token (queue, cold start and prompt included); past it
    the call raises ``FirstTokenTimeoutError`` and the router falls back. In batch mode the
    whole answer must arrive within it."""
    idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S
    """Wait between frames once tokens flow; ``None`` waits forever."""
    timeout: float | None = None
    """Bound on the whole answer, in seconds; ``None``: only the two timeouts above."""
    function_id: str | None = Field(default_factory=_settings_value("hpc_function_id"))
    """Registered id of the worker function, for endpoints that allow only known functions."""
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S
    """Lifetime of each channel's tokens."""
    coalesce_s: float = DEFAULT_COALESCE_S
    """The worker's coalescing window: tokens produced within it under load share a frame."""
    max_queued_tasks: int = Field(default=0, ge=0)
    """Tasks waiting for a worker at the endpoint beyond which :meth:`acheck_ready` reports
    it queued, so the router sends requests elsewhere rather than wait."""
    status_client: Any = Field(default=None, exclude=True)
    """Reads the Globus endpoint's status for :meth:`acheck_ready`: anything with
    ``get_endpoint_status(endpoint_id)``, such as a ``globus_compute_sdk.Client``. ``None``:
    the executor's own client, else a ``Client`` made when a Globus login is stored."""
    readiness_timeout_s: float = Field(default=10.0, gt=0)
    """Bound on one readiness check."""
    image_limits: ImageTransport = Field(default=DEFAULT_IMAGE_TRANSPORT, exclude=True)
    """Which images stay inline in the task and which go up the relay, and the bounds on them."""

    _default_executor: Executor | None = PrivateAttr(default=None)
    _executor_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _globus_status_client: Any = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ChatHPC:
        """The HPC tier as ``settings`` configure it; ``kwargs`` override fields."""
        fields: dict[str, Any] = {
            "endpoint_id": settings.hpc_endpoint_id,
            "relay_urls": list(settings.relay_urls),
            "relay_secret": settings.relay_secret,
            "model": settings.hpc_model,
            "backend_url": settings.hpc_backend_url,
            "api_key": settings.hpc_backend_api_key,
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
            "mode": settings.hpc_mode,
            "first_token_timeout_s": settings.first_token_timeout_s,
            "function_id": settings.hpc_function_id,
        }
        return cls(**{**fields, **kwargs})

    ls_provider: ClassVar[str] = "globus-compute"

    @property
    def _llm_type(self) -> str:
        return "globus-compute-hpc"

    @property
    def model_name(self) -> str:
        """The backend model's name (a GGUF file's stem for llama.cpp)."""
        if self.backend_url:
            return self.model or "default"
        return Path(self.model).stem if self.model else EMBEDDED_MODEL_NAME

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "endpoint_id": self.endpoint_id,
            "model": self.model,
            "backend_url": self.backend_url,
            "mode": self.mode,
        }

    # --- the control plane -------------------------------------------------------------------

    def get_executor(self) -> Executor:
        """The executor requests go to, built on first use when none was given.

        Raises:
            ConfigurationError: No executor and no endpoint id, or the SDK is missing.
        """
        if self.executor is not None:
            return self.executor
        with self._executor_lock:
            if self._default_executor is None:
                self._default_executor = _build_executor(self.endpoint_id)
            return self._default_executor

    # --- readiness ---------------------------------------------------------------------------

    async def acheck_ready(self) -> str | None:
        """Why the endpoint should not get a request now (offline, cold, queued), or ``None``.

        The router's health policy calls this in the background and skips the tier while it
        is not ready, so no request waits minutes on a cold start. A local endpoint reports
        itself, and a cold one starts warming up now; a Globus Compute endpoint is asked for
        its status, which never builds an executor nor asks anyone to log in. Any other
        executor reports nothing and counts as ready.
        """
        executor = self.executor if self.executor is not None else self._default_executor
        if executor is None and self.endpoint_id == LOCAL_ENDPOINT_ID:
            executor = self.get_executor()  # the shared local endpoint; building it starts nothing
        local_status = getattr(executor, "endpoint_status", None)
        if local_status is not None:
            status = local_status()
            warm = getattr(executor, "start_in_background", None)
            if warm is not None and status.get("details", {}).get("total_workers") == 0:
                warm()
            return not_ready_reason("local", status, max_queued_tasks=self.max_queued_tasks)
        if executor is not None:
            # A globus_compute_sdk.Executor carries its endpoint and a logged-in client.
            client, endpoint_id = getattr(executor, "client", None), executor_endpoint(executor)
            if client is None or endpoint_id is None:
                return None
        elif self.endpoint_id:
            client, endpoint_id = self.status_client, self.endpoint_id
        else:
            return "HPC tier has no executor and no endpoint id (STREAM_HPC_ENDPOINT_ID)"
        try:
            async with asyncio.timeout(self.readiness_timeout_s):
                status = await asyncio.to_thread(self._globus_status, client, endpoint_id)
        except TimeoutError:
            return (
                f"HPC endpoint {endpoint_id}: no status from Globus Compute within "
                f"{self.readiness_timeout_s} s"
            )
        except ConfigurationError as exc:
            return f"HPC endpoint {endpoint_id}: {exc}"
        except Exception as exc:  # the SDK's and the network's errors alike
            return f"HPC endpoint {endpoint_id}: cannot read its status: {exc}"
        return not_ready_reason(endpoint_id, status, max_queued_tasks=self.max_queued_tasks)

    def _globus_status(self, client: Any, endpoint_id: str) -> dict[str, Any]:
        """The endpoint's status report, read with ``client`` (made on first use if ``None``)."""
        if client is None:
            with self._executor_lock:
                if self._globus_status_client is None:
                    self._globus_status_client = globus_status_client()
                client = self._globus_status_client
        ensure_logged_in(client)  # tokens can be revoked after the client was made
        return dict(client.get_endpoint_status(endpoint_id))

    def _prepare(self) -> tuple[Executor, list[str], str | None]:
        """The executor, the relay URLs and the relay secret of the next request."""
        executor = self.get_executor()
        urls = list(self.relay_urls) or list(getattr(executor, "relay_urls", None) or ())
        secret = (
            self.relay_secret.get_secret_value()
            if self.relay_secret is not None
            else getattr(executor, "relay_secret", None)
        )
        if urls and not secret:
            raise ConfigurationError(
                "relay URLs are set but no relay secret: set STREAM_RELAY_SECRET (or "
                "relay_secret=) to the secret the relays were started with"
            )
        return executor, urls, secret

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> TaskRequest:
        if not messages:
            raise InvalidRequestError("the message list is empty: nothing to answer")
        params: dict[str, Any] = {
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            "temperature": kwargs.get("temperature", self.temperature),
            "top_p": kwargs.get("top_p", self.top_p),
            "seed": kwargs.get("seed", self.seed),
            "stop": stop or self.stop or None,
        }
        for name in ("tools", "tool_choice", "response_format"):
            if kwargs.get(name) is not None:
                params[name] = kwargs[name]
        if "tool_choice" in params:
            params["tool_choice"] = openai_tool_choice(params["tool_choice"], params.get("tools"))
        backend: dict[str, Any] = {}
        model = kwargs.get("model") or self.model
        if model:
            backend["model"] = model
        if self.projector and not self.backend_url:
            backend["projector"] = self.projector
        if self.backend_url:
            backend["url"] = self.backend_url
            if self.api_key is not None:
                backend["api_key"] = self.api_key.get_secret_value()
        try:
            openai_messages = convert_to_openai_messages(messages)
        except (ValueError, TypeError) as exc:
            raise InvalidRequestError(f"cannot send these messages to the HPC tier: {exc}") from exc
        return TaskRequest(
            version=TASK_VERSION,
            messages=openai_messages,  # type: ignore[typeddict-item]
            params={k: v for k, v in params.items() if v is not None},
            backend=backend,  # type: ignore[typeddict-item]
        )

    def _split_images(self, request: TaskRequest) -> tuple[TaskRequest, list[Upload]]:
        """The task's request with large images taken out, and those images (the uploads)."""
        messages, uploads = split_images(request["messages"], self.image_limits)
        if not uploads and messages is request["messages"]:
            return request, []
        return TaskRequest(
            version=request["version"],
            messages=messages,
            params=request["params"],
            backend=request["backend"],
        ), uploads

    async def _submit(
        self, executor: Executor, request: TaskRequest, channel: ChannelSpec | None
    ) -> Future[TaskSummary]:
        args: tuple[Any, ...] = (request,) if channel is None else (request, channel)

        def submit() -> Future[TaskSummary]:
            registered = getattr(executor, "submit_to_registered_function", None)
            if self.function_id and registered is not None:
                return registered(self.function_id, args=args)
            return executor.submit(hpc_worker, *args)

        try:
            # Off the event loop: a Globus executor may block while it batches or logs in.
            future = await asyncio.to_thread(submit)
        except Exception as exc:
            raise TierUnavailableError(
                f"could not submit to the HPC endpoint: {type(exc).__name__}: {exc}", tier=_TIER
            ) from exc
        future.add_done_callback(_retrieve_exception)
        return future

    # --- generation --------------------------------------------------------------------------

    async def _achunks(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AsyncIterator[AIMessageChunk]:
        """The one implementation behind every entry point."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.first_token_timeout_s
        end = started + self.timeout if self.timeout is not None else None
        request, uploads = self._split_images(self._request(messages, stop, kwargs))
        # Off the loop: building a Globus executor or starting a local endpoint blocks.
        executor, urls, secret = await asyncio.to_thread(self._prepare)
        if self.mode == "batch" or not urls:
            if uploads:
                raise InvalidRequestError(
                    f"an image of {uploads[0].size:,} bytes is over the HPC task's inline limit "
                    f"({self.image_limits.inline_max_bytes:,} bytes) and goes up the relay, but "
                    + ("batch mode uses none" if self.mode == "batch" else "no relay is configured")
                )
            note = None if self.mode == "batch" else "no relay configured"
            async for chunk in self._abatch(executor, request, deadline, note):
                yield chunk
            return
        assert secret is not None
        channel_id, key = new_channel_id(), new_channel_key()
        tokens = mint_channel_tokens(secret, channel_id, self.token_ttl_s)
        channel = ChannelSpec(
            relay_urls=urls,
            channel_id=channel_id,
            token=tokens.producer,
            key=key.hex(),
            coalesce_s=self.coalesce_s,
        )
        upload_auth: tuple[str, str, bytes] | None = None  # channel id, producer token, key
        if uploads:
            # A key of its own: two channels' sealers under one key would reuse nonces.
            upload_id, upload_key = new_channel_id(), new_channel_key()
            upload_tokens = mint_channel_tokens(secret, upload_id, self.token_ttl_s)
            channel["upload"] = UploadSpec(
                channel_id=upload_id,
                token=upload_tokens.consumer,
                key=upload_key.hex(),
                images=[upload.ref for upload in uploads],
            )
            upload_auth = (upload_id, upload_tokens.producer, upload_key)
        consumer = ConsumerClient(
            urls,
            channel_id,
            tokens.consumer,
            key,
            first_token_timeout_s=None,  # ours runs from the call, not from the connection
            idle_timeout_s=self.idle_timeout_s,
        )
        # Dispatch and the relay handshake overlap; the task is cancelled if we give up.
        submitting = asyncio.ensure_future(self._submit(executor, request, channel))
        task: asyncio.Future[TaskSummary] | None = None
        first: asyncio.Future[str] | None = None
        complete = False
        try:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                    await consumer.connect()
            except TimeoutError:
                raise self._first_token_late("could not reach a relay") from None
            except RelayUnavailableError as exc:
                if not self.batch_fallback or uploads:
                    raise TierUnavailableError(f"no relay reachable: {exc}", tier=_TIER) from exc
                # The node most likely cannot reach the relays either; its worker then answers
                # in batch mode. Only if it streamed (to a relay we cannot reach) is the request
                # sent again, in batch mode.
                task = asyncio.wrap_future(await submitting)
                summary = await self._summary(task, deadline)
                if summary.get("mode") != "batch":
                    task = asyncio.wrap_future(await self._submit(executor, request, None))
                    summary = await self._summary(task, deadline)
                summary["relay_error"] = summary.get("relay_error") or str(exc)
                for chunk in summary_chunks(summary, self.model_name):
                    yield chunk
                complete = True
                return
            except RelayError as exc:
                raise TierUnavailableError(f"the relay refused us: {exc}", tier=_TIER) from exc
            task = asyncio.wrap_future(await submitting)
            first = asyncio.ensure_future(anext(consumer))
            outcome = await self._first(first, task, deadline)
            if upload_auth is not None:
                # The worker's first piece says it waits on the upload channel.
                if (
                    outcome is None
                    or isinstance(outcome, dict)
                    or decode_piece(outcome) != UPLOAD_READY
                ):
                    raise TierUnavailableError(
                        "the HPC worker did not ask for the images", tier=_TIER
                    )
                await self._upload(urls, *upload_auth, uploads, deadline)
                first = asyncio.ensure_future(anext(consumer))
                outcome = await self._first(first, task, deadline)
            if isinstance(outcome, dict):  # the worker had no relay and answered in batch mode
                for chunk in summary_chunks(outcome, self.model_name):
                    yield chunk
                complete = True
                return
            metadata: dict[str, Any] = {}
            pending = [] if outcome is None else [outcome]
            while True:
                for token in pending:
                    chunk = piece_chunk(decode_piece(token), metadata)
                    if chunk is not None:
                        yield chunk
                try:
                    token = await _within(anext(consumer), end, loop)
                except StopAsyncIteration:
                    break
                pending = [token]
            complete = True
            hpc: dict[str, Any] = {"mode": "relay", "relay_url": consumer.relay_url}
            if uploads:
                hpc["uploaded_images"] = len(uploads)
                hpc["upload_bytes"] = sum(upload.size for upload in uploads)
            yield last_chunk(consumer.usage, metadata, self.model_name, hpc)
        finally:
            if not complete:
                await _give_up(consumer, first, task, submitting)

    async def _upload(
        self,
        urls: list[str],
        channel_id: str,
        token: str,
        key: bytes,
        uploads: list[Upload],
        deadline: float,
    ) -> None:
        """Send the images the worker is waiting for, within the first-token deadline."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                await send_images(urls, channel_id, token, key, uploads)
        except TimeoutError:
            raise self._first_token_late("the images were not uploaded") from None
        except RelayError as exc:
            raise TierUnavailableError(f"the image upload failed: {exc}", tier=_TIER) from exc

    async def _first(
        self,
        first: asyncio.Future[str],
        task: asyncio.Future[TaskSummary],
        deadline: float,
    ) -> str | TaskSummary | None:
        """Wait for the first token, or for the task to end without one; never past the deadline.

        Returns:
            The first relay token; the task's summary when the worker answered in batch
            mode; ``None`` for an answer with no token at all.
        """
        loop = asyncio.get_running_loop()
        while True:
            waiting = {first} if task.done() else {first, task}
            remaining = deadline - loop.time()
            done, _ = await asyncio.wait(
                waiting, timeout=max(remaining, 0.0), return_when=asyncio.FIRST_COMPLETED
            )
            if first in done:
                try:
                    return first.result()
                except StopAsyncIteration:
                    return None
                except RelayError as exc:
                    raise TierUnavailableError(f"HPC stream failed: {exc}", tier=_TIER) from exc
            if task in done:
                summary = task_summary(task)
                if summary.get("mode") == "batch":
                    return summary
                if summary.get("cancelled"):
                    raise TierUnavailableError(
                        f"the HPC worker stopped: {summary.get('cancel_reason')}", tier=_TIER
                    )
                continue  # it streamed everything: the tokens are on their way
            raise self._first_token_late(
                "no token from the HPC tier", "(endpoint cold, queued or unreachable)"
            )

    async def _summary(self, task: asyncio.Future[TaskSummary], deadline: float) -> TaskSummary:
        """The task's summary, which is the whole answer in batch mode, by the deadline."""
        remaining = deadline - asyncio.get_running_loop().time()
        done, _ = await asyncio.wait({task}, timeout=max(remaining, 0.0))
        if not done:
            task.cancel()  # a task that has not started never will
            raise self._first_token_late("no answer from the HPC tier (batch mode)")
        return task_summary(task)

    def _first_token_late(self, what: str, why: str = "") -> FirstTokenTimeoutError:
        """The error for ``what`` not happening within the first-token timeout."""
        within = f"{what} within {self.first_token_timeout_s} s"
        return FirstTokenTimeoutError(
            f"{within} {why}" if why else within,
            tier=_TIER,
            timeout_s=self.first_token_timeout_s,
        )

    async def _abatch(
        self, executor: Executor, request: TaskRequest, deadline: float, note: str | None
    ) -> AsyncIterator[AIMessageChunk]:
        """Batch mode: the whole answer through the task result."""
        task = asyncio.wrap_future(await self._submit(executor, request, None))
        summary = await self._summary(task, deadline)
        if note is not None:
            summary["relay_error"] = summary.get("relay_error") or note
        for chunk in summary_chunks(summary, self.model_name):
            yield chunk

    def _chunk_source(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AsyncSource[ChatGenerationChunk]:
        # The relay and Globus Compute are async I/O: sync callers run it on the background loop.
        async def chunks() -> AsyncIterator[ChatGenerationChunk]:
            async for message in self._achunks(messages, stop, kwargs):
                yield ChatGenerationChunk(message=message)

        return AsyncSource(chunks)


# --------------------------------------------------------------------------- helpers


def _build_executor(endpoint_id: str | None) -> Executor:
    if not endpoint_id:
        raise ConfigurationError(
            "ChatHPC needs an executor or an endpoint id (STREAM_HPC_ENDPOINT_ID)"
        )
    if endpoint_id == LOCAL_ENDPOINT_ID:
        from langchain_stream.hpc.local_endpoint import shared_local_endpoint

        return shared_local_endpoint()
    try:
        from globus_compute_sdk import Executor as GlobusExecutor
    except ImportError as exc:
        raise ConfigurationError(
            "the HPC tier needs globus-compute-sdk: pip install 'langchain-stream[hpc]'"
        ) from exc
    return GlobusExecutor(endpoint_id=endpoint_id)


def executor_endpoint(executor: Executor) -> str | None:
    """The Globus endpoint id a ``globus_compute_sdk.Executor`` submits to, else ``None``."""
    endpoint_id = getattr(executor, "endpoint_id", None)
    return str(endpoint_id) if endpoint_id else None


def _retrieve_exception(future: Future[Any]) -> None:
    # A task we gave up on may fail later; reading its exception keeps that out of the logs.
    if not future.cancelled():
        future.exception()


def _cancel_when_submitted(submitting: asyncio.Future[Future[TaskSummary]]) -> None:
    def cancel(done: asyncio.Future[Future[TaskSummary]]) -> None:
        if not done.cancelled() and done.exception() is None:
            done.result().cancel()

    submitting.add_done_callback(cancel)


async def _give_up(
    consumer: ConsumerClient,
    first: asyncio.Future[str] | None,
    task: asyncio.Future[TaskSummary] | None,
    submitting: asyncio.Future[Future[TaskSummary]],
) -> None:
    """Stop everything of an unfinished call: the consumer cancels, a queued task is dropped."""
    if first is not None and not first.done():
        first.cancel()
        with contextlib.suppress(BaseException):
            await first
    with contextlib.suppress(Exception):
        await consumer.cancel("consumer stopped")
    if task is not None:
        task.cancel()  # cancels the executor's future too: a task not yet started never runs
    else:
        _cancel_when_submitted(submitting)


async def _within(awaitable: Any, end: float | None, loop: asyncio.AbstractEventLoop) -> Any:
    if end is None:
        return await awaitable
    try:
        async with asyncio.timeout(max(end - loop.time(), 0.0)):
            return await awaitable
    except TimeoutError:
        raise TierUnavailableError("the HPC answer exceeded its timeout", tier=_TIER) from None


__all__ = ["DEFAULT_IDLE_TIMEOUT_S", "LOCAL_ENDPOINT_ID", "ChatHPC"]
