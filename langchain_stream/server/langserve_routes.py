"""LangServe routes for ``RemoteRunnable`` users: the ``[langserve]`` extra, optional.

``/langserve/router/invoke``, ``/batch`` and ``/stream`` serve the same ``StreamChatModel``
as the OpenAI routes, behind the same API keys, rate limits and body limit (the ``Guard``
middleware covers every route). A client passes the key as a header::

    RemoteRunnable(url, headers={"Authorization": "Bearer <key>"})

Requests draw on the budget of the key's name, as on the OpenAI routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from langchain_core.runnables import Runnable

from langchain_stream.chat_model import USER_METADATA_KEY
from langchain_stream.server.guard import api_key_of

LANGSERVE_PATH = "/langserve/router"
ENDPOINTS = ("invoke", "batch", "stream", "input_schema", "output_schema", "config_schema")


def langserve_available() -> bool:
    """Whether the ``langserve`` package can be imported."""
    try:
        import langserve  # noqa: F401
    except ImportError:
        return False
    return True


def add_langserve_routes(app: FastAPI, runnable: Runnable, path: str = LANGSERVE_PATH) -> bool:
    """Add LangServe's invoke/batch/stream routes for ``runnable`` under ``path``.

    Returns:
        Whether the routes were added (``False`` when ``langserve`` is not installed).
    """
    if not langserve_available():
        return False
    from langserve import add_routes

    add_routes(
        app,
        runnable,
        path=path,
        enabled_endpoints=ENDPOINTS,
        per_req_config_modifier=_key_pays,
    )
    return True


def _key_pays(config: dict[str, Any], request: Request) -> dict[str, Any]:
    """Requests draw on the budget of the API key's name, as on the OpenAI routes."""
    key = api_key_of(request.scope)
    if key is None:
        return config
    return {**config, "metadata": {**config.get("metadata", {}), USER_METADATA_KEY: key.name}}
