"""The router graph, for ``langgraph dev`` and LangGraph deployments (see ``langgraph.json``).

Tiers and judge come from the settings (``STREAM_*`` environment variables or ``stream.toml``)
unless a run passes a :class:`~langchain_stream.graph.RouterContext`. Input:
``{"messages": [...], "tier": null}``; output: the messages with the answer appended, and the
routing record under ``record``.
"""

from langchain_stream.config import get_settings
from langchain_stream.graph import build_router_graph
from langchain_stream.judge import resolve_judge

# Load the judge's artifacts now, at import: the server runs nodes on its event loop, where
# the first request would otherwise read them from disk.
resolve_judge(get_settings().judge)

graph = build_router_graph().compile(name="langchain-stream-router")
