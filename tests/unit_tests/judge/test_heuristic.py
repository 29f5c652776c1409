"""The keyword heuristic judge: the baseline every evaluation is shown beside."""

from __future__ import annotations

import time

import pytest

from langchain_stream.judge.base import Complexity, ComplexityJudge, Judgment
from langchain_stream.judge.heuristic import KeywordJudge


@pytest.fixture(scope="module")
def judge() -> KeywordJudge:
    return KeywordJudge()


def test_conforms_to_the_protocol(judge: KeywordJudge) -> None:
    assert isinstance(judge, ComplexityJudge)
    assert judge.name == "keyword"
    result = judge.judge("What is the capital of France?")
    assert isinstance(result, Judgment)
    assert result.judge == "keyword"
    assert set(result.scores) == set(Complexity)
    assert sum(result.scores.values()) == pytest.approx(1.0)
    assert max(result.scores, key=result.scores.__getitem__) == result.complexity


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What is the capital of France?", Complexity.LOW),
        ("hello!", Complexity.LOW),
        ("Explain the difference between TCP and UDP.", Complexity.MEDIUM),
        ("Write a function that reverses a string in Python.", Complexity.MEDIUM),
        ("Prove that the square root of 3 is irrational.", Complexity.HIGH),
        ("Design the storage architecture for a 5 PB archive.", Complexity.HIGH),
    ],
)
def test_keywords_pick_the_class(judge: KeywordJudge, query: str, expected: Complexity) -> None:
    assert judge.judge(query).complexity == expected


def test_short_follow_up_borrows_the_context(judge: KeywordJudge) -> None:
    alone = judge.judge("and for n=3?")
    followed = judge.judge("and for n=3?", ["Prove that n^2 + n is even for every integer n."])
    assert alone.complexity == Complexity.LOW
    assert followed.complexity == Complexity.HIGH


@pytest.mark.parametrize(
    "query",
    ["", "   \n\t ", "x" * 100_000, "lone \ud800 surrogate \udfff", "\x00\x01\x02\xff", "为什么？"],
)
def test_bad_input_gives_a_class_quickly(judge: KeywordJudge, query: str) -> None:
    start = time.perf_counter()
    result = judge.judge(query)
    assert (time.perf_counter() - start) < 0.5
    assert result.complexity in Complexity
