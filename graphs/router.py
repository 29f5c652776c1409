"""The router graph, for ``langgraph dev`` and LangGraph deployments (see ``langgraph.json``).

Tiers and judge come from the settings (``STREAM_*`` environment variables or ``stream.toml``)
unless a run passes a :class:`~langchain_stream.graph.RouterContext`. Input:
``{"messages": [...], "tier": null}``; output: the messages with the answer appended, and the
routing record under ``record``.
"""

from langchain_stream.graph import build_router_graph

graph = build_router_graph().compile(name="langchain-stream-router")
