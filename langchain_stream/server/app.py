"""The HTTP server: an OpenAI-compatible API over ``StreamChatModel`` (``stream serve``).

Routes:

- ``GET /healthz`` — ``{"status": "ok"}``: the process is up;
- ``GET /readyz`` — each tier's readiness; HTTP 503 when no tier can answer (these two are
  the only routes answered without an API key);
- ``GET /v1/models``, ``GET /v1/models/{id}`` — ``stream-auto`` (the router) and one id per
  configured tier, ``stream-<tier name>`` (``stream-local``, ``stream-hpc``, ``stream-cloud``
  by default);
- ``POST /v1/chat/completions`` — whole or streamed (SSE) answers in OpenAI's format, with
  the routing record in the ``x-stream-routing`` header and the ``routing`` field;
- ``GET /`` — the chat page, and its data routes under ``/v1/stream/``
  (:mod:`langchain_stream.server.chat_page`);
- with the ``[langserve]`` extra, LangServe's ``/langserve/router/{invoke,batch,stream}``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer

from langchain_stream.chat_model import StreamChatModel
from langchain_stream.config import Settings, get_settings
from langchain_stream.failed_auth import FailedAuthCounter, FailedAuthLimit
from langchain_stream.server import openai_schema as oa
from langchain_stream.server.access_log import AccessLog
from langchain_stream.server.auth import KeyStore, RateLimiter
from langchain_stream.server.chat_page import add_chat_page
from langchain_stream.server.convert import call_kwargs, to_langchain_messages
from langchain_stream.server.errors import ApiError, install_error_handlers
from langchain_stream.server.guard import Guard, api_key_of
from langchain_stream.server.parameters import check_parameters
from langchain_stream.server.readiness import ReadinessProbe
from langchain_stream.server.request_checks import SchemaLimits, check_request
from langchain_stream.server.streaming import Answer, complete_answer, stream_answer

logger = logging.getLogger("langchain_stream.server")

AUTO_MODEL = "stream-auto"

# Documents the scheme in the OpenAPI schema; the Guard middleware enforces it.
_bearer = HTTPBearer(auto_error=False, description="An API key: 'Authorization: Bearer <key>'.")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": oa.ErrorResponse, "description": text}
    for status, text in {
        400: "Malformed JSON, wrong types or values, too many messages",
        401: "Missing or wrong API key",
        404: "Unknown model",
        413: "Request body too large",
        429: "Rate limit reached, or too many wrong keys from this address (see Retry-After)",
        502: "A tier failed mid-answer",
        503: "No tier could answer",
    }.items()
}


@dataclass
class Gateway:
    """What the routes share: the model, the settings, and when the server started."""

    model: StreamChatModel
    settings: Settings
    started: int = field(default_factory=lambda: int(time.time()))

    def served_models(self) -> list[str]:
        """``stream-auto`` and one id per configured tier."""
        return [AUTO_MODEL, *(f"stream-{tier}" for tier in self.model.tier_models())]


# The routes read the gateway from the app and the key from the Guard directly rather than
# through dependencies: FastAPI's dependency solving costs more per request than the router.
# `_bearer` stays a route dependency so the OpenAPI schema documents the scheme.
_AUTHENTICATED = [Depends(_bearer)]


def _warm_up(model: StreamChatModel) -> None:
    """Load the in-process (llama.cpp) models now, so the first request does not pay for it
    (saying so: it takes seconds, during which the server accepts no request)."""
    from langchain_stream.tiers.local import ChatLocal

    for name, tier_model in model.tier_models().items():
        if not isinstance(tier_model, ChatLocal):
            continue
        started = time.perf_counter()
        logger.info("loading the %s tier's model %s…", name, tier_model.model_name)
        try:
            tier_model.load()
        except Exception as exc:  # the router falls back past a broken local tier
            logger.warning("the %s tier could not load its model: %s", name, exc)
            continue
        logger.info("%s tier's model loaded in %.1f s", name, time.perf_counter() - started)


def create_app(
    model: StreamChatModel | None = None,
    *,
    settings: Settings | None = None,
    keys: KeyStore | None = None,
    langserve: bool | None = None,
) -> FastAPI:
    """The server's ASGI app.

    Args:
        model: the chat model served; by default a ``StreamChatModel`` from the settings.
        settings: limits, keys and rate limits; by default the process settings.
        keys: the accepted API keys; by default those of the settings. An empty store turns
            authentication off (``stream serve`` allows that on loopback only).
        langserve: add LangServe's routes; by default when ``langserve`` is installed.

    Returns:
        A FastAPI app, ready for uvicorn.
    """
    settings = settings or get_settings()
    model = model or StreamChatModel()
    keys = keys if keys is not None else KeyStore.from_settings(settings)
    gateway = Gateway(model=model, settings=settings)
    schema_limits = SchemaLimits.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_warm_up, model)
        yield

    app = FastAPI(
        title="langchain-stream",
        summary="OpenAI-compatible chat completions routed to local, HPC and cloud tiers.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(
        Guard,
        keys=keys,
        limiter=RateLimiter(settings.rate_limit_rpm, settings.rate_limit_storage),
        max_body_bytes=settings.max_body_bytes,
        failures=FailedAuthCounter(
            FailedAuthLimit(settings.auth_failure_limit, settings.auth_failure_window_s),
            settings.rate_limit_storage,
        ),
    )
    app.add_middleware(AccessLog)  # outermost: rejected requests are logged too

    @app.get("/healthz", response_model=oa.Health, tags=["health"])
    async def healthz() -> oa.Health:
        """The process is up. Says nothing else, and needs no key."""
        return oa.Health()

    probes: list[ReadinessProbe] = []  # built on first use: the policy engine opens the database

    @app.get(
        "/readyz",
        response_model=oa.Readiness,
        responses={503: {"model": oa.Readiness, "description": "No tier can answer"}},
        tags=["health"],
    )
    async def readyz() -> Response:
        """Whether each tier can take a request now; 503 when none can."""
        if not probes:
            probes.append(
                ReadinessProbe(model.policy_engine().health, ttl_s=settings.health_cache_s)
            )
        reasons = await probes[0].check(model.tier_models())
        for tier, reason in reasons.items():
            if reason is not None:
                logger.info("tier %s is not ready: %s", tier, reason)
        tiers = {tier: reason is None for tier, reason in reasons.items()}
        ready = any(tiers.values())
        body = oa.Readiness(status="ready" if ready else "not_ready", tiers=tiers)
        return Response(
            body.model_dump_json(), status_code=200 if ready else 503, media_type="application/json"
        )

    # The OpenAI-compatible API: every route needs a key and may answer with any of _ERRORS.
    openai_api = APIRouter(
        prefix="/v1", tags=["openai"], dependencies=_AUTHENTICATED, responses=_ERRORS
    )

    @openai_api.get("/models", response_model=oa.ModelList)
    async def list_models() -> oa.ModelList:
        """The served model ids: ``stream-auto`` and one per configured tier."""
        return oa.ModelList(
            data=[
                oa.ModelCard(id=name, created=gateway.started) for name in gateway.served_models()
            ]
        )

    @openai_api.get("/models/{model_id}", response_model=oa.ModelCard)
    async def retrieve_model(model_id: str) -> oa.ModelCard:
        """One served model id."""
        if model_id not in gateway.served_models():
            raise _unknown_model(model_id, gateway)
        return oa.ModelCard(id=model_id, created=gateway.started)

    @openai_api.post(
        "/chat/completions",
        response_model=oa.ChatCompletion,
        responses={
            200: {
                "description": "The answer; with `stream: true`, `chat.completion.chunk` events",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        },
    )
    async def chat_completions(body: oa.ChatCompletionRequest, request: Request) -> Response:
        """Answer a conversation, routed by complexity or pinned by the model id."""
        if body.model not in gateway.served_models():
            raise _unknown_model(body.model, gateway)
        limit = gateway.settings.max_messages
        if len(body.messages) > limit:
            raise ApiError(
                400,
                f"the request has {len(body.messages)} messages; at most {limit} are allowed",
                code="too_many_messages",
                param="messages",
            )
        check_parameters(body)
        check_request(body, schema_limits)
        messages = to_langchain_messages(body.messages)
        key = api_key_of(request.scope)
        kwargs = call_kwargs(body, user=key.name if key is not None else body.user)
        answer = Answer(
            completion_id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=body.model,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
        )
        if body.stream:
            return await stream_answer(
                gateway.model, messages, kwargs, answer, keepalive_s=settings.sse_keepalive_s
            )
        return await complete_answer(gateway.model, messages, kwargs, answer, request)

    app.include_router(openai_api)
    add_chat_page(app, gateway)

    if langserve is not False:
        from langchain_stream.server.langserve_routes import add_langserve_routes

        added = add_langserve_routes(app, model)
        if langserve and not added:
            from langchain_stream.errors import ConfigurationError

            raise ConfigurationError(
                "LangServe routes need the langserve extra: "
                "pip install 'langchain-stream[langserve]'"
            )
    return app


def _unknown_model(name: str, gateway: Gateway) -> ApiError:
    return ApiError(
        404,
        f"the model {name!r} does not exist; served: {', '.join(gateway.served_models())}",
        code="model_not_found",
        param="model",
    )


def app_from_settings() -> FastAPI:
    """The app as ``stream serve`` runs it in each worker (a uvicorn factory)."""
    return create_app()
