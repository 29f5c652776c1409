"""langchain-tests' standard integration suites on the real embedded model, tools included."""

from __future__ import annotations

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_stream import ChatLocal, StreamChatModel

# Small answers keep the suites quick on two cores; grammar-constrained calls stay complete.
PARAMS = {"max_tokens": 96, "temperature": 0.0}


# test_agent_loop binds a tool with tool_choice="auto" and expects the model to decide to call
# it. Auto tool choice is implemented (tests/integration_tests/test_local_tier.py checks that a
# call opened by the model is completed under the grammar), but the embedded 135M model almost
# never decides to call a tool on its own; a capable GGUF does.
AUTO_TOOL_REASON = "the embedded 135M model rarely chooses a tool under tool_choice='auto'"


class TestChatLocalIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatLocal

    @property
    def chat_model_params(self) -> dict:
        return PARAMS

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # A per-call `model` is a GGUF path (ChatLocal) or a tier pin (StreamChatModel), and
        # response_metadata names the model that answered, not the string passed in.
        return False

    @pytest.mark.xfail(reason=AUTO_TOOL_REASON, strict=False)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)


NESTED_RUN_REASON = "the tier's chat-model run is the router run's child: two chat-model starts"


class TestStreamChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return StreamChatModel

    @property
    def chat_model_params(self) -> dict:
        return PARAMS

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # A per-call `model` is a GGUF path (ChatLocal) or a tier pin (StreamChatModel), and
        # response_metadata names the model that answered, not the string passed in.
        return False

    @pytest.mark.xfail(reason=AUTO_TOOL_REASON, strict=False)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    # The suite counts the chat-model runs its handler sees and expects one; the router's run
    # has the tier's chat-model run as its child (one trace tree, docs/design.md), so the
    # handler sees two: the router's, then the tier's. What each run reports is checked in
    # tests/unit_tests/test_trace_tree.py.
    @pytest.mark.xfail(reason=NESTED_RUN_REASON, strict=True)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(self, model: BaseChatModel, schema_type: str) -> None:
        super().test_structured_output(model, schema_type)

    @pytest.mark.xfail(reason=NESTED_RUN_REASON, strict=True)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    async def test_structured_output_async(self, model: BaseChatModel, schema_type: str) -> None:
        await super().test_structured_output_async(model, schema_type)
