"""What ChatHPC yields: LangChain chunks from the worker's pieces or its task summary.

Also the checks on a task's result.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import UsageMetadata

from langchain_stream.errors import TierUnavailableError
from langchain_stream.hpc.task import TaskSummary

_TIER = "hpc"


def task_summary(task: asyncio.Future[TaskSummary]) -> TaskSummary:
    """The task's summary, or the error its failure means for the caller."""
    exc = task.exception()
    if exc is not None:
        raise TierUnavailableError(
            f"the HPC task failed: {type(exc).__name__}: {exc}", tier=_TIER
        ) from exc
    summary = task.result()
    if not isinstance(summary, dict):
        raise TierUnavailableError(
            f"the HPC task returned {type(summary).__name__}, not a summary", tier=_TIER
        )
    if not summary.get("ok", False):
        raise TierUnavailableError(f"the HPC worker failed: {summary.get('error')}", tier=_TIER)
    return summary


def piece_chunk(piece: str | dict[str, Any], metadata: dict[str, Any]) -> AIMessageChunk | None:
    if isinstance(piece, str):
        return AIMessageChunk(content=piece)
    if calls := piece.get("tool_call_chunks"):
        return AIMessageChunk(content="", tool_call_chunks=calls)
    metadata.update(piece.get("response_metadata") or {})
    return None


def summary_chunks(summary: TaskSummary, model_name: str) -> list[AIMessageChunk]:
    chunks = [
        AIMessageChunk(
            content=summary.get("text", ""), tool_call_chunks=summary.get("tool_call_chunks") or []
        )
    ]
    hpc = {"mode": "batch"}
    if summary.get("relay_error"):
        hpc["relay_error"] = str(summary["relay_error"])
    chunks.append(
        last_chunk(summary.get("usage"), summary.get("response_metadata") or {}, model_name, hpc)
    )
    return chunks


def last_chunk(
    usage: dict[str, Any] | None,
    metadata: dict[str, Any],
    model_name: str,
    hpc: dict[str, Any],
) -> AIMessageChunk:
    usage_metadata = None
    if usage:
        usage_metadata = UsageMetadata(
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            total_tokens=int(usage.get("total_tokens", 0)),
        )
    return AIMessageChunk(
        content="",
        usage_metadata=usage_metadata,
        response_metadata={
            "model_name": metadata.get("model_name") or model_name,
            "finish_reason": metadata.get("finish_reason"),
            "hpc": hpc,
        },
        chunk_position="last",
    )


__all__ = ["last_chunk", "piece_chunk", "summary_chunks", "task_summary"]
