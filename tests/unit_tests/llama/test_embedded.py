"""The embedded default model is found in its package and is a GGUF file."""

from __future__ import annotations

from langchain_stream.llama.embedded import EMBEDDED_MODEL_NAME, embedded_model_path
from langchain_stream.tiers import embedded as old_path


def test_the_embedded_model_is_a_gguf_file_in_its_package() -> None:
    path = embedded_model_path()
    assert path.is_file() and path.suffix == ".gguf"
    assert EMBEDDED_MODEL_NAME in path.name
    with path.open("rb") as file:
        assert file.read(4) == b"GGUF"


def test_the_old_import_path_names_the_same_function() -> None:
    assert old_path.embedded_model_path is embedded_model_path
