"""Build ``corpus.jsonl`` and ``stats.json`` from ``queries/`` and ``labels/`` (see DATASHEET.md).

Every query with three labels gets its adjudicated label (the median of the three on
LOW < MEDIUM < HIGH) and its disagreement; ``stats.json`` holds the counts by author, source
type, class and language, and Cohen's κ for every pair of labelers, overall and per class.
The same files give the same output.

Usage::

    python data/complexity/build_corpus.py
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from langchain_stream.judge.corpus import kappa_table, load_corpus

HERE = Path(__file__).resolve().parent


def main() -> None:
    items = load_corpus(HERE)
    with (HERE / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for item in items:
            row = {
                "id": item.id,
                "text": item.text,
                "ground_truth": item.label,
                **({"context": list(item.context)} if item.context else {}),
                "author": item.author,
                "source": item.source,
                "domain": item.domain,
                "lang": item.lang,
                "labels": item.labels,
                "disagreement": item.disagreement,
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    stats = {
        "n": len(items),
        "by_author": _by(items, lambda i: i.author),
        "by_source": _by(items, lambda i: i.source),
        "by_class": dict(Counter(i.label for i in items)),
        "by_lang": dict(Counter(i.lang or "?" for i in items).most_common()),
        "by_domain": dict(Counter(i.domain or "?" for i in items).most_common()),
        "disagreement": dict(Counter(i.disagreement for i in items)),
        "kappa": {
            pair: {k: round(v, 3) for k, v in row.items()}
            for pair, row in kappa_table(items).items()
        },
    }
    (HERE / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: stats[k] for k in ("n", "by_class", "kappa")}, indent=2))


def _by(items, key) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for item in items:
        table.setdefault(key(item), Counter())[item.label] += 1
    return {k: {**dict(v), "total": sum(v.values())} for k, v in sorted(table.items())}


if __name__ == "__main__":
    main()
