"""langchain-tests' standard unit suites for ChatLocal and StreamChatModel (no model is loaded).

The image flags are set in the integration suites only, where the image tests run on a vision
tier (docs/tiers.md#images): langchain-tests 1.1.9's unit suite runs no test on them.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.tiers.cloud import build_cloud_model


class TestChatLocalUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatLocal

    @property
    def chat_model_params(self) -> dict:
        return {"temperature": 0.0}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False


class TestStreamChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return StreamChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"temperature": 0.0}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False


class TestCloudTierUnit(ChatModelUnitTests):
    """The cloud tier's ChatOpenAI as ``stream serve`` builds it for a compatible server."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        settings = Settings(
            cloud_model="m", cloud_base_url="http://127.0.0.1:9/v1", cloud_api_key="k"
        )
        return type(build_cloud_model(settings))

    @property
    def chat_model_params(self) -> dict:
        return {"model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}
