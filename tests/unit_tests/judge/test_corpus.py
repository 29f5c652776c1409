"""The corpus loader, the adjudicated label, Cohen's κ and the cross-author split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_stream.judge.corpus import (
    CorpusItem,
    cohen_kappa,
    kappa_table,
    leave_one_author_out,
    load_corpus,
    read_labels,
)


def _item(author: str, labels: dict[str, str], n: int = 0) -> CorpusItem:
    return CorpusItem(
        id=f"{author}-{n}",
        author=author,
        source="forum",
        text=f"query {n}",
        context=(),
        domain="math",
        lang="en",
        labels=labels,
    )


def test_kappa_matches_a_hand_computed_value() -> None:
    # 10 items. Agreement on 7 -> p_o = 0.7. Marginals: a = L4 M3 H3, b = L3 M4 H3.
    # p_e = (4*3 + 3*4 + 3*3) / 100 = 0.33, so kappa = (0.7 - 0.33) / 0.67 = 0.5522...
    a = ["L", "L", "L", "L", "M", "M", "M", "H", "H", "H"]
    b = ["L", "L", "L", "M", "M", "M", "H", "H", "H", "M"]
    assert cohen_kappa(a, b) == pytest.approx(0.37 / 0.67)


def test_kappa_edge_cases() -> None:
    assert cohen_kappa(["L", "M"], ["L", "M"]) == pytest.approx(1.0)
    assert cohen_kappa(["L", "L"], ["L", "L"]) == 1.0  # one class only: no chance correction
    # Always opposite on two classes used equally: p_o = 0, p_e = 0.5 -> -1.
    assert cohen_kappa(["L", "M"], ["M", "L"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same, non-zero length"):
        cohen_kappa(["L"], ["L", "M"])


def test_adjudicated_label_is_the_median_and_disagreement_the_spread() -> None:
    assert _item("a", {"x": "LOW", "y": "HIGH", "z": "HIGH"}).label == "HIGH"
    assert _item("a", {"x": "LOW", "y": "MEDIUM", "z": "HIGH"}).label == "MEDIUM"
    assert _item("a", {"x": "LOW", "y": "LOW", "z": "MEDIUM"}).label == "LOW"
    assert _item("a", {"x": "LOW", "y": "MEDIUM", "z": "HIGH"}).disagreement == 2
    assert _item("a", {"x": "MEDIUM", "y": "MEDIUM", "z": "MEDIUM"}).disagreement == 0


def test_kappa_table_per_class_one_against_the_rest() -> None:
    items = [
        _item("a", {"x": "LOW", "y": "LOW"}, 0),
        _item("a", {"x": "LOW", "y": "MEDIUM"}, 1),
        _item("a", {"x": "HIGH", "y": "HIGH"}, 2),
        _item("a", {"x": "MEDIUM", "y": "MEDIUM"}, 3),
    ]
    row = kappa_table(items)["x-y"]
    assert row["n"] == 4
    # HIGH against the rest: perfect agreement.
    assert row["HIGH"] == pytest.approx(1.0)
    # LOW against the rest: x = [T, T, F, F], y = [T, F, F, F]: p_o = 0.75,
    # p_e = (2*1 + 2*3) / 16 = 0.5 -> 0.5.
    assert row["LOW"] == pytest.approx(0.5)


def test_leave_one_author_out_never_mixes_an_author() -> None:
    items = [_item(a, {"x": "LOW"}, n) for a in ("a1", "a2", "a3") for n in range(4)]
    splits = list(leave_one_author_out(items))
    assert [author for author, _, _ in splits] == ["a1", "a2", "a3"]
    for author, train, test in splits:
        assert {it.author for it in test} == {author}
        assert author not in {it.author for it in train}
        assert len(train) + len(test) == len(items)


def test_load_corpus_reads_queries_and_labels(tmp_path: Path) -> None:
    (tmp_path / "queries").mkdir()
    (tmp_path / "labels").mkdir()
    rows = [
        {"id": "a1-0", "author": "a1", "source": "forum", "text": "Define entropy", "lang": "en"},
        {"id": "a1-1", "author": "a1", "source": "forum", "text": "why?", "context": ["Q", "A"]},
        {"id": "a1-2", "author": "a1", "source": "forum", "text": "only two labels"},
    ]
    (tmp_path / "queries" / "a1.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "labels" / "L1.tsv").write_text("a1-0\tLOW\na1-1\tHIGH\na1-2\tLOW\n")
    (tmp_path / "labels" / "L2.tsv").write_text("a1-0\tLOW\na1-1\tMEDIUM\na1-2\tLOW\n")
    (tmp_path / "labels" / "L3.tsv").write_text("a1-0\tMEDIUM\na1-1\tMEDIUM\n")
    items = load_corpus(tmp_path)
    assert [it.id for it in items] == ["a1-0", "a1-1"]  # a1-2 has two labels only
    assert [it.label for it in items] == ["LOW", "MEDIUM"]
    assert items[1].context == ("Q", "A")
    assert items[1].to_row().ground_truth.value == "MEDIUM"


def test_bad_label_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "L9.tsv"
    bad.write_text("a1-0\tSOMETIMES\n")
    with pytest.raises(ValueError, match=r"L9\.tsv:1"):
        read_labels(bad)
    bad.write_text("a1-0\tLOW\na1-0\tHIGH\n")
    with pytest.raises(ValueError, match="labeled twice"):
        read_labels(bad)
    (tmp_path / "queries").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "queries" / "a1.jsonl").write_text('{"id": "a1-0", "text": "x"}\n')
    (tmp_path / "labels" / "L1.tsv").write_text("zz-9\tLOW\n")
    with pytest.raises(ValueError, match="unknown ids"):
        load_corpus(tmp_path)


def test_the_shipped_corpus_loads_with_three_labels_each() -> None:
    items = load_corpus()
    assert len(items) >= 4000
    assert all(len(it.labels) >= 3 for it in items)
    assert len({it.author for it in items}) >= 4
