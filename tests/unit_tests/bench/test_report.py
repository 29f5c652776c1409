"""The report of `stream bench all`: its table, its plots and the README block.

The report read here was written by a real `stream bench all --quick` run
(`data/quick-report.json`); `tests/integration_tests/test_bench_all.py` runs the command itself.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import typer.main
from matplotlib.image import imread

from langchain_stream.bench.plots import PLOTS, draw_all
from langchain_stream.bench.readme import (
    CLOSE,
    OPEN,
    figure_rows,
    render_block,
    replace_block,
    update_readme,
)
from langchain_stream.bench.suite import plan
from langchain_stream.cli import app

REPORT = Path(__file__).parent / "data" / "quick-report.json"


@pytest.fixture
def report() -> dict[str, Any]:
    return json.loads(REPORT.read_text(encoding="utf-8"))


def test_the_table_lists_every_figure_with_the_command_that_measured_it(
    report: dict[str, Any],
) -> None:
    rows = figure_rows(report)
    assert len(rows) >= 12
    for row in rows:
        entry = report["benches"][row["bench"]]
        assert row["command"] == entry["command"]
        assert row["command"].startswith(f"stream bench {entry['bench']} ")
        assert row["command"].endswith("--json")
        assert row["measured"] and not row["measured"].startswith("not measured")
    block = render_block(report, REPORT, REPORT.parent)
    table = [line for line in block.splitlines() if line.startswith("| ")]
    assert table[0] == "| figure | measured | target | command |"
    assert len(table) == len(rows) + 1
    for row, line in zip(rows, table[1:], strict=True):
        assert f"`{row['command']}`" in line and row["target"] in line
    assert report["machine"]["machine"] in block and report["date"][:10] in block


def test_every_plot_is_drawn_from_the_report(report: dict[str, Any], tmp_path: Path) -> None:
    drawn, skipped, failed = draw_all(report, tmp_path)
    assert (skipped, failed) == ({}, {})
    assert set(drawn) == set(PLOTS)
    for file in drawn.values():
        path = tmp_path / file
        assert path.stat().st_size > 10_000
        pixels = imread(path)  # a valid PNG, of a real figure's size
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500


def test_a_failed_bench_and_a_missing_peer_are_reasons_not_crashes(
    report: dict[str, Any], tmp_path: Path
) -> None:
    broken = copy.deepcopy(report)
    broken["benches"]["hpc"] = {
        "bench": "hpc",
        "command": report["benches"]["hpc"]["command"],
        "status": "failed",
        "error": "ConfigurationError: the endpoint did not start",
    }
    serve = broken["benches"]["serve"]
    serve["result"]["gateways"].pop("hpc-as-api", None)
    serve["result"]["skipped"] = {"hpc-as-api": "hpc-as-api is not installed"}
    serve["missing"] = serve["result"]["skipped"]
    rows = {row["figure"]: row for row in figure_rows(broken) if row["bench"] == "hpc"}
    assert rows and all("the endpoint did not start" in r["measured"] for r in rows.values())
    assert all(r["met"] is None for r in rows.values())
    drawn, skipped, failed = draw_all(broken, tmp_path)
    assert failed == {}
    assert "the endpoint did not start" in skipped["hpc_relay_vs_batch"]
    assert "ttft_per_tier" in drawn  # the other tiers are still drawn
    block = render_block(broken, REPORT, REPORT.parent)
    assert "hpc-as-api not measured: hpc-as-api is not installed" in block
    assert "Benchmarks that failed: hpc: ConfigurationError" in block


def test_updating_the_readme_twice_changes_nothing_more(
    report: dict[str, Any], tmp_path: Path
) -> None:
    figures = tmp_path / "docs" / "figures"
    figures.mkdir(parents=True)
    report["plots"], _, _ = draw_all(report, figures)
    report_path = figures / "report.json"
    report_path.write_text(json.dumps(report), encoding="utf-8")
    before = "# project\n\nHandwritten text.\n\n"
    after = "\n\n## Development\n\nMore handwritten text.\n"
    readme = tmp_path / "README.md"
    readme.write_text(before + OPEN + after, encoding="utf-8")  # no closing marker yet

    assert update_readme(readme, report_path) is True
    once = readme.read_text(encoding="utf-8")
    assert update_readme(readme, report_path) is False
    assert readme.read_text(encoding="utf-8") == once

    assert once.startswith(before + OPEN) and once.endswith(CLOSE + after)
    assert once.count(OPEN) == 1 and once.count(CLOSE) == 1
    assert "(docs/figures/report.json)" in once
    assert "[TTFT per tier](docs/figures/ttft_per_tier.png)" in once


def test_a_readme_without_the_marker_is_refused() -> None:
    with pytest.raises(ValueError, match="bench-figures"):
        replace_block("# no markers here\n", "table")


def test_a_report_outside_the_readme_folder_is_named_not_linked(
    report: dict[str, Any], tmp_path: Path
) -> None:
    block = render_block(report, tmp_path / "elsewhere" / "report.json", tmp_path / "repo")
    assert "(report: `report.json`)" in block and "Plots:" not in block


def _parsed(command: str) -> tuple[str, dict[str, Any]]:
    words = command.split()
    assert words[:2] == ["stream", "bench"]
    group = typer.main.get_command(app).commands["bench"]  # type: ignore[attr-defined]
    sub = group.commands[words[2]]
    return words[2], sub.make_context(words[2], words[3:]).params


@pytest.mark.parametrize("quick", [True, False])
def test_each_recorded_command_runs_the_bench_with_the_same_options(quick: bool) -> None:
    for spec in plan(quick):
        name, params = _parsed(spec.command)
        assert name == spec.bench and params["as_json"] is True
        for option, value in spec.options.items():
            parsed = params[option]
            if isinstance(value, list):
                parsed = [int(v) for v in parsed.split(",")]
            assert parsed == value, (spec.key, option)


def test_the_plan_sweeps_the_relay_and_runs_every_bench() -> None:
    quick, full = plan(quick=True), plan(quick=False)
    assert {s.bench for s in quick} == {s.bench for s in full}
    assert {"judge", "local", "overhead", "relay", "hpc", "compression", "serve"} <= {
        s.bench for s in full
    }
    streams = [s.options["streams"] for s in full if s.bench == "relay"]
    assert streams == sorted(streams) and 50 in streams and len(streams) >= 4
