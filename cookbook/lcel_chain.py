"""StreamChatModel in an existing LCEL chain.

Swap your chat model for ``StreamChatModel()`` and nothing else changes: the chain streams token
by token, and each answer says which tier produced it. With no configuration every query runs on
the local tier (the embedded model); add HPC and cloud tiers through ``STREAM_*`` settings.
"""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_stream import StreamChatModel

prompt = ChatPromptTemplate.from_messages(
    [("system", "You are a concise assistant."), ("human", "{question}")]
)
llm = StreamChatModel(max_tokens=48)
chain = prompt | llm | StrOutputParser()

if __name__ == "__main__":
    for piece in chain.stream({"question": "What is the boiling point of water at sea level?"}):
        print(piece, end="", flush=True)
    print()
    answer = (prompt | llm).invoke({"question": "Name the largest planet."})
    record = answer.response_metadata["routing"]
    print(f"[{record['tier']} · {record['complexity']} · ttft {record['ttft_ms']:.0f} ms]")
