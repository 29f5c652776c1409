"""The projector checks that run before llama.cpp reads a file, and the warm-up image."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import gguf
import numpy as np
import pytest
from PIL import Image

from langchain_stream.errors import ModelLoadError
from langchain_stream.llama.vision import check_projector, warm_up_image


def write_gguf(path: Path, architecture: str) -> Path:
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_tensor("v.unused", np.zeros((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_clip_gguf_is_a_projector(tmp_path: Path) -> None:
    info = check_projector(write_gguf(tmp_path / "mmproj.gguf", "clip"))
    assert info.architecture == "clip" and info.tensors == 1


def test_a_language_model_gguf_is_not_a_projector(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "model.gguf", "llama")
    with pytest.raises(ModelLoadError, match=r"not a vision projector .*'llama'") as raised:
        check_projector(path)
    assert raised.value.path == str(path)


def test_a_missing_or_cut_projector_says_it_is_the_projector(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"vision projector \(mmproj\): model file not found"):
        check_projector(tmp_path / "absent.gguf")
    whole = write_gguf(tmp_path / "mmproj.gguf", "clip").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelLoadError, match=r"vision projector \(mmproj\): .*truncated"):
        check_projector(cut)


def test_the_warm_up_image_is_a_small_png() -> None:
    header, _, data = warm_up_image().partition(",")
    assert header == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        image.load()
        assert image.size == (16, 16) and image.mode == "L"
