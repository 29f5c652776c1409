"""`stream bench privacy`: the variant set's size and spread, recall and false positives."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from langchain_stream.bench.privacy import VARIANTS_FILE, run_privacy_bench
from langchain_stream.cli import app


def test_the_variant_set_is_large_and_varied() -> None:
    data = json.loads(VARIANTS_FILE.read_text())
    positives = data["positives"]
    assert len(positives) >= 300
    assert len({p["obfuscation"] for p in positives}) >= 15
    kinds = {p["kind"] for p in positives}
    for kind in ("email", "payment_card", "iban", "national_id", "phone", "aws_access_key"):
        assert kind in kinds
    assert all(
        set(p["request"]) <= {"messages", "tools", "response_format", "stop"} for p in positives
    )


def test_recall_per_kind_and_false_positives_on_ordinary_queries() -> None:
    result = run_privacy_bench()
    assert result["ordinary_queries"] >= 1000
    assert result["false_positive_rate"] <= 0.01
    assert result["hard_negative_false_positive_rate"] <= 0.05
    assert all(recall >= 0.95 for recall in result["recall_per_kind"].values()), result["missed"]
    assert all(recall >= 0.9 for recall in result["recall_per_class"].values()), result["missed"]


def test_the_command_prints_the_report_as_its_last_line() -> None:
    outcome = CliRunner().invoke(app, ["bench", "privacy", "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output.strip().splitlines()[-1])
    assert report["bench"] == "privacy" and report["positives"] >= 300
