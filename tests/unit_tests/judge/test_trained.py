"""The default judge: artifacts load, judgments are well formed, bad input is harmless,
no network is touched, and plainly classed queries land in their class."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from langchain_stream.judge import trained
from langchain_stream.judge.base import Complexity, ComplexityJudge, Judgment
from langchain_stream.judge.trained import (
    ARTIFACT_DIR,
    FeatureConfig,
    LinearModel,
    TrainedJudge,
    clean_text,
    is_followup,
    looks_binary,
    warm_up,
)

# Generous: the design figures (5 ms p50, 20 ms p99) are benchmarks, not timed tests; this
# bound only catches pathological cases (e.g. regex backtracking on a huge paste).
LATENCY_BOUND_S = 1.0  # a bound on pathological input, not a benchmark (stream bench judge)


@pytest.fixture(scope="module")
def judge() -> TrainedJudge:
    return TrainedJudge()


def test_artifacts_are_small_and_present() -> None:
    files = {p.name: p.stat().st_size for p in ARTIFACT_DIR.iterdir()}
    assert {"trained.npz", "trained.json", "encoder.npz", "encoder-tokenizer.json"} <= set(files)
    assert sum(files.values()) < 20 * 1024 * 1024  # the int8 encoder is about 16 MB of it


def test_returns_a_judgment(judge: TrainedJudge) -> None:
    assert isinstance(judge, ComplexityJudge)
    assert judge.name == "trained"
    result = judge.judge("What is the difference between a process and a thread?")
    assert isinstance(result, Judgment)
    assert result.judge == "trained"
    assert set(result.scores) == set(Complexity)
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-6)
    assert all(0.0 <= s <= 1.0 for s in result.scores.values())
    assert max(result.scores, key=result.scores.__getitem__) == result.complexity
    assert result.latency_ms >= 0.0


def test_first_call_is_fast() -> None:
    trained._CACHE.clear()
    start = time.perf_counter()
    TrainedJudge().judge("How many bytes are in a kilobyte?")
    assert time.perf_counter() - start < 1.0
    warm_up()
    assert trained._CACHE


def _binary(n: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n))


BAD_INPUTS = {
    "empty": "",
    "whitespace": " \n\t  \r\n ",
    "100k chars": "a" * 100_000,
    "100k words": "why does my job hang on the cluster " * 3000,
    "lone surrogates": "what is \ud800 this \udfff?",
    "binary latin-1": _binary(4096).decode("latin-1"),
    "binary utf-8 replaced": _binary(4096, 1).decode("utf-8", "replace"),
    "nul bytes": "\x00\x00\x01\x02",
    "emoji only": "🙂🔥🙂",
    "chinese": "为什么天空是蓝色的？",
    "arabic": "ما هي عاصمة فرنسا؟",
    "russian": "Объясните, как работает градиентный спуск.",
    "japanese": "量子コンピュータの将来性について論じてください。",
}


@pytest.mark.parametrize("query", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_gives_a_defined_class_quickly(judge: TrainedJudge, query: str) -> None:
    start = time.perf_counter()
    result = judge.judge(query)
    assert time.perf_counter() - start < LATENCY_BOUND_S
    assert result.complexity in Complexity
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "query", ["", "   ", "\x00\x01", _binary(2048).decode("latin-1"), b"\xff\xfe\x00 bytes"]
)
def test_nothing_to_reason_about_is_low(judge: TrainedJudge, query: str) -> None:
    assert judge.judge(query).complexity == Complexity.LOW  # type: ignore[arg-type]


def test_non_string_input_does_not_crash(judge: TrainedJudge) -> None:
    assert judge.judge(None).complexity in Complexity  # type: ignore[arg-type]
    assert judge.judge(b"What is MPI?").complexity in Complexity  # type: ignore[arg-type]
    assert judge.judge("why?", context=None).complexity in Complexity  # type: ignore[arg-type]
    assert judge.judge("why?", context=[None, 3]).complexity in Complexity  # type: ignore[list-item]


def test_clean_text_bounds_and_repairs() -> None:
    cleaned = clean_text("x" * 100_000)
    assert len(cleaned) < 3000
    assert clean_text("a\ud800b").encode("utf-8")  # no UnicodeEncodeError
    assert "\x00" not in clean_text("a\x00b")
    assert looks_binary(_binary(1000).decode("latin-1"))
    assert not looks_binary("def f(x):\n    return {x: [1, 2]}  # plain code")


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_judging_works_with_sockets_disabled(socket_disabled: None) -> None:
    with pytest.raises(Exception, match=r"[Ss]ocket"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    trained._CACHE.clear()  # load the artifacts again, with the network off
    result = TrainedJudge().judge("Derive the variance of the OLS estimator.")
    assert result.complexity in Complexity


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What is the capital of Japan?", Complexity.LOW),
        ("hi there!", Complexity.LOW),
        ("Who painted the ceiling of the Sistine Chapel?", Complexity.LOW),
        ("How many centimeters are in an inch?", Complexity.LOW),
        ("Explain the difference between mitosis and meiosis.", Complexity.MEDIUM),
        (
            "Write a Python function that checks whether a string is an anagram of another.",
            Complexity.MEDIUM,
        ),
        ("Compare TCP and UDP and say when to use each.", Complexity.MEDIUM),
        (
            "Prove that every finite group of prime order is cyclic, then classify all groups of "
            "order p^2 up to isomorphism.",
            Complexity.HIGH,
        ),
        (
            "Design a multi-region storage architecture for 20 PB of genomics data with a fixed "
            "budget, strict privacy rules and a 1-hour recovery objective; justify the trade-offs.",
            Complexity.HIGH,
        ),
        (
            "Our Kafka consumers fall behind every night at 2 am, lag grows to 3M messages, CPU is "
            "idle and GC pauses are short. Diagnose what could be going on and how to confirm it.",
            Complexity.HIGH,
        ),
        (
            "Evaluate the competing explanations for the decline of the Roman Republic and argue "
            "which is best supported by the evidence.",
            Complexity.HIGH,
        ),
    ],
)
def test_plain_queries_land_in_their_class(
    judge: TrainedJudge, query: str, expected: Complexity
) -> None:
    assert judge.judge(query).complexity == expected


def test_follow_ups_are_judged_with_their_context(judge: TrainedJudge) -> None:
    context = ["What is the time complexity of heapsort?", "O(n log n) in every case."]
    assert is_followup("why?", context)
    assert not is_followup("why?", ())
    assert not is_followup("thanks!", context)
    assert not is_followup("Design a fault-tolerant scheduler for a 5,000-node cluster.", context)
    proof = ["Prove that every group of order p^2 is abelian.", "Use the class equation: ..."]
    fact = ["What is the capital of Peru?", "Lima."]
    on_proof = judge.judge("and for p^3?", proof).scores
    on_fact = judge.judge("and for p^3?", fact).scores
    assert on_proof != on_fact
    assert on_proof[Complexity.HIGH] > on_fact[Complexity.HIGH]
    # a pleasantry stays LOW whatever came before
    assert judge.judge("thank you so much!", proof).complexity == Complexity.LOW
    # a standalone query is judged on its own, not by the conversation before it
    standalone = "What is the boiling point of water at sea level in Celsius?"
    assert judge.judge(standalone, proof).scores == judge.judge(standalone).scores


def test_custom_artifact_dir_round_trip(tmp_path: Path) -> None:
    config = FeatureConfig(n_bits=8, families=("hand",))
    rng = np.random.default_rng(0)
    model = LinearModel(rng.normal(size=(256, 3)), np.array([0.5, 0.0, -0.5]), config, 0.3)
    model.save(tmp_path)
    loaded = LinearModel.load(tmp_path)
    assert loaded.config == config
    assert loaded.followup_beta == pytest.approx(0.3)
    np.testing.assert_allclose(loaded.weights, model.weights)
    result = TrainedJudge(tmp_path).judge("Explain entropy.")
    expected = model.proba("Explain entropy.")
    assert result.scores[Complexity.LOW] == pytest.approx(float(expected[0]), abs=1e-6)
