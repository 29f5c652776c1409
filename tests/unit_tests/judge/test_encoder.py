"""The judge's sentence encoder on its shipped artifacts: unit vectors that follow meaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from langchain_stream.errors import ConfigurationError
from langchain_stream.judge.encoder import (
    DIMENSIONS,
    MAX_TOKENS,
    SentenceEncoder,
    encode_many,
    shared_encoder,
)


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return shared_encoder()


def test_a_sentence_vector_has_the_model_width_and_unit_length(encoder: SentenceEncoder) -> None:
    vector = encoder.encode("What is the capital of France?")
    assert vector.shape == (DIMENSIONS,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(vector, encoder.encode("What is the capital of France?"))


def test_paraphrases_are_closer_than_unrelated_requests(encoder: SentenceEncoder) -> None:
    capital = encoder.encode("What is the capital of France?")
    paraphrase = encoder.encode("Which city is France's capital?")
    unrelated = encoder.encode("Prove that there are infinitely many prime numbers.")
    assert float(capital @ paraphrase) > float(capital @ unrelated) + 0.1


def test_a_huge_paste_is_cut_to_the_token_limit(encoder: SentenceEncoder) -> None:
    assert len(encoder.tokens("word " * 5_000)) == MAX_TOKENS


def test_encode_many_gives_one_row_per_text(encoder: SentenceEncoder) -> None:
    texts = ["hello", "explain a hash map"]
    rows = encode_many(texts, encoder)
    assert rows.shape == (2, DIMENSIONS)
    for row, text in zip(rows, texts, strict=True):
        assert np.allclose(row, encoder.encode(text), atol=1e-6)


def test_the_shared_encoder_is_loaded_once() -> None:
    assert shared_encoder() is shared_encoder()


def test_missing_artifacts_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unreadable"):
        SentenceEncoder.from_artifacts(tmp_path)
