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


def _write_corpus(root: Path) -> None:
    """Three authors, each writing the patterns about their own topics; three labelers agree."""
    (root / "queries").mkdir(parents=True)
    (root / "labels").mkdir()
    labels: list[str] = []
    for a, author in enumerate(("a1", "a2", "a3")):
        rows = []
        for label, patterns in ROWS.items():
            for pattern in patterns:
                for topic in TOPICS[a * 2 : a * 2 + 3]:
                    item_id = f"{author}-{len(rows)}"
                    rows.append({"id": item_id, "text": pattern.format(topic)})
                    labels.append(f"{item_id}\t{label}")
        item_id = f"{author}-{len(rows)}"
        rows.append({"id": item_id, "text": "why?", "context": ["What is DNS?", "A lookup."]})
        labels.append(f"{item_id}\tMEDIUM")
        text = "\n".join(json.dumps(r) for r in rows) + "\n"
        (root / "queries" / f"{author}.jsonl").write_text(text, encoding="utf-8")
    for labeler in ("L1", "L2", "L3"):
        (root / "labels" / f"{labeler}.tsv").write_text("\n".join(labels) + "\n")


@pytest.mark.parametrize("scale", [0.0, 3.0], ids=["hashed", "hashed+encoder"])
def test_train_writes_reproducible_artifacts(tmp_path: Path, scale: float) -> None:
    data = tmp_path / "data"
    _write_corpus(data)
    config = FeatureConfig(n_bits=12, families=("word", "struct", "hand"))

    first = train(data, tmp_path / "a", seed=1, config=config, scale=scale)
    train(data, tmp_path / "b", seed=1, config=config, scale=scale)

    assert first["n_items"] == 3 * (9 * 3 + 1)
    assert first["authors"] == ["a1", "a2", "a3"]
    assert set(first["cross_author"]["calibrated"]["per_author"]) == {"a1", "a2", "a3"}
    assert first["cross_author"]["tradeoff_curve"]
    assert (tmp_path / "a" / "trained.npz").read_bytes() == (
        tmp_path / "b" / "trained.npz"
    ).read_bytes()
    meta = json.loads((tmp_path / "a" / "trained.json").read_text())
    assert meta["features"]["n_bits"] == 12
    assert (meta["training"]["encoder"] is None) == (scale == 0.0)
    judge = TrainedJudge(tmp_path / "a")
    assert judge.model.dense_weights is None or judge.model.dense_weights.shape == (384, 3)
    assert judge.judge("What is the capital of Chile?").complexity == Complexity.LOW
    assert (
        judge.judge("Design a fault-tolerant system for payroll under a tight budget.").complexity
        == Complexity.HIGH
    )


def test_high_offset_keeps_retention_at_the_target() -> None:
    import numpy as np

    from langchain_stream.judge.train import calibrate_high

    # Two LOW, two MEDIUM, two HIGH; the HIGH logit is a little low for the last HIGH item.
    y = np.array([0, 0, 1, 1, 2, 2])
    logits = np.array(
        [[2, 0, 0], [2, 0, 1.5], [0, 2, 0], [0, 2, 1.0], [0, 0, 2], [0, 1.0, 0.5]], float
    )
    offset, curve = calibrate_high(y, logits, target=0.75)
    point = next(p for p in curve if p["high_offset"] == offset)
    assert point["free_tier_retention"] >= 0.75
    assert point["high_recall"] == 1.0  # the raised HIGH logit recovers the last item
    # A stricter target keeps every free item off HIGH, at the cost of HIGH recall.
    strict, _ = calibrate_high(y, logits, target=1.0)
    assert strict < offset
