"""The embedded default model, kept importable here; it lives in :mod:`langchain_stream.llama`."""

from langchain_stream.llama.embedded import (
    EMBEDDED_DISTRIBUTION,
    EMBEDDED_MODEL_NAME,
    embedded_model_path,
)

__all__ = ["EMBEDDED_DISTRIBUTION", "EMBEDDED_MODEL_NAME", "embedded_model_path"]
