"""The chat page at ``/`` and the data it reads (docs/web-page.md).

- ``GET /`` and ``GET /web/...`` — the page: one HTML file, one JavaScript module, one style
  sheet and the vendored Markdown renderer and sanitizer, served without a key (they hold no
  data) under a strict Content-Security-Policy;
- ``GET /v1/stream/status`` — each tier reachable or not, the privacy mode, the budget left
  today for the caller's key, and the model ids the page can pin;
- ``GET /v1/stream/conversations`` — the caller's conversations, the latest first;
- ``GET|DELETE /v1/stream/conversations/{id}`` — one of them: its messages, each answer with
  its ledger row, and the summary compression kept; or delete it.

The page streams answers through ``POST /v1/chat/completions`` itself, and its routing badge
reads the routing record the stream's chunks carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langchain_stream.server.conversations import Conversations
from langchain_stream.server.errors import ApiError
from langchain_stream.server.guard import api_key_of, is_page_path

if TYPE_CHECKING:
    from langchain_stream.server.app import Gateway

WEB_DIR = Path(__file__).parent / "web"

# Everything from this origin only: no inline script or style, no frames, no plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
DEFAULT_USER = "default"
"""Whose budget and conversations a request without a key draws on (the router's default)."""

_bearer = HTTPBearer(auto_error=False, description="An API key: 'Authorization: Bearer <key>'.")


class PageHeaders:
    """ASGI middleware that puts :data:`PAGE_HEADERS` on the page's responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in PAGE_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _owner(request: Request, gateway: Gateway) -> str:
    """The caller's identity, as the router records it: the key's name."""
    key = api_key_of(request.scope)
    return key.name if key is not None else (gateway.model.user or DEFAULT_USER)


def _not_found(conversation_id: str) -> ApiError:
    return ApiError(
        404,
        f"no conversation {conversation_id!r} for this API key",
        code="conversation_not_found",
        param="conversation_id",
    )


def status_of(gateway: Gateway, owner: str) -> dict[str, Any]:
    """Tiers, privacy mode and budget, as the router sees them now (never waits on a check)."""
    model = gateway.model
    engine = model.policy_engine()
    tiers = []
    for tier, chat in model.tier_models().items():
        reason = engine.health.not_ready(tier, chat)
        tiers.append(
            {
                "tier": tier,
                "model": f"stream-{tier}",
                "reachable": reason is None,
                "reason": reason,
            }
        )
    settings = engine.settings
    budget: dict[str, Any] = {"daily_usd": settings.budget_daily_usd}
    store = engine.store
    if store is not None:
        today, _ = store.spent_usd(owner)
        budget["spent_today_usd"] = today
        if settings.budget_daily_usd is not None:
            budget["left_today_usd"] = max(0.0, settings.budget_daily_usd - today)
    return {
        "tiers": tiers,
        "privacy": model.privacy or settings.privacy,
        "budget": budget,
        "models": gateway.served_models(),
        "conversations_kept": store is not None,
    }


def add_chat_page(app: FastAPI, gateway: Gateway) -> None:
    """Serve the chat page and its data routes on ``app``."""
    conversations = Conversations(gateway.model)
    router = APIRouter(prefix="/v1/stream", tags=["chat page"], dependencies=[Depends(_bearer)])

    @router.get("/status")
    async def status(request: Request) -> dict[str, Any]:
        """Each tier reachable or not, the privacy mode, and the budget left today."""
        return await anyio.to_thread.run_sync(status_of, gateway, _owner(request, gateway))

    @router.get("/conversations")
    async def list_conversations(request: Request) -> dict[str, Any]:
        """The caller's conversations, the latest first."""
        owner = _owner(request, gateway)
        listed = await anyio.to_thread.run_sync(conversations.listing, owner)
        return {"object": "list", "data": listed}

    @router.get("/conversations/{conversation_id}")
    async def read_conversation(conversation_id: str, request: Request) -> dict[str, Any]:
        """One of the caller's conversations: messages, ledger rows and summary."""
        owner = _owner(request, gateway)
        found = await anyio.to_thread.run_sync(conversations.read, owner, conversation_id)
        if found is None:
            raise _not_found(conversation_id)
        return found

    @router.delete("/conversations/{conversation_id}")
    async def delete_conversation(conversation_id: str, request: Request) -> dict[str, Any]:
        """Delete one of the caller's conversations (its spend stays in the ledger)."""
        owner = _owner(request, gateway)
        if not await anyio.to_thread.run_sync(conversations.delete, owner, conversation_id):
            raise _not_found(conversation_id)
        return {"id": conversation_id, "deleted": True}

    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    app.add_middleware(PageHeaders)
