"""``python -m langchain_stream.llama.server`` refuses a bad model with one line, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_stream.llama.server import main


def test_a_missing_model_file_exits_2_with_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.gguf"
    assert main(["--model", str(missing), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err
    assert err.count("\n") == 1


def test_a_file_that_is_not_gguf_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model at all" * 10)
    assert main(["--model", str(fake)]) == 2
    assert str(fake) in capsys.readouterr().err
