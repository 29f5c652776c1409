"""``python -m langchain_stream.llama.server ARGS``: llama-cpp-python's OpenAI-compatible server,
loading its model the safe way.

It takes ``python -m llama_cpp.server``'s arguments unchanged. Before the server starts, the
``--model`` file is checked and the extra-buffer decision is made exactly as for the models
this package loads in process (:mod:`~langchain_stream.llama.runtime`), so the server neither
crashes on an AMX CPU nor on a bad file: it exits with a one-line error instead. Tests,
benchmarks and the cookbook start their loopback servers through it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from langchain_stream.errors import ModelLoadError


def main(argv: list[str] | None = None) -> int:
    """Check the model, decide extra buffers, then run ``llama_cpp.server``'s own main."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model")
    known, _ = parser.parse_known_args(argv)
    from langchain_stream.llama.extra_buffers import model_params
    from langchain_stream.llama.gguf_file import check_gguf_file
    from langchain_stream.llama.runtime import extra_buffers_for

    extra_buffers = True
    if known.model:
        try:
            extra_buffers = extra_buffers_for(check_gguf_file(Path(known.model))).enabled
        except ModelLoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *argv]
    # The whole process is the server: keep the parameters for every model it loads.
    with model_params(extra_buffers=extra_buffers):
        serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
