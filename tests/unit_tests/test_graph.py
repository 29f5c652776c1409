"""The router graph's shape, pinned by its mermaid drawing."""

from __future__ import annotations

from pathlib import Path

from langchain_stream.graph import router_graph

SNAPSHOT = Path(__file__).parent / "snapshots" / "router_graph.mmd"


def test_router_graph_shape_matches_snapshot() -> None:
    drawing = router_graph().get_graph().draw_mermaid()
    assert drawing.strip() == SNAPSHOT.read_text().strip(), (
        "the router graph changed shape; if intended, regenerate the snapshot with "
        "router_graph().get_graph().draw_mermaid()"
    )


def test_router_graph_has_one_node_per_tier_and_a_fallback() -> None:
    nodes = set(router_graph().get_graph().nodes)
    assert {"compress", "judge", "fallback", "local", "hpc", "cloud"} <= nodes
