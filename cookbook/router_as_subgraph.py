"""The router graph as a node of a larger LangGraph graph.

``build_router_graph()`` returns the uncompiled router; compile it and add it as a node. Its
state shares the ``messages`` key (with LangGraph's ``add_messages`` reducer) with your graph,
so the answer lands in your conversation, and the routing record under ``record``.
"""

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from langchain_stream import build_router_graph


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    record: dict[str, Any]
    audit: list[str]


def audit(state: State) -> dict[str, Any]:
    record = state["record"]
    return {"audit": [f"answered by {record['tier']} ({record.get('complexity', 'pinned')})"]}


router = build_router_graph().compile()
graph = StateGraph(State)
graph.add_node("router", router)
graph.add_node("audit", audit)
graph.add_edge(START, "router")
graph.add_edge("router", "audit")
graph.add_edge("audit", END)
app = graph.compile()

if __name__ == "__main__":
    out = app.invoke({"messages": [HumanMessage("What is 7 times 6?")], "audit": []})
    print(out["messages"][-1].content)
    print(out["audit"])
