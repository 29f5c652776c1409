"""The HPC tier on a real Globus Compute endpoint (runs only with credentials and an endpoint).

On the cluster, the endpoint's Python environment needs the package the worker comes from, at
the client's version. In the endpoint's ``config.yaml``::

    engine:
      type: GlobusComputeEngine
      provider:
        type: SlurmProvider
        partition: gpu
        worker_init: |
          module load cuda
          source ~/venvs/stream/bin/activate   # pip install "langchain-stream[hpc]"
    # Optional: accept only the worker function (register it once, then set
    # STREAM_HPC_FUNCTION_ID to the id Globus returns).
    allowed_functions:
      - <function uuid>

A relay must be reachable by both the compute nodes and you (see relay_behind_tls.py), and the
model served on the node, e.g. vLLM on http://127.0.0.1:8000/v1. Then, on your machine::

    export STREAM_HPC_ENDPOINT_ID=<endpoint uuid>
    export STREAM_RELAY_URLS=wss://relay.example.org
    export STREAM_RELAY_SECRET=<the relay's secret>
    export STREAM_HPC_BACKEND_URL=http://127.0.0.1:8000/v1
    export STREAM_HPC_MODEL=meta-llama/Llama-3.1-8B-Instruct
    python cookbook/hpc_globus_endpoint.py

Without those settings (or without a Globus login) the example says so and stops.
"""

import sys

from langchain_stream.config import get_settings

REQUIRED = ("hpc_endpoint_id", "relay_urls", "relay_secret")

if __name__ == "__main__":
    settings = get_settings()
    missing = [name for name in REQUIRED if not getattr(settings, name)]
    if missing or settings.hpc_endpoint_id == "local":
        names = ", ".join(f"STREAM_{name.upper()}" for name in missing) or "a real endpoint id"
        print(f"skipped: this example needs a Globus Compute endpoint; set {names}")
        sys.exit(0)
    from langchain_stream.hpc import ChatHPC

    hpc = ChatHPC()  # builds globus_compute_sdk.Executor(endpoint_id=...) on first use
    for chunk in hpc.stream("Explain the difference between MPI and OpenMP."):
        print(chunk.content, end="", flush=True)
    print()
