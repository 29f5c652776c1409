"""Streaming tokens and the routing record to a UI.

The first streamed chunk carries the routing record known at the first token (tier, model,
complexity, judge time, TTFT); the last chunk adds usage and throughput. A UI can show the
badge as soon as the first token arrives and the cost line when the answer ends.
"""

import asyncio

from langchain_stream import StreamChatModel


async def main() -> None:
    llm = StreamChatModel(max_tokens=48)
    merged = None
    async for chunk in llm.astream("Explain in one sentence what a compiler does."):
        if merged is None:
            record = chunk.response_metadata["routing"]
            print(f"[badge] {record['tier']} · {record['complexity']} · {record['ttft_ms']:.0f} ms")
        print(chunk.content, end="", flush=True)
        merged = chunk if merged is None else merged + chunk
    record = merged.response_metadata["routing"]
    print(f"\n[done] {record['usage']['output_tokens']} tokens at {record['tokens_per_s']} tok/s")


if __name__ == "__main__":
    asyncio.run(main())
