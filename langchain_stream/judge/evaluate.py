"""Evaluate a complexity judge on a labeled JSON Lines file, beside simple baselines.

The file format is the rubric's: one object per line with ``text`` and ``ground_truth``
(``LOW``/``MEDIUM``/``HIGH``); an optional ``context`` (list of previous turns, most recent
last) is passed to the judge; any other field is ignored.

Figures: accuracy, macro-F1, per-class precision/recall/F1, free-tier retention (the share of
LOW and MEDIUM queries *not* sent to HIGH), the confusion matrix, and wall-clock latency
percentiles. Baselines, evaluated the same way: always-MEDIUM, uniform random (seeded), and
the keyword heuristic.

Run as ``python -m langchain_stream.judge.evaluate FILE.jsonl [--judge NAME] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from langchain_stream.judge.base import Complexity, ComplexityJudge, Judgment
from langchain_stream.judge.calibrate import CalibratedJudge, read_query_lines
from langchain_stream.judge.heuristic import KeywordJudge

CLASS_NAMES: tuple[str, ...] = tuple(c.value for c in Complexity)


@dataclass(frozen=True)
class EvalRow:
    """One labeled query."""

    text: str
    ground_truth: Complexity
    context: tuple[str, ...] = ()


def load_jsonl(path: str | Path) -> list[EvalRow]:
    """Read a labeled JSON Lines file (blank lines are skipped).

    Raises:
        ValueError: a line is not JSON, lacks ``text``/``ground_truth``, or has an unknown label;
            the message names the line.
    """
    rows: list[EvalRow] = []
    for query in read_query_lines(path):
        label = str(query.fields.get("ground_truth", "")).strip().upper()
        if label not in CLASS_NAMES:
            raise ValueError(f"{path}:{query.lineno}: ground_truth must be one of {CLASS_NAMES}")
        rows.append(EvalRow(query.text, Complexity(label), query.context))
    return rows


@dataclass
class EvalReport:
    """Figures for one judge on one labeled set."""

    judge: str
    n: int
    accuracy: float
    macro_f1: float
    precision: dict[str, float]
    recall: dict[str, float]
    f1: dict[str, float]
    support: dict[str, int]
    free_tier_retention: float | None
    confusion: dict[str, dict[str, int]]
    """``confusion[true][predicted]`` counts."""
    latency_ms: dict[str, float]
    """``p50``, ``p95``, ``p99``, ``mean`` and ``max`` of wall time per judgment."""
    baselines: list[EvalReport] = field(default_factory=list)
    offsets: dict[str, float] | None = None
    """The calibration offsets per class the judge applied, or ``None`` for a raw judge."""

    @property
    def label(self) -> str:
        """The judge's name, marked when it was evaluated calibrated."""
        return self.judge if self.offsets is None else f"{self.judge} (calibrated)"

    def to_dict(self) -> dict:
        """A plain dict, with baselines (if any) nested under ``"baselines"``."""
        out = {
            "judge": self.judge,
            "calibrated": self.offsets is not None,
            "offsets": self.offsets,
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
            "free_tier_retention": self.free_tier_retention,
            "confusion": self.confusion,
            "latency_ms": self.latency_ms,
        }
        if self.baselines:
            out["baselines"] = {b.judge: b.to_dict() for b in self.baselines}
        return out

    def to_json(self) -> str:
        """One-line JSON object: ``n``, ``accuracy``, ``macro_f1``, ``recall``,
        ``free_tier_retention``, ``latency_ms`` and the rest of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def format(self) -> str:
        """A human-readable summary with the confusion matrix."""
        ftr = "n/a" if self.free_tier_retention is None else f"{self.free_tier_retention:.3f}"
        lines = [
            f"judge {self.label}: n={self.n}  accuracy={self.accuracy:.3f}  "
            f"macro-F1={self.macro_f1:.3f}  free-tier retention={ftr}",
        ]
        if self.offsets is not None:
            lines.append(
                "  offsets: " + "  ".join(f"{c}={self.offsets[c]:+.3f}" for c in CLASS_NAMES)
            )
        lines += [
            f"  latency ms: p50={self.latency_ms['p50']:.3f}  p95={self.latency_ms['p95']:.3f}  "
            f"p99={self.latency_ms['p99']:.3f}",
            "  class    precision  recall  f1     support",
        ]
        for c in CLASS_NAMES:
            lines.append(
                f"  {c:<8} {self.precision[c]:>9.3f}  {self.recall[c]:>6.3f}  "
                f"{self.f1[c]:.3f}  {self.support[c]:>7}"
            )
        lines.append("  confusion (rows = truth, cols = predicted): " + " ".join(CLASS_NAMES))
        for t in CLASS_NAMES:
            lines.append(f"  {t:<8} " + " ".join(f"{self.confusion[t][p]:>6}" for p in CLASS_NAMES))
        return "\n".join(lines)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    arr = np.asarray(values, dtype=np.float64)
    # Linear interpolation between order statistics (numpy's default definition).
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(arr.mean()),
        "max": float(arr.max()),
    }


def metrics(truth: Sequence[Complexity], predicted: Sequence[Complexity]) -> dict[str, object]:
    """Accuracy, macro-F1, per-class figures, free-tier retention and the confusion matrix.

    Macro-F1 averages the F1 of the classes present in the truth or the predictions;
    precision (recall) of a class never predicted (never present) is 0. Free-tier retention is
    ``None`` when there are no LOW or MEDIUM queries.
    """
    if len(truth) != len(predicted):
        raise ValueError("truth and predictions differ in length")
    confusion = {t: dict.fromkeys(CLASS_NAMES, 0) for t in CLASS_NAMES}
    for t, p in zip(truth, predicted, strict=True):
        confusion[Complexity(t).value][Complexity(p).value] += 1
    n = len(truth)
    correct = sum(confusion[c][c] for c in CLASS_NAMES)
    precision, recall, f1, support = {}, {}, {}, {}
    present = []
    for c in CLASS_NAMES:
        tp = confusion[c][c]
        n_pred = sum(confusion[t][c] for t in CLASS_NAMES)
        n_true = sum(confusion[c].values())
        precision[c] = tp / n_pred if n_pred else 0.0
        recall[c] = tp / n_true if n_true else 0.0
        denom = precision[c] + recall[c]
        f1[c] = 2 * precision[c] * recall[c] / denom if denom else 0.0
        support[c] = n_true
        if n_pred or n_true:
            present.append(c)
    free = ("LOW", "MEDIUM")
    n_free = sum(support[c] for c in free)
    kept = sum(confusion[c][p] for c in free for p in free)
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "macro_f1": sum(f1[c] for c in present) / len(present) if present else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "free_tier_retention": kept / n_free if n_free else None,
        "confusion": confusion,
    }


def evaluate(
    judge: ComplexityJudge,
    rows: Iterable[EvalRow],
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> EvalReport:
    """Run ``judge`` on every row and compute the figures.

    Args:
        judge: any :class:`ComplexityJudge`.
        rows: labeled queries, e.g. from :func:`load_jsonl`.
        clock: seconds counter used to time each call (injectable for tests).
    """
    truth: list[Complexity] = []
    predicted: list[Complexity] = []
    latencies: list[float] = []
    for row in rows:
        start = clock()
        judgment = judge.judge(row.text, row.context)
        latencies.append((clock() - start) * 1000.0)
        truth.append(row.ground_truth)
        predicted.append(judgment.complexity)
    offsets = None
    if isinstance(judge, CalibratedJudge):
        offsets = {c: round(float(v), 6) for c, v in zip(CLASS_NAMES, judge.offsets, strict=True)}
    return EvalReport(
        judge=getattr(judge, "name", type(judge).__name__),
        latency_ms=_percentiles(latencies),
        offsets=offsets,
        **metrics(truth, predicted),  # type: ignore[arg-type]
    )


class AlwaysMediumJudge:
    """Baseline: everything goes to the middle tier."""

    name = "always-medium"

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        """Always MEDIUM."""
        return Judgment(
            complexity=Complexity.MEDIUM,
            scores={Complexity.LOW: 0.0, Complexity.MEDIUM: 1.0, Complexity.HIGH: 0.0},
            judge=self.name,
        )


class RandomJudge:
    """Baseline: a uniformly random class from a seeded generator."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        """A random class; the sequence of answers is fixed by the seed."""
        choice = self._rng.choice(list(Complexity))
        return Judgment(
            complexity=choice,
            scores={c: 1.0 / 3.0 for c in Complexity},
            judge=self.name,
        )


def baseline_judges(seed: int = 0) -> list[ComplexityJudge]:
    """The baselines shown beside every evaluation: always-MEDIUM, random, keyword."""
    return [AlwaysMediumJudge(), RandomJudge(seed), KeywordJudge()]


def evaluate_with_baselines(
    judge: ComplexityJudge, rows: Sequence[EvalRow], *, seed: int = 0
) -> EvalReport:
    """Evaluate ``judge`` and the baselines on the same rows; baselines go in ``.baselines``."""
    report = evaluate(judge, rows)
    report.baselines = [evaluate(b, rows) for b in baseline_judges(seed) if b.name != report.judge]
    return report


def format_comparison(report: EvalReport) -> str:
    """The judge's full report followed by a one-line-per-judge comparison table."""
    reports = [report, *report.baselines]
    width = max(15, *(len(r.label) for r in reports))
    lines = [
        report.format(),
        "",
        f"{'judge':<{width}} macro-F1  accuracy  rec-L  rec-M  rec-H  free-tier  p50 ms  p99 ms",
    ]
    for r in reports:
        ftr = "   n/a" if r.free_tier_retention is None else f"{r.free_tier_retention:6.3f}"
        lines.append(
            f"{r.label:<{width}} {r.macro_f1:8.3f}  {r.accuracy:8.3f}  {r.recall['LOW']:.3f}  "
            f"{r.recall['MEDIUM']:.3f}  {r.recall['HIGH']:.3f}     {ftr}  "
            f"{r.latency_ms['p50']:6.3f}  {r.latency_ms['p99']:6.3f}"
        )
    return "\n".join(lines)


def _make_judge(name: str) -> ComplexityJudge:
    if name == "trained":
        from langchain_stream.judge.trained import TrainedJudge, warm_up

        warm_up()
        return TrainedJudge()
    for b in baseline_judges():
        if b.name == name:
            return b
    from langchain_stream.judge import resolve_judge

    return resolve_judge(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: print the report; with ``--json`` the last line is the JSON object."""
    ap = argparse.ArgumentParser(prog="python -m langchain_stream.judge.evaluate")
    ap.add_argument("file", type=Path)
    ap.add_argument("--judge", default="trained")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = load_jsonl(args.file)
    report = evaluate_with_baselines(_make_judge(args.judge), rows, seed=args.seed)
    print(format_comparison(report))
    if args.json:
        print(report.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
