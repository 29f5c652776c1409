"""Side-by-side judges, each trained and scored leave-one-author-out on the corpus.

Needs the ``train`` extra (scikit-learn) and llama-cpp-python. The default judge itself (hashed
features and the encoder's vector together) is measured by ``stream judge train``, which records
its figures in ``trained.json``. The previous default judge's
artifacts are read from ``--previous`` (the files as they were before this corpus:
``git show e2b70d1:langchain_stream/judge/artifacts/trained.npz > DIR/trained.npz``, and the same
for ``trained.json``); without it that row is left out. Writes a JSON report (``--out``).

Usage::

    python data/complexity/compare_judges.py [--previous DIR] [--out compare.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from langchain_stream.judge.corpus import load_corpus
from langchain_stream.judge.encoder import SentenceEncoder, encode_many
from langchain_stream.judge.evaluate import CLASS_NAMES, metrics
from langchain_stream.judge.heuristic import KeywordJudge
from langchain_stream.judge.train import calibrate_high, hashed_matrix
from langchain_stream.judge.trained import CLASSES, FeatureConfig, TrainedJudge, clean_text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--previous", default=None)
    ap.add_argument("--out", default="compare.json")
    args = ap.parse_args()
    items = load_corpus()
    authors = np.array([it.author for it in items])
    y = np.array([CLASS_NAMES.index(it.label) for it in items])
    texts = [clean_text(it.text) for it in items]
    out: dict[str, Any] = {}

    def figures(pred: np.ndarray) -> dict[str, float]:
        per = []
        for a in sorted(set(authors)):
            m = authors == a
            truth, judged = [CLASSES[i] for i in y[m]], [CLASSES[i] for i in pred[m]]
            per.append(metrics(truth, judged)["macro_f1"])
        f = metrics([CLASSES[i] for i in y], [CLASSES[i] for i in pred])
        return {
            "macro_f1_mean": round(float(np.mean(per)), 4),
            "macro_f1_std": round(float(np.std(per)), 4),
            "macro_f1_min": round(float(np.min(per)), 4),
            "pooled_macro_f1": round(f["macro_f1"], 4),
            "free_tier_retention": round(f["free_tier_retention"], 4),
            "high_recall": round(f["recall"]["HIGH"], 4),
        }

    def loao(x: Any, c: float) -> np.ndarray:
        logits = np.zeros((len(y), 3))
        for a in sorted(set(authors)):
            tr, te = authors != a, authors == a
            clf = LogisticRegression(C=c, max_iter=3000, random_state=0).fit(x[tr], y[tr])
            logits[te] = clf.decision_function(x[te])
        return logits

    def report(name: str, logits: np.ndarray, latency: Any = None, calibrate: bool = True) -> None:
        row: dict[str, Any] = {"uncalibrated": figures(logits.argmax(1))}
        if calibrate:
            offset, _ = calibrate_high(y, logits)
            row["calibrated"] = figures((logits + np.array([0, 0, offset])).argmax(1))
            row["high_offset"] = offset
        if latency:
            row["latency_ms"] = latency
        out[name] = row
        print(name, json.dumps(row), flush=True)

    def lat(fn: Callable[[str], Any], sample: int = 400) -> dict[str, float]:
        times = []
        for text in texts[:: max(1, len(texts) // sample)][:sample]:
            started = time.perf_counter()
            fn(text)
            times.append((time.perf_counter() - started) * 1000)
        return {
            "p50": round(float(np.percentile(times, 50)), 3),
            "p99": round(float(np.percentile(times, 99)), 3),
        }

    def one_hot(judge: Any) -> np.ndarray:
        labels = [judge.judge(it.text, it.context).complexity.value for it in items]
        return np.eye(3)[[CLASS_NAMES.index(v) for v in labels]]

    if args.previous:  # trained on the earlier one-author corpus: never saw these authors
        old = TrainedJudge(args.previous)
        report("previous default (one-author corpus)", one_hot(old), lat(old.judge), False)
    keyword = KeywordJudge()
    report("keyword", one_hot(keyword), lat(keyword.judge), calibrate=False)
    lengths = np.array([len(t) for t in texts], float)
    by_length = np.zeros(len(y), int)
    for a in sorted(set(authors)):  # terciles of the training authors' lengths
        tr, te = authors != a, authors == a
        by_length[te] = np.digitize(lengths[te], np.quantile(lengths[tr], [1 / 3, 2 / 3]))
    report("length terciles", np.eye(3)[by_length], calibrate=False)
    hashed = hashed_matrix(texts, FeatureConfig())
    report("hashed linear (retrained)", loao(hashed, 1.0))
    enc3, enc6 = SentenceEncoder.from_package(layers=3), SentenceEncoder.from_package()
    e3, e6 = encode_many(texts, enc3), encode_many(texts, enc6)
    report("MiniLM-L6, 6 layers + logistic head", loao(e6, 4.0), lat(enc6.encode))
    report("MiniLM-L6, first 3 layers + logistic head", loao(e3, 4.0), lat(enc3.encode))
    smollm = _smollm_embedder()
    es = np.stack([smollm(t) for t in texts])
    report("SmolLM2-135M mean hidden state + logistic head", loao(es, 4.0), lat(smollm, 200))
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)


def _smollm_embedder() -> Callable[[str], np.ndarray]:
    """Features from the embedded model: the mean of SmolLM2-135M's last hidden states."""
    from llama_cpp import Llama

    from langchain_stream.llama.extra_buffers import model_params
    from langchain_stream.tiers.embedded import embedded_model_path

    with model_params(extra_buffers=False):
        llm = Llama(
            model_path=str(embedded_model_path()),
            embedding=True,
            n_ctx=512,
            verbose=False,
            pooling_type=1,
        )

    def embed(text: str) -> np.ndarray:
        v = np.asarray(llm.embed(text[:1500]), dtype=np.float32)
        return v / (np.linalg.norm(v) + 1e-9)

    return embed


if __name__ == "__main__":
    main()
