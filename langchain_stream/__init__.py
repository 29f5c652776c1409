"""langchain-stream: route each chat request to local llama.cpp, an HPC cluster or a cloud API.

``StreamChatModel()`` is a drop-in LangChain chat model; ``ChatLocal`` is the local tier on its
own. The router itself is a LangGraph graph (:func:`build_router_graph`).
"""

from langchain_stream.chat_model import StreamChatModel
from langchain_stream.config import Settings, get_settings
from langchain_stream.errors import StreamError
from langchain_stream.graph import RouterContext, RouterState, build_router_graph, router_graph
from langchain_stream.judge import Complexity, ComplexityJudge, Judgment, KeywordJudge
from langchain_stream.routing import RoutingRecord
from langchain_stream.tiers.local import ChatLocal

__version__ = "0.1.0"

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
    "router_graph",
]
