"""The worker survives a ComputeSerializer round trip and fails clearly on a bad request.

Running it on a model, through a process pool and a relay, is in the integration tests.
"""

from __future__ import annotations

import base64
import subprocess
import sys

from globus_compute_sdk.serialize import ComputeSerializer, JSONData

import langchain_stream.hpc as hpc
from langchain_stream.hpc.task import TASK_VERSION, ChannelSpec, TaskRequest
from langchain_stream.hpc.worker import hpc_worker
from langchain_stream.relay import new_channel_id, new_channel_key


def test_public_api_is_pinned() -> None:
    assert hpc.__all__ == [
        "ChatHPC",
        "LocalEndpoint",
        "RelayProcess",
        "TaskRequest",
        "TaskSummary",
        "hpc_worker",
    ]
    for name in hpc.__all__:
        assert getattr(hpc, name) is not None


def _request(version: int = TASK_VERSION) -> TaskRequest:
    return TaskRequest(
        version=version,
        messages=[{"role": "user", "content": "Hi"}],
        params={"max_tokens": 8, "temperature": 0.0, "tools": [], "stop": ["\n"]},
        backend={"model": "/models/x.gguf"},
    )


def _channel() -> ChannelSpec:
    return ChannelSpec(
        relay_urls=["ws://127.0.0.1:1"],
        channel_id=new_channel_id(),
        token="v1.producer-token.sig",
        key=new_channel_key().hex(),
        coalesce_s=0.002,
    )


def test_the_function_travels_by_reference() -> None:
    # The deployment decision: the endpoint imports the worker from the installed package.
    payload = ComputeSerializer().serialize(hpc_worker)
    assert len(payload) < 200
    assert b"langchain_stream.hpc.worker" in base64.b64decode(payload[3:])


def test_round_trip_with_the_default_strategies_then_run() -> None:
    request, channel = _request(version=999), _channel()
    fn, args, kwargs = ComputeSerializer().check_strategies(hpc_worker, request, channel)
    assert fn is hpc_worker
    assert args == (request, channel)
    assert kwargs == {}
    summary = fn(*args, **kwargs)
    assert summary["ok"] is False
    assert "task version" in summary["error"]
    assert summary["worker"]["pid"] > 0


def test_arguments_are_json_safe() -> None:
    # Endpoints may allow only the JSON data strategy: the key travels as hex, not bytes.
    serializer = ComputeSerializer(strategy_data=JSONData())
    request, channel = _request(), _channel()
    assert serializer.deserialize(serializer.serialize(request)) == request
    assert serializer.deserialize(serializer.serialize(channel)) == channel


def test_the_worker_imports_neither_langgraph_nor_the_sdk() -> None:
    code = (
        "import sys, langchain_stream.hpc.worker;"
        "heavy = [m for m in ('langgraph', 'llama_cpp', 'globus_compute_sdk') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
