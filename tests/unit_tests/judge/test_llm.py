"""The LLM judge without running a model: construction, model choice, registration, prompt.
(It runs on the embedded model in ``tests/integration_tests/test_judge_llm.py``.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from langchain_stream.config import get_settings
from langchain_stream.judge import BUILTIN_JUDGES
from langchain_stream.judge.llm import FEW_SHOT, SYSTEM_PROMPT, LLMJudge
from langchain_stream.llama.embedded import embedded_model_path

DATA = Path(__file__).resolve().parents[3] / "data" / "complexity"


def test_construction_does_no_io() -> None:
    started = time.perf_counter()
    judge = LLMJudge("/nowhere/model.gguf")
    assert time.perf_counter() - started < 0.05
    assert judge.name == "llm"
    assert judge._context is None


def test_registered_as_llm() -> None:
    assert BUILTIN_JUDGES["llm"] == "langchain_stream.judge.llm:LLMJudge"


def test_model_path_defaults_to_the_local_tiers_model(monkeypatch, tmp_path: Path) -> None:
    assert LLMJudge().model_path == embedded_model_path()
    monkeypatch.setenv("STREAM_LOCAL_MODEL", str(tmp_path / "local.gguf"))
    get_settings.cache_clear()
    assert LLMJudge().model_path == tmp_path / "local.gguf"
    monkeypatch.setenv("STREAM_JUDGE_MODEL", str(tmp_path / "judge.gguf"))
    get_settings.cache_clear()
    assert LLMJudge().model_path == tmp_path / "judge.gguf"
    assert LLMJudge(tmp_path / "given.gguf").model_path == tmp_path / "given.gguf"


def test_a_missing_model_file_fails_clearly_on_first_use(tmp_path: Path) -> None:
    from langchain_stream.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="not found"):
        LLMJudge(tmp_path / "gone.gguf").judge("What is MPI?")


def test_few_shot_examples_are_never_queries_the_judges_are_scored_on() -> None:
    # The examples come from the earlier one-author corpus (author a0); the judges' figures are
    # taken on the other authors, whose queries must not include them.
    lines = (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    scored = {row["text"] for row in map(json.loads, lines) if row["author"] != "a0"}
    for text, _ in FEW_SHOT:
        assert text not in scored, text
    assert {label for _, label in FEW_SHOT} == {"LOW", "MEDIUM", "HIGH"}
    assert "low, medium or high" in SYSTEM_PROMPT
