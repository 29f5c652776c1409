"""``stream bench privacy``: how much sensitive data the privacy check finds, and how often it
flags ordinary queries.

Each request goes through the router's own check: the payload the cloud tier would send
(:func:`~langchain_stream.policies.payload.cloud_payload`), every string in it, and the
detector. Two sets are measured:

- **recall** on the labeled variant set (``privacy_variants.json``, built by
  ``data/privacy/build_variants.py``): a positive is found when its kind is among the kinds
  detected; per kind and per obfuscation class;
- **false-positive rate** on ordinary queries: every query of the judge corpus
  (``data/complexity/*.jsonl``, follow-ups with their earlier turns), and a small hand-written
  set of hard negatives (numbers, hashes, dates that look a little like sensitive data).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages

from langchain_stream.bench.stats import machine, percentiles
from langchain_stream.policies.payload import cloud_payload, payload_content
from langchain_stream.policies.privacy import SensitiveDataDetector

VARIANTS_FILE = Path(__file__).with_name("privacy_variants.json")
# The judge corpus lives beside the package in a source checkout (data/complexity).
ORDINARY_DIR = Path(__file__).resolve().parents[2] / "data" / "complexity"


def _messages(request: dict[str, Any]) -> list[BaseMessage]:
    return convert_to_messages(request["messages"])


def _kwargs(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != "messages"}


def _scan(detector: SensitiveDataDetector, request: dict[str, Any]) -> tuple[list[str], float]:
    started = time.perf_counter()
    content = payload_content(cloud_payload(_messages(request), _kwargs(request)))
    kinds = detector.kinds(content.texts, flow=content.flow)
    return kinds, (time.perf_counter() - started) * 1e6


def load_ordinary(directory: Path) -> list[dict[str, Any]]:
    """Every query of the corpus as a request: earlier turns first, then the query."""
    requests = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            turns = [*row.get("context", []), row["text"]]
            roles = ["user" if (len(turns) - i) % 2 else "assistant" for i in range(len(turns))]
            requests.append(
                {"messages": [{"role": r, "content": t} for r, t in zip(roles, turns, strict=True)]}
            )
    return requests


def _rate(hits: int, total: int) -> float:
    return round(hits / total, 4) if total else 0.0


def run_privacy_bench(
    *,
    variants_file: Path | None = None,
    ordinary_dir: Path | None = None,
    detector: SensitiveDataDetector | None = None,
) -> dict[str, Any]:
    """Recall per kind and per obfuscation class, and the false-positive rates."""
    detector = detector or SensitiveDataDetector()
    data = json.loads((variants_file or VARIANTS_FILE).read_text())
    positives: Sequence[dict[str, Any]] = data["positives"]
    found_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    found_by_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    missed: list[dict[str, str]] = []
    latencies: list[float] = []
    for variant in positives:
        kinds, micros = _scan(detector, variant["request"])
        latencies.append(micros)
        hit = variant["kind"] in kinds
        for table, key in (
            (found_by_kind, variant["kind"]),
            (found_by_class, variant["obfuscation"]),
        ):
            table[key][0] += hit
            table[key][1] += 1
        if not hit:
            missed.append({"kind": variant["kind"], "obfuscation": variant["obfuscation"]})

    ordinary = load_ordinary(ordinary_dir or ORDINARY_DIR)
    flagged: Counter[str] = Counter()
    flagged_queries = 0
    ordinary_latencies: list[float] = []
    for request in ordinary:
        kinds, micros = _scan(detector, request)
        ordinary_latencies.append(micros)
        flagged_queries += bool(kinds)
        flagged.update(kinds)
    hard = [
        _scan(detector, {"messages": [{"role": "user", "content": t}]})[0]
        for t in data["hard_negatives"]
    ]
    hard_flagged = sum(bool(k) for k in hard)

    total_found = sum(v[0] for v in found_by_kind.values())
    return {
        "bench": "privacy",
        "machine": machine(),
        "positives": len(positives),
        "obfuscation_classes": len(found_by_class),
        "recall": _rate(total_found, len(positives)),
        "recall_per_kind": {k: _rate(*v) for k, v in sorted(found_by_kind.items())},
        "recall_per_class": {k: _rate(*v) for k, v in sorted(found_by_class.items())},
        "missed": [f"{m['kind']}/{m['obfuscation']}" for m in missed],
        "ordinary_queries": len(ordinary),
        "false_positive_rate": _rate(flagged_queries, len(ordinary)),
        "false_positives_per_kind": dict(sorted(flagged.items())),
        "hard_negatives": len(hard),
        "hard_negative_false_positive_rate": _rate(hard_flagged, len(hard)),
        "scan_us": {
            "variants": percentiles(latencies),
            "ordinary": percentiles(ordinary_latencies),
        },
    }
