"""``init_chat_model`` with the stream provider: the documented example runs as written, on
the embedded model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from langchain_stream import StreamChatModel, init_chat_model
from langchain_stream.errors import ConfigurationError

DOC = Path(__file__).resolve().parents[2] / "docs" / "langchain.md"


def documented_example() -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- example: init_chat_model -->\n```python\n(.*?)```", text, re.S)
    assert found, f"no init_chat_model example in {DOC}"
    return found.group(1)


def test_the_documented_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(documented_example(), str(DOC), "exec"), {})
    tier, _, text = capsys.readouterr().out.strip().partition(" ")
    assert tier == "local" and text.strip()  # only the local tier is configured


@pytest.mark.parametrize(
    ("args", "kwargs", "tier"),
    [
        (("stream:cloud",), {}, "cloud"),
        (("stream-hpc",), {}, "hpc"),
        (("stream:",), {}, None),
        (("auto",), {"model_provider": "stream"}, None),
        ((), {"model_provider": "Stream"}, None),
    ],
)
def test_stream_model_strings(args: tuple[str, ...], kwargs: dict, tier: str | None) -> None:
    model = init_chat_model(*args, **kwargs)
    assert isinstance(model, StreamChatModel) and model.tier == tier


def test_stream_provider_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown model 'gpt-4o'"):
        init_chat_model("stream:gpt-4o")
    with pytest.raises(ValueError, match="unknown argument"):
        init_chat_model("stream:auto", temprature=0.1)
    with pytest.raises(ConfigurationError, match="configurable_fields"):
        init_chat_model("stream:auto", configurable_fields=("model",))
