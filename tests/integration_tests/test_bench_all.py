"""`stream bench all --quick` end to end: every bench, one report, the plots and the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from matplotlib.image import imread

from langchain_stream.bench.plots import PLOTS
from langchain_stream.bench.readme import OPEN, figure_rows, update_readme
from langchain_stream.bench.suite import plan
from tests.conftest import TIME_UNIT_S


def test_bench_all_quick_writes_the_report_the_plots_and_the_table(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "figures"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "langchain_stream.cli",
            "bench",
            "all",
            "--quick",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=540 * TIME_UNIT_S,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["failed"] == []

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {"version", "date", "machine", "command", "duration_s", "benches", "plots"} <= set(
        report
    )
    assert report["mode"] == "quick" and report["machine"]["cpus"]
    assert set(report["benches"]) == {spec.key for spec in plan(quick=True)}
    for key, entry in report["benches"].items():
        assert entry["status"] == "ok", (key, entry.get("error"))
        assert entry["command"].startswith(f"stream bench {entry['bench']} ")

    # A peer that is not installed is a recorded reason, never a crash or a silent gap.
    serve = report["benches"]["serve"]["result"]
    for peer in ("hpc-as-api", "litellm"):
        assert peer in serve["gateways"] or serve["skipped"][peer]
    relay = report["benches"]["relay-50"]["result"]["streamrelay"]
    assert "hop_ms" in relay or relay["error"]

    assert set(report["plots"]) == set(PLOTS)
    for file in report["plots"].values():
        path = out / file
        assert path.stat().st_size > 10_000
        assert imread(path).shape[0] > 300

    rows = figure_rows(report)
    assert all(row["command"] and not row["measured"].startswith("not measured") for row in rows)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{OPEN}\n\n## after\n", encoding="utf-8")
    assert update_readme(readme, out / "report.json")
    text = readme.read_text(encoding="utf-8")
    assert all(f"`{row['command']}`" in text for row in rows)
    assert "(docs/figures/ttft_per_tier.png)" in text and text.endswith("\n\n## after\n")
