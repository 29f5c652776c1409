"""The judge's corpus: queries by several authors, each labeled by three labelers.

Layout (``data/complexity/`` in a source checkout; see its ``DATASHEET.md``)::

    queries/<author>.jsonl   one query a line: id, text, [context], domain, lang, source
    labels/<labeler>.tsv     one label a line: id <TAB> LOW|MEDIUM|HIGH

Each query's label is the **median** of its labelers' labels on the ordinal scale
LOW < MEDIUM < HIGH (with three labelers it always exists, and it is the majority whenever
two agree). How much they disagreed is kept with it.

Generalisation is measured across authors: :func:`leave_one_author_out` yields splits that
train on every author but one and test on the one left out. Each author wrote one source
type (forum posts, exam items, ...), so the test side is also a source type never trained on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_stream.judge.base import Complexity
from langchain_stream.judge.evaluate import EvalRow

ORDER: tuple[str, ...] = ("LOW", "MEDIUM", "HIGH")
DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "complexity"


@dataclass(frozen=True)
class CorpusItem:
    """One query with its labels."""

    id: str
    author: str
    source: str
    text: str
    context: tuple[str, ...]
    domain: str
    lang: str
    labels: dict[str, str]
    """Labeler name → that labeler's label."""

    @property
    def label(self) -> str:
        """The adjudicated label: the median of the labels on LOW < MEDIUM < HIGH."""
        ranks = sorted(ORDER.index(v) for v in self.labels.values())
        return ORDER[ranks[(len(ranks) - 1) // 2]]

    @property
    def disagreement(self) -> int:
        """How far apart the labels are: 0 (all agree), 1 (adjacent classes), 2 (LOW vs HIGH)."""
        ranks = [ORDER.index(v) for v in self.labels.values()]
        return max(ranks) - min(ranks)

    def to_row(self) -> EvalRow:
        """The item as an evaluation row."""
        return EvalRow(self.text, Complexity(self.label), self.context)


def read_labels(path: Path) -> dict[str, str]:
    """One labeler's file: ``id<TAB>LABEL`` lines.

    Raises:
        ValueError: a line is malformed, has an unknown label, or repeats an id.
    """
    labels: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("\t")
        if len(parts) != 2 or parts[1].strip().upper() not in ORDER:
            raise ValueError(f"{path}:{lineno}: expected 'id<TAB>LOW|MEDIUM|HIGH'")
        item_id, label = parts[0].strip(), parts[1].strip().upper()
        if item_id in labels:
            raise ValueError(f"{path}:{lineno}: id {item_id!r} labeled twice")
        labels[item_id] = label
    return labels


def load_corpus(data_dir: Path = DATA_DIR, *, min_labels: int = 3) -> list[CorpusItem]:
    """Every query that has at least ``min_labels`` labels, in file order.

    Raises:
        ValueError: a file is malformed, or a label names an id no query has.
    """
    labelers = {p.stem: read_labels(p) for p in sorted((data_dir / "labels").glob("*.tsv"))}
    items: list[CorpusItem] = []
    known: set[str] = set()
    for path in sorted((data_dir / "queries").glob("*.jsonl")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON") from exc
            item_id = str(obj["id"])
            known.add(item_id)
            labels = {name: got[item_id] for name, got in labelers.items() if item_id in got}
            if len(labels) < min_labels:
                continue
            items.append(
                CorpusItem(
                    id=item_id,
                    author=str(obj.get("author", path.stem)),
                    source=str(obj.get("source", path.stem)),
                    text=str(obj["text"]),
                    context=tuple(str(c) for c in obj.get("context") or ()),
                    domain=str(obj.get("domain", "")),
                    lang=str(obj.get("lang", "")),
                    labels=labels,
                )
            )
    for name, got in labelers.items():
        unknown = set(got) - known
        if unknown:
            raise ValueError(f"labels/{name}.tsv labels unknown ids, e.g. {sorted(unknown)[0]!r}")
    return items


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's κ of two labelers over the same items: (p_o − p_e) / (1 − p_e).

    Returns 1.0 when both always use one and the same class (no chance correction possible).
    """
    if len(a) != len(b) or not a:
        raise ValueError("kappa needs two label sequences of the same, non-zero length")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[c] * count_b[c] for c in set(a) | set(b)) / (n * n)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def kappa_table(items: Sequence[CorpusItem]) -> dict[str, dict[str, float]]:
    """Pairwise Cohen's κ for every pair of labelers: overall and one class against the rest."""
    names = sorted({name for item in items for name in item.labels})
    table: dict[str, dict[str, float]] = {}
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            both = [it for it in items if first in it.labels and second in it.labels]
            if not both:
                continue
            a = [it.labels[first] for it in both]
            b = [it.labels[second] for it in both]
            row = {"all": cohen_kappa(a, b), "n": float(len(both))}
            for cls in ORDER:
                row[cls] = cohen_kappa([x == cls for x in a], [y == cls for y in b])  # type: ignore[misc]
            table[f"{first}-{second}"] = row
    return table


def leave_one_author_out(
    items: Sequence[CorpusItem],
) -> Iterator[tuple[str, list[CorpusItem], list[CorpusItem]]]:
    """``(author, train, test)`` for each author: the test side is that author alone.

    Raises:
        AssertionError: an author's query ended up on both sides (never, by construction;
            checked because the whole figure rests on it).
    """
    for author in sorted({it.author for it in items}):
        train = [it for it in items if it.author != author]
        test = [it for it in items if it.author == author]
        assert not {it.author for it in train} & {it.author for it in test}
        yield author, train, test


__all__ = [
    "CorpusItem",
    "cohen_kappa",
    "kappa_table",
    "leave_one_author_out",
    "load_corpus",
    "read_labels",
]
