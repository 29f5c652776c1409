"""The LangGraph floor beside the router's overhead: the router's shape, doing nothing."""

from __future__ import annotations

from langchain_stream.bench.overhead import _floor_graph, langgraph_floor_ms


def test_the_floor_graph_has_the_router_s_shape_and_streams_one_chunk() -> None:
    graph = _floor_graph()
    assert set(graph.get_graph().nodes) == {
        "__start__",
        "compress",
        "judge",
        "route",
        "tier",
        "__end__",
    }
    steps = [step for _, step in graph.stream({}, stream_mode=["custom", "debug"]) if step]
    assert [step for step in steps if step == "chunk"] == ["chunk"]
    # compress and judge in one superstep, then route, then the tier: three supersteps.
    tasks = [s for s in steps if isinstance(s, dict) and s.get("type") == "task"]
    assert [t["step"] for t in tasks] == [1, 1, 2, 3]


def test_the_floor_is_one_positive_time_per_run() -> None:
    times = langgraph_floor_ms(3)
    assert len(times) == 3 and all(t > 0 for t in times)
