"""langchain-stream: route each chat request to local llama.cpp, an HPC cluster or a cloud API.

``StreamChatModel()`` is a drop-in LangChain chat model (also
``init_chat_model("stream:auto")``); ``ChatLocal`` is the local tier on its own. The router
itself is a LangGraph graph (:func:`build_router_graph`).

Names are imported on first use, so light parts (the relay, the judge) load without LangGraph
or llama.cpp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_stream._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ChatLocal": "langchain_stream.tiers.local",
    "Complexity": "langchain_stream.judge.base",
    "ComplexityJudge": "langchain_stream.judge.base",
    "Judgment": "langchain_stream.judge.base",
    "KeywordJudge": "langchain_stream.judge.heuristic",
    "RouterContext": "langchain_stream.graph",
    "RouterState": "langchain_stream.graph",
    "RoutingRecord": "langchain_stream.routing",
    "Settings": "langchain_stream.config",
    "StreamChatModel": "langchain_stream.chat_model",
    "StreamError": "langchain_stream.errors",
    "build_router_graph": "langchain_stream.graph",
    "get_settings": "langchain_stream.config",
    "init_chat_model": "langchain_stream.providers",
    "router_graph": "langchain_stream.graph",
}

__all__ = [
    "ChatLocal",
    "Complexity",
    "ComplexityJudge",
    "Judgment",
    "KeywordJudge",
    "RouterContext",
    "RouterState",
    "RoutingRecord",
    "Settings",
    "StreamChatModel",
    "StreamError",
    "build_router_graph",
    "get_settings",
    "init_chat_model",
    "router_graph",
]

if TYPE_CHECKING:
    from langchain_stream.chat_model import StreamChatModel
    from langchain_stream.config import Settings, get_settings
    from langchain_stream.errors import StreamError
    from langchain_stream.graph import (
        RouterContext,
        RouterState,
        build_router_graph,
        router_graph,
    )
    from langchain_stream.judge.base import Complexity, ComplexityJudge, Judgment
    from langchain_stream.judge.heuristic import KeywordJudge
    from langchain_stream.providers import init_chat_model
    from langchain_stream.routing import RoutingRecord
    from langchain_stream.tiers.local import ChatLocal


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
