"""``stream bench judge``: the judge's quality across authors, its latency, and the tier shares.

The quality figure it leads with is the **cross-author** one, recorded when the shipped judge
was trained (``stream judge train``): for each author of the corpus, a model trained on all the
others judges that author's queries, which come from a source type never trained on too. It is
reported as the mean macro-F1 over authors with its spread, and pooled, with free-tier
retention, HIGH recall and the retention / HIGH-recall trade-off of the HIGH offset.

Then every query of a labeled file is judged live (default: the whole corpus, which the shipped
model was trained on, so those figures are in-sample and marked so), for the latency of every
judgment and the share of queries each class — so each tier — receives, beside the calibration
target (60 / 25 / 15 by default). Beside the file's own mix the shares are taken on a
*target-mix workload*: the largest seeded sample whose true classes are in the target's
proportions; there the judged shares differ from the target only by the judge's errors.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_stream.bench.stats import machine, percentiles, samples, with_progress
from langchain_stream.judge.base import Complexity
from langchain_stream.judge.evaluate import CLASS_NAMES, EvalRow, evaluate, load_jsonl, metrics
from langchain_stream.judge.heuristic import KeywordJudge
from langchain_stream.routing import TIER_ORDER

# The corpus lives beside the package in a source checkout (data/complexity, see DATASHEET.md).
DEFAULT_EVAL_FILE = Path(__file__).resolve().parents[2] / "data" / "complexity" / "corpus.jsonl"
DEFAULT_TARGET = "60,25,15"


def _shares(labels: Sequence[Complexity]) -> dict[str, float]:
    total = len(labels) or 1
    return {c: round(sum(1 for x in labels if x.value == c) / total, 4) for c in CLASS_NAMES}


def target_mix_sample(
    rows: Sequence[EvalRow], target: Mapping[str, float], seed: int = 0
) -> list[int]:
    """Indices of the largest sample of ``rows`` whose true classes follow ``target``."""
    by_class: dict[str, list[int]] = {c: [] for c in CLASS_NAMES}
    for index, row in enumerate(rows):
        by_class[row.ground_truth.value].append(index)
    size = min(len(by_class[c]) / target[c] for c in CLASS_NAMES if target[c] > 0)
    rng = random.Random(seed)
    chosen: list[int] = []
    for c in CLASS_NAMES:
        chosen += rng.sample(by_class[c], min(len(by_class[c]), round(size * target[c])))
    return sorted(chosen)


def run_judge_bench(
    *,
    eval_file: str | Path | None = None,
    judge: str | None = None,
    target: str = DEFAULT_TARGET,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Judge every labeled query once; return quality, latency samples and tier shares.

    Args:
        eval_file: labeled JSON Lines (default: the corpus's held-out split).
        judge: judge name (default: the configured one, calibrated as routing uses it).
        target: the class shares to compare with, as for ``stream judge calibrate``.
        seed: seed of the target-mix sample.
        progress: show a progress bar.
    """
    from langchain_stream.config import get_settings
    from langchain_stream.judge import resolve_judge
    from langchain_stream.judge.calibrate import parse_target

    path = Path(eval_file) if eval_file is not None else DEFAULT_EVAL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no labeled set here; pass --eval FILE")
    rows = load_jsonl(path)
    name = judge or get_settings().judge
    chosen = resolve_judge(name)
    goal = dict(zip(CLASS_NAMES, parse_target(target), strict=True))
    predicted: list[Complexity] = []
    latencies: list[float] = []
    for row in with_progress(rows, "bench judge", progress):
        started = time.perf_counter()
        judgment = chosen.judge(row.text, row.context)
        latencies.append((time.perf_counter() - started) * 1000.0)
        predicted.append(judgment.complexity)
    truth = [row.ground_truth for row in rows]
    figures = metrics(truth, predicted)
    mix = target_mix_sample(rows, goal, seed)
    keyword = evaluate(KeywordJudge(), rows)
    judge_name = getattr(chosen, "name", name)
    return {
        "bench": "judge",
        "judge": judge_name,
        "cross_author": cross_author_record() if judge_name == "trained" else None,
        "eval_file": _shown(path),
        "in_sample": path.resolve() == DEFAULT_EVAL_FILE.resolve(),
        **figures,
        "latency_ms": percentiles(latencies, 4),
        "latency_samples_ms": samples(latencies, 4),
        "keyword_baseline": {"macro_f1": round(keyword.macro_f1, 4), "accuracy": keyword.accuracy},
        "shares": {
            "target": {c: round(v, 4) for c, v in goal.items()},
            "tiers": {c.value: TIER_ORDER[c][0] for c in Complexity},
            "held_out": {"n": len(rows), "truth": _shares(truth), "judged": _shares(predicted)},
            "target_mix": {
                "n": len(mix),
                "seed": seed,
                "truth": _shares([truth[i] for i in mix]),
                "judged": _shares([predicted[i] for i in mix]),
            },
        },
        "machine": machine(),
    }


def cross_author_record() -> dict[str, Any] | None:
    """The shipped judge's cross-author figures, as its training recorded them."""
    from langchain_stream.judge.trained import ARTIFACT_DIR, META_FILE

    meta = json.loads((ARTIFACT_DIR / META_FILE).read_text(encoding="utf-8"))
    return (meta.get("training") or {}).get("cross_author")


__all__ = ["DEFAULT_EVAL_FILE", "cross_author_record", "run_judge_bench", "target_mix_sample"]


def _shown(path: Path) -> str:
    """The file as the report shows it: relative to the working directory when inside it
    (reports are committed; the machine's own layout is not of interest)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
