"""The HPC tier: Globus Compute for control, the WebSocket relay for tokens.

See docs/design.md#hpc-tier.

- :class:`ChatHPC` — the chat model (:mod:`.chat_model`).
- :func:`hpc_worker` — the function the endpoint runs (:mod:`.worker`), with its backends
  (:mod:`.backends`) and the task contract (:mod:`.task`).
- :class:`LocalEndpoint` — a process pool and a relay standing in for an endpoint
  (:mod:`.local_endpoint`).

Names are imported on first use, so the worker on a compute node imports neither LangChain's
chat-model machinery nor the Globus Compute SDK unless it needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_stream._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "ChatHPC": "langchain_stream.hpc.chat_model",
    "LocalEndpoint": "langchain_stream.hpc.local_endpoint",
    "RelayProcess": "langchain_stream.hpc.local_endpoint",
    "TaskRequest": "langchain_stream.hpc.task",
    "TaskSummary": "langchain_stream.hpc.task",
    "hpc_worker": "langchain_stream.hpc.worker",
}

__all__ = [
    "ChatHPC",
    "LocalEndpoint",
    "RelayProcess",
    "TaskRequest",
    "TaskSummary",
    "hpc_worker",
]

if TYPE_CHECKING:
    from langchain_stream.hpc.chat_model import ChatHPC
    from langchain_stream.hpc.local_endpoint import LocalEndpoint, RelayProcess
    from langchain_stream.hpc.task import TaskRequest, TaskSummary
    from langchain_stream.hpc.worker import hpc_worker


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
