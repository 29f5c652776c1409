"""Training reproduces its artifacts from a corpus (needs scikit-learn, a training-time extra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_stream.judge.base import Complexity
from langchain_stream.judge.trained import FeatureConfig, TrainedJudge

pytest.importorskip("sklearn")

from langchain_stream.judge.train import train

ROWS = {
    "LOW": ["What is the capital of {}?", "Who wrote the book about {}?", "Define {}."],
    "MEDIUM": ["Explain how {} works.", "Compare {} and its rivals.", "How do I set up {}?"],
    "HIGH": [
        "Design a fault-tolerant system for {} under a tight budget and justify the trade-offs.",
        "Prove that {} has no closed form in general and derive a bound.",
        "Our {} keeps failing only at night; diagnose what is going on.",
    ],
}
TOPICS = ["Peru", "entropy", "a heat pump", "Slurm", "the Krebs cycle", "git", "inflation"]


def _write(path: Path, topics: list[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for label, patterns in ROWS.items():
            for pattern in patterns:
                for topic in topics:
                    fh.write(json.dumps({"text": pattern.format(topic), "ground_truth": label}))
                    fh.write("\n")
        fh.write(
            json.dumps({"text": "why?", "ground_truth": "MEDIUM", "context": ["What is DNS?"]})
            + "\n"
        )


def test_train_writes_reproducible_artifacts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "train.jsonl", TOPICS[:5])
    _write(data / "dev.jsonl", TOPICS[5:])
    config = FeatureConfig(n_bits=12, families=("word", "struct", "hand"))

    first = train(data, tmp_path / "a", seed=1, config=config)
    second = train(data, tmp_path / "b", seed=1, config=config)

    assert first["C"] == second["C"]
    assert first["n_train"] == 5 * 9 + 1
    assert (tmp_path / "a" / "trained.npz").read_bytes() == (
        tmp_path / "b" / "trained.npz"
    ).read_bytes()
    meta = json.loads((tmp_path / "a" / "trained.json").read_text())
    assert meta["features"]["n_bits"] == 12
    judge = TrainedJudge(tmp_path / "a")
    assert judge.judge("What is the capital of Chile?").complexity == Complexity.LOW
    assert (
        judge.judge("Design a fault-tolerant system for payroll under a tight budget.").complexity
        == Complexity.HIGH
    )
