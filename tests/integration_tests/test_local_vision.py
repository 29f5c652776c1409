"""llama.cpp tiers with a vision projector: loading, the projector's checks, and refusals.

No small vision GGUF ships in a package this machine can install, so no image is answered
here (the README says which model to download). What is tested is everything up to the image:
the projector reaches llama-cpp-python's chat handler and llama.cpp, and every wrong projector
is a clear ``ModelLoadError`` naming the file, never a crash. The wrong projectors are real
GGUF files: the text model itself, a truncated one, and a well-formed ``clip`` GGUF without an
encoder (written with the ``gguf`` package).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from langchain_core.messages import HumanMessage

from langchain_stream import ChatLocal
from langchain_stream.config import Settings
from langchain_stream.errors import InvalidRequestError, ModelLoadError
from langchain_stream.hpc.task import TASK_VERSION, TaskRequest
from langchain_stream.hpc.worker import hpc_worker
from langchain_stream.llama.vision import projector_handler, warm_up_image
from langchain_stream.tier_spec import TierSpec
from langchain_stream.tiers import build_tier_model
from langchain_stream.tiers.embedded import embedded_model_path

pytestmark = pytest.mark.timeout(300)

IMAGE = {"type": "image", "base64": warm_up_image().split(",", 1)[1], "mime_type": "image/png"}


def looking_at_an_image() -> list[HumanMessage]:
    return [HumanMessage(content=[{"type": "text", "text": "What is this?"}, IMAGE])]


@pytest.fixture
def encoderless_projector(tmp_path: Path) -> Path:
    """A well-formed ``clip`` GGUF that llama.cpp cannot build an image encoder from."""
    path = tmp_path / "mmproj-encoderless.gguf"
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_tensor("v.unused", np.zeros((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_text_only_model_refuses_images_before_loading_anything() -> None:
    model = ChatLocal(model_path="/nonexistent/never-loaded.gguf")
    with pytest.raises(
        InvalidRequestError, match=r"reads text only.*1 image block\(s\) \('image'\).*projector"
    ):
        model.invoke(looking_at_an_image())


def test_a_responses_api_image_block_is_refused_by_name_before_loading_anything() -> None:
    model = ChatLocal(model_path="/nonexistent/never-loaded.gguf")
    block = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.content\[1\]: 'input_image'"):
        model.invoke([HumanMessage(content=[{"type": "text", "text": "What?"}, block])])


def test_the_projector_reaches_llama_cpp_python_s_chat_handler(encoderless_projector: Path) -> None:
    handler = projector_handler(encoderless_projector)
    assert type(handler).__name__ == "MTMDChatHandler"
    assert handler.clip_model_path == str(encoderless_projector)
    assert handler.use_gpu is False


def test_a_projector_llama_cpp_cannot_use_fails_at_load_naming_it(
    encoderless_projector: Path,
) -> None:
    # The handler is attached to the model and llama.cpp reads the file at the warm-up.
    model = ChatLocal(projector_path=str(encoderless_projector), max_tokens=4)
    with pytest.raises(ModelLoadError, match="could not use the projector") as raised:
        model.invoke(looking_at_an_image())
    assert raised.value.path == str(encoderless_projector.resolve())


def test_a_missing_projector_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "mmproj-missing.gguf"
    with pytest.raises(ModelLoadError, match=r"vision projector \(mmproj\).*not found"):
        ChatLocal(projector_path=str(missing)).load()


def test_a_truncated_projector_is_a_clear_error(
    tmp_path: Path, encoderless_projector: Path
) -> None:
    cut = tmp_path / "mmproj-cut.gguf"
    cut.write_bytes(encoderless_projector.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="truncated"):
        ChatLocal(projector_path=str(cut)).load()


def test_a_text_model_given_as_projector_is_refused_before_llama_cpp_reads_it() -> None:
    text_model = embedded_model_path()
    with pytest.raises(ModelLoadError, match=r"not a vision projector .* architecture is 'llama'"):
        ChatLocal(projector_path=str(text_model)).load()


def test_a_tier_s_projector_reaches_its_model(encoderless_projector: Path) -> None:
    spec = TierSpec(
        name="eyes",
        kind="llama_cpp",
        projector=str(encoderless_projector),
        capabilities=["vision"],
    )
    model = build_tier_model(spec, Settings())
    assert isinstance(model, ChatLocal)
    assert model.projector_path == str(encoderless_projector)
    assert spec.describe()["projector"] == str(encoderless_projector)


def test_the_hpc_worker_s_text_only_llama_cpp_refuses_images_clearly() -> None:
    url = warm_up_image()
    request = TaskRequest(
        version=TASK_VERSION,
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
        params={"max_tokens": 4},
        backend={},
    )
    summary = hpc_worker(request)
    assert not summary["ok"]
    assert "llama.cpp model reads text only" in (summary["error"] or "")
    assert "projector" in (summary["error"] or "")
