"""The evaluation library: figures checked against values computed by hand on a tiny file."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from langchain_stream.judge.base import Complexity, Judgment
from langchain_stream.judge.calibrate import CalibratedJudge
from langchain_stream.judge.evaluate import (
    AlwaysMediumJudge,
    EvalRow,
    RandomJudge,
    baseline_judges,
    evaluate,
    evaluate_with_baselines,
    format_comparison,
    load_jsonl,
    main,
    metrics,
)

L, M, H = Complexity.LOW, Complexity.MEDIUM, Complexity.HIGH

# (text, truth, prediction of the scripted judge, latency the scripted judge takes in ms)
CASES = [
    ("q1", "LOW", L, 1.0),
    ("q2", "LOW", M, 2.0),
    ("q3", "MEDIUM", M, 3.0),
    ("q4", "MEDIUM", H, 4.0),
    ("q5", "HIGH", H, 5.0),
    ("q6", "HIGH", H, 6.0),
    ("q7", "HIGH", L, 7.0),
    ("q8", "MEDIUM", M, 8.0),
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedJudge:
    """Answers from a script and 'takes' a scripted time on a fake clock."""

    name = "scripted"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.contexts: dict[str, tuple[str, ...]] = {}
        self.script = {text: (pred, ms) for text, _, pred, ms in CASES}

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        pred, ms = self.script[query]
        self.clock.now += ms / 1000.0
        self.contexts[query] = tuple(context)
        return Judgment(complexity=pred, scores={pred: 1.0}, judge=self.name)


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    lines = []
    for i, (text, truth, _, _) in enumerate(CASES):
        row = {"text": text, "ground_truth": truth, "domain": "ignored", "id": i}
        if text == "q2":
            row["ground_truth"] = "low"  # labels are read case-insensitively
        if text == "q3":
            row["context"] = ["earlier question", "earlier answer"]
        lines.append(json.dumps(row))
    lines.insert(3, "")  # blank lines are skipped
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_jsonl_reads_the_rubric_format(tiny_file: Path) -> None:
    rows = load_jsonl(tiny_file)
    assert len(rows) == 8
    assert rows[0] == EvalRow("q1", L, ())
    assert rows[1].ground_truth is L
    assert rows[2].context == ("earlier question", "earlier answer")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "x", "ground_truth": "EASY"}', "ground_truth"),
        ('{"ground_truth": "LOW"}', "text"),
        ("{not json", "JSON"),
    ],
)
def test_load_jsonl_names_the_bad_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "ground_truth": "LOW"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf":2: .*{message}"):
        load_jsonl(path)


def test_metrics_match_hand_computed_values(tiny_file: Path) -> None:
    clock = FakeClock()
    judge = ScriptedJudge(clock)
    report = evaluate(judge, load_jsonl(tiny_file), clock=clock)

    assert report.n == 8
    assert report.accuracy == pytest.approx(5 / 8)
    # confusion (truth → predicted): LOW 1/1/0, MEDIUM 0/2/1, HIGH 1/0/2
    assert report.confusion == {
        "LOW": {"LOW": 1, "MEDIUM": 1, "HIGH": 0},
        "MEDIUM": {"LOW": 0, "MEDIUM": 2, "HIGH": 1},
        "HIGH": {"LOW": 1, "MEDIUM": 0, "HIGH": 2},
    }
    assert report.precision == pytest.approx({"LOW": 1 / 2, "MEDIUM": 2 / 3, "HIGH": 2 / 3})
    assert report.recall == pytest.approx({"LOW": 1 / 2, "MEDIUM": 2 / 3, "HIGH": 2 / 3})
    assert report.f1 == pytest.approx({"LOW": 1 / 2, "MEDIUM": 2 / 3, "HIGH": 2 / 3})
    assert report.macro_f1 == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert report.support == {"LOW": 2, "MEDIUM": 3, "HIGH": 3}
    # 5 LOW/MEDIUM queries, one of them (q4) sent to HIGH.
    assert report.free_tier_retention == pytest.approx(4 / 5)
    # latencies 1..8 ms; linear interpolation between order statistics
    assert report.latency_ms["p50"] == pytest.approx(4.5)
    assert report.latency_ms["p95"] == pytest.approx(7.65)
    assert report.latency_ms["p99"] == pytest.approx(7.93)
    assert report.latency_ms["max"] == pytest.approx(8.0)
    # the context reaches the judge
    assert judge.contexts["q3"] == ("earlier question", "earlier answer")
    assert judge.contexts["q1"] == ()


def test_to_json_has_the_required_keys(tiny_file: Path) -> None:
    clock = FakeClock()
    report = evaluate(ScriptedJudge(clock), load_jsonl(tiny_file), clock=clock)
    data = json.loads(report.to_json())
    assert {"n", "accuracy", "macro_f1", "recall", "free_tier_retention", "latency_ms"} <= set(data)
    assert set(data["recall"]) == {"LOW", "MEDIUM", "HIGH"}
    assert {"p50", "p95", "p99"} <= set(data["latency_ms"])
    assert data["n"] == 8
    assert data["macro_f1"] == pytest.approx(report.macro_f1)
    assert "\n" not in report.to_json()


def test_always_medium_baseline_by_hand(tiny_file: Path) -> None:
    report = evaluate(AlwaysMediumJudge(), load_jsonl(tiny_file))
    assert report.accuracy == pytest.approx(3 / 8)
    assert report.recall == {"LOW": 0.0, "MEDIUM": 1.0, "HIGH": 0.0}
    # F1(MEDIUM) = 2 · (3/8 · 1) / (3/8 + 1) = 6/11; LOW and HIGH score 0
    assert report.macro_f1 == pytest.approx((6 / 11) / 3)
    assert report.free_tier_retention == 1.0


def test_random_baseline_is_seeded(tiny_file: Path) -> None:
    rows = load_jsonl(tiny_file)
    first = [RandomJudge(seed=7).judge(r.text).complexity for r in rows]
    again = [RandomJudge(seed=7).judge(r.text).complexity for r in rows]
    assert first == again


def test_baselines_are_evaluated_beside_the_judge(tiny_file: Path) -> None:
    clock = FakeClock()
    rows = load_jsonl(tiny_file)
    report = evaluate_with_baselines(ScriptedJudge(clock), rows, seed=3)
    assert [b.judge for b in report.baselines] == ["always-medium", "random", "keyword"]
    assert [b.name for b in baseline_judges()] == ["always-medium", "random", "keyword"]
    assert all(b.n == 8 for b in report.baselines)
    data = json.loads(report.to_json())
    assert set(data["baselines"]) == {"always-medium", "random", "keyword"}
    table = format_comparison(report)
    assert "always-medium" in table
    assert "keyword" in table


def test_a_calibrated_judge_is_reported_as_calibrated(tiny_file: Path) -> None:
    rows = load_jsonl(tiny_file)
    clock = FakeClock()
    raw = evaluate(ScriptedJudge(clock), rows, clock=clock)
    assert json.loads(raw.to_json())["calibrated"] is False
    assert raw.offsets is None and raw.format().startswith("judge scripted: n=8")

    judge = CalibratedJudge(ScriptedJudge(clock), (0.0, 0.3, -0.4))
    report = evaluate_with_baselines(judge, rows)
    data = json.loads(report.to_json())
    assert (data["judge"], data["calibrated"]) == ("scripted", True)
    assert data["offsets"] == {"LOW": 0.0, "MEDIUM": 0.3, "HIGH": -0.4}
    assert data["baselines"]["keyword"]["calibrated"] is False
    text = report.format()
    assert text.startswith("judge scripted (calibrated): n=8")
    assert "offsets: LOW=+0.000  MEDIUM=+0.300  HIGH=-0.400" in text
    header, *rows_of_table = format_comparison(report).split("\n\n")[-1].splitlines()
    assert rows_of_table[0].startswith("scripted (calibrated) ")
    # The judge column widens to the label, so the figures stay under their headings.
    column = header.index("macro-F1") + len("macro-F1")
    assert all(re.fullmatch(r" \d\.\d{3} ", row[column - 6 : column + 1]) for row in rows_of_table)


def test_metrics_edge_cases() -> None:
    empty = metrics([], [])
    assert empty["n"] == 0
    assert empty["accuracy"] == 0.0
    assert empty["free_tier_retention"] is None
    only_high = metrics([H, H], [H, L])
    assert only_high["free_tier_retention"] is None
    # classes absent from both truth and predictions do not drag macro-F1 down
    assert only_high["macro_f1"] == pytest.approx((0.0 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="length"):
        metrics([L], [])


def test_command_line_json_last_line(tiny_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tiny_file), "--judge", "always-medium", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    data = json.loads(last)
    assert data["judge"] == "always-medium"
    assert data["n"] == 8
    assert data["accuracy"] == pytest.approx(3 / 8)
