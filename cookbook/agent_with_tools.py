"""An agent with a tool, on StreamChatModel.

``create_agent`` binds the tools to ``StreamChatModel``, which passes them to whichever tier
answers. The embedded 135M model seldom decides to call a tool by itself, so this agent forces
the first step to be a tool call and lets the model answer from the result; with a capable
local GGUF (or the HPC/cloud tiers) the middleware is unnecessary.
"""

from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, wrap_model_call
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from langchain_stream import StreamChatModel


@tool
def lookup_boiling_point(substance: str) -> str:
    """Look up the boiling point of a substance at sea level."""
    table = {"water": "100 °C", "ethanol": "78.4 °C", "nitrogen": "-195.8 °C"}
    return table.get(substance.lower().strip(), "unknown")


@wrap_model_call
def tool_first(request: ModelRequest, handler):  # type: ignore[no-untyped-def]
    has_result = any(m.type == "tool" for m in request.messages)
    return handler(request.override(tool_choice="none" if has_result else "any"))


agent = create_agent(
    StreamChatModel(max_tokens=64), tools=[lookup_boiling_point], middleware=[tool_first]
)

if __name__ == "__main__":
    state = agent.invoke({"messages": [HumanMessage("At what temperature does ethanol boil?")]})
    for message in state["messages"]:
        print(f"{message.type:>5}: {message.content or message.tool_calls}")
