"""langchain-tests' standard integration suites on the real embedded model, tools included, and
on the router with a vision tier, the loopback vision server (vision_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import get_settings
from tests.integration_tests.cloud_server import CLOUD_KEY
from tests.integration_tests.standard_images import StandardImage, expected_images
from tests.integration_tests.vision_server import MODEL as VISION_MODEL
from tests.integration_tests.vision_server import VisionServer

# Small answers keep the suites quick on two cores; grammar-constrained calls stay complete.
PARAMS = {"max_tokens": 96, "temperature": 0.0}


# test_agent_loop binds a tool with tool_choice="auto" and expects the model to decide to call
# it. Auto tool choice is implemented (tests/integration_tests/test_local_tier.py checks that a
# call opened by the model is completed under the grammar), but the embedded 135M model almost
# never decides to call a tool on its own; a capable GGUF does.
AUTO_TOOL_REASON = "the embedded 135M model rarely chooses a tool under tool_choice='auto'"


class TestChatLocalIntegration(ChatModelIntegrationTests):
    # supports_image_inputs stays off: the embedded SmolLM2 reads text only, and no vision GGUF
    # (model and projector) small enough for the tests is installed (test_local_vision.py).

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
    """The default tiers: the local one only, on the embedded text model (no image flags: no
    tier reads images; TestStreamChatModelVisionIntegration adds one)."""

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


class TestStreamChatModelVisionIntegration(TestStreamChatModelIntegration):
    """The router with a tier that reads images: a deployment whose ``[[tiers]]`` are the
    embedded text model and a vision server on loopback (vision_server.py, which decodes each
    image it receives). Text goes to the text model, as in the suite above; images go to the
    vision tier. The image is the standard tests' own fetch, answered offline with a real PNG
    (standard_images.py)."""

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        # A linked image is passed on unfetched: the tier fetches it (docs/tiers.md#images).
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @pytest.fixture(autouse=True)
    def _vision_deployment(
        self,
        request: pytest.FixtureRequest,
        vision_server: VisionServer,
        standard_image: StandardImage,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[None]:
        # Both tiers HIGH and free: text goes to the first listed, the text model; a request
        # with images only to the tier that declares vision. The vision tier declares tools
        # too, so the standard image-in-a-tool-message test may reach it (its server ignores
        # the tools and describes the images).
        config = tmp_path / "stream.toml"
        config.write_text(
            f"""
[[tiers]]
name = "laptop"
kind = "llama_cpp"
level = "HIGH"
capabilities = ["tools", "structured_output"]

[[tiers]]
name = "gpu-box"
kind = "openai"
base_url = "{vision_server.url}"
api_key = "{CLOUD_KEY}"
model = "{VISION_MODEL}"
level = "HIGH"
capabilities = ["tools", "vision"]
"""
        )
        monkeypatch.setenv("STREAM_CONFIG", str(config))
        get_settings.cache_clear()
        before = len(vision_server.received())
        yield
        received = [r["images"] for r in vision_server.received()[before:]]
        # The standard image tests assert only that the call succeeds: here, that each image
        # reached the vision tier whole, and that text never did.
        assert received == (expected_images(request.node.originalname, standard_image) or [])
