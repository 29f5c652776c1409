"""``stream bench compression`` runs end to end and ends with its JSON line (a short run)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from langchain_stream.bench.conversations import PROBE_TURNS, conversation
from langchain_stream.cli import app


def test_conversations_plant_facts_early_and_probe_them_later() -> None:
    script = conversation(0)
    assert len(script) == 40
    probes = [n for n, turn in enumerate(script, start=1) if turn.answer is None]
    assert probes == list(PROBE_TURNS)
    for number in probes:
        fact = script[number - 1].fact
        assert fact is not None
        planted = [n for n, t in enumerate(script, start=1) if fact.statement in t.user]
        assert planted and planted[0] <= 8 < number


def test_bench_compression_ends_with_a_json_line() -> None:
    result = CliRunner().invoke(
        app,
        ["bench", "compression", "--conversations", "1", "--turns", "10", "--json"],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(figures)[:3] == ["probes", "stayed_local", "fact_recall"]
    assert figures["probes"] == 1 and figures["stayed_local"] == 1
    assert figures["fact_recall"] == 1.0  # turn 10 still holds every turn verbatim
    assert {"compress_ms_per_turn", "local_answer_ms", "per_probe"} <= figures.keys()
