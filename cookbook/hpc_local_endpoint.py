"""The HPC tier on one machine: a local endpoint, then the same request in batch mode.

``LocalEndpoint`` is a process pool that runs the real HPC worker the way a Globus Compute
endpoint does (the task goes through Globus's serializer), with the relay in a process of its
own on 127.0.0.1. ``ChatHPC`` mints a fresh channel and AES-256 key per request, submits the
task on the control plane, and streams the sealed tokens back through the relay; batch mode
returns the whole answer as the task's result instead (the baseline the relay beats).
"""

import time

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.hpc import ChatHPC, LocalEndpoint

if __name__ == "__main__":
    with LocalEndpoint(workers=1) as endpoint:
        hpc = ChatHPC(executor=endpoint, max_tokens=48)
        router = StreamChatModel(local=ChatLocal(max_tokens=48), hpc=hpc)
        hpc.invoke("Hi", max_tokens=1)  # start the pool: its worker loads the model once

        started = time.perf_counter()
        first = None
        for chunk in router.stream("Explain how a hash map works."):  # MEDIUM → HPC
            if first is None and chunk.content:
                first = time.perf_counter() - started
                print(f"[{chunk.response_metadata['routing']['tier']} tier]", end=" ")
            print(chunk.content, end="", flush=True)
        print(f"\n[relay] first token after {first * 1000:.0f} ms")

        started = time.perf_counter()
        whole = ChatHPC(executor=endpoint, max_tokens=48, mode="batch").invoke(
            "Explain how a hash map works."
        )
        print(f"[batch] whole answer after {(time.perf_counter() - started) * 1000:.0f} ms")
        print(whole.content)
