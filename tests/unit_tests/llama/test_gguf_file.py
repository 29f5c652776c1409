"""The GGUF structure check: well-formed files pass, every kind of damage is a ModelLoadError."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from langchain_stream.errors import ModelLoadError
from langchain_stream.llama.gguf_file import check_gguf_file


@pytest.fixture
def small_gguf(tmp_path: Path) -> Path:
    """A real, tiny GGUF file written by the ``gguf`` package: two tensors, some metadata."""
    import gguf

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_token_list([f"tok{i}" for i in range(300)])
    writer.add_tensor("a", np.ones((64, 32), dtype=np.float32))
    writer.add_tensor("b", np.zeros((128,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_well_formed_file_is_described(small_gguf: Path) -> None:
    info = check_gguf_file(small_gguf)
    assert (info.version, info.tensors, info.architecture) == (3, 2, "llama")
    assert info.quantization == "ALL_F32"


def test_cut_inside_the_weights_is_truncated(small_gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(small_gguf.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match=r"truncated .*inside its tensor data") as info:
        check_gguf_file(cut)
    assert info.value.path == str(cut)


@pytest.mark.parametrize("keep", [8, 30, 200])
def test_cut_inside_the_header_is_truncated(small_gguf: Path, tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(small_gguf.read_bytes()[:keep])
    with pytest.raises(ModelLoadError, match=r"truncated .*inside its header"):
        check_gguf_file(cut)


def test_not_gguf_empty_missing_directory(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("not weights at all")
    with pytest.raises(ModelLoadError, match="bad magic"):
        check_gguf_file(text)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        check_gguf_file(empty)
    with pytest.raises(ModelLoadError, match="not found"):
        check_gguf_file(tmp_path / "absent.gguf")
    with pytest.raises(ModelLoadError, match="directory"):
        check_gguf_file(tmp_path)


def test_unsupported_version_and_garbage_counts(tmp_path: Path) -> None:
    future = tmp_path / "future.gguf"
    future.write_bytes(b"GGUF" + struct.pack("<IQQ", 99, 0, 0))
    with pytest.raises(ModelLoadError, match="unsupported GGUF version 99"):
        check_gguf_file(future)
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**60, 0))
    with pytest.raises(ModelLoadError, match=r"corrupt .*implausible entry count"):
        check_gguf_file(huge)


def test_unknown_value_type_is_corrupt(tmp_path: Path) -> None:
    key = b"general.name"
    bad = tmp_path / "bad-kv.gguf"
    bad.write_bytes(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<I", 77)
    )
    with pytest.raises(ModelLoadError, match="unknown metadata value type 77"):
        check_gguf_file(bad)
