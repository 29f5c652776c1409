"""The public API is pinned, and light parts import without the heavy ones."""

from __future__ import annotations

import subprocess
import sys

import langchain_stream

EXPECTED_ALL = [
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


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert langchain_stream.__all__ == EXPECTED_ALL
    for name in EXPECTED_ALL:
        assert getattr(langchain_stream, name) is not None


def test_relay_and_judge_import_without_langgraph_or_llama_cpp() -> None:
    code = (
        "import sys, langchain_stream.relay, langchain_stream.judge;"
        "heavy = [m for m in ('langgraph', 'llama_cpp') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
