"""``stream bench all``: every benchmark in turn, one JSON report, and the plots.

Each benchmark runs in this process through the same function as its own ``stream bench``
command, with the same options, so the command recorded beside each result reproduces it.
A benchmark that fails is recorded with its error and the others still run; a peer that is
missing (streamrelay, hpc-as-api, LiteLLM) is recorded with the reason its bench gave.

The relay bench runs at several stream counts, for hop latency against concurrency; the
largest count doubles as the "nothing lost or reordered" check.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from langchain_stream.bench.stats import machine

REPORT_NAME = "report.json"

# Options whose command-line flag is not the parameter's name.
_FLAGS = {"eval_file": "--eval"}

# Stream counts of the relay sweep; the headline relay figures are read at 50 streams.
RELAY_LEVELS = (1, 10, 50, 200, 500)
QUICK_RELAY_LEVELS = (1, 10, 50)
RELAY_HEADLINE_STREAMS = 50


@dataclass(frozen=True)
class BenchSpec:
    """One benchmark run: which bench, with which options, under which key of the report."""

    key: str
    bench: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """The ``stream bench`` command that runs exactly this benchmark."""
        args = ["stream", "bench", self.bench]
        for name, value in self.options.items():
            flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, list | tuple):
                args += [flag, ",".join(str(v) for v in value)]
            else:
                args += [flag, str(value)]
        return shlex.join([*args, "--json"])

    def run(self, progress: bool) -> dict[str, Any]:
        """Run the bench's function with these options: ``run_<bench>_bench`` of the module
        ``langchain_stream.bench.<bench>``, imported only now, as the CLI does."""
        module = importlib.import_module(f"langchain_stream.bench.{self.bench}")
        function: Callable[..., dict[str, Any]] = getattr(module, f"run_{self.bench}_bench")
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return function(**options, progress=progress)


def plan(quick: bool = False) -> list[BenchSpec]:
    """The benchmarks of ``stream bench all``: the commands' defaults, or small sizes.

    Default sizes are those of each ``stream bench`` command (the figures in the README);
    ``quick`` sizes only show that everything runs and draws.
    """
    if quick:
        sizes: dict[str, dict[str, Any]] = {
            "local": {"runs": 2, "max_tokens": 32},
            "overhead": {"runs": 6},
            "hpc": {"runs": 2, "max_tokens": 64},
            # One load generator: each is a process to spawn per phase and relay.
            "relay": {
                "tokens": 20,
                "saturation_streams": 10,
                "saturation_tokens": 100,
                "generators": 1,
            },
            # A small window, so the one probe of a short conversation is still compressed.
            "compression": {"conversations": 1, "turns": 10, "n_ctx": 1024},
            "serve": {
                "runs": 4,
                "requests": 4,
                "concurrency": [1, 4],
                "max_tokens": 8,
                "peers": True,
            },
        }
        levels = QUICK_RELAY_LEVELS
    else:
        sizes = {
            "local": {"runs": 8, "max_tokens": 128},
            "overhead": {"runs": 40},
            "hpc": {"runs": 6, "max_tokens": 256},
            "relay": {
                "tokens": 60,
                "saturation_streams": 50,
                "saturation_tokens": 400,
                "generators": 2,
            },
            "compression": {"conversations": 2, "turns": 40, "n_ctx": 2048},
            "serve": {
                # Backend TTFTs of consecutive requests differ by a few ms: many rounds keep the
                # median of a sub-millisecond difference meaningful.
                "runs": 120,
                "requests": 64,
                "concurrency": [1, 16, 64],
                "max_tokens": 32,
                "peers": True,
            },
        }
        levels = RELAY_LEVELS
    specs = [
        BenchSpec("judge", "judge"),
        BenchSpec("local", "local", sizes["local"]),
        BenchSpec("overhead", "overhead", sizes["overhead"]),
        BenchSpec("hpc", "hpc", sizes["hpc"]),
    ]
    specs += [
        BenchSpec(f"relay-{n}", "relay", {"streams": n, "rate": 20.0, **sizes["relay"]})
        for n in levels
    ]
    specs += [
        BenchSpec("compression", "compression", sizes["compression"]),
        BenchSpec("serve", "serve", sizes["serve"]),
    ]
    return specs


def missing_peers(bench: str, result: dict[str, Any]) -> dict[str, str]:
    """The peers a bench could not measure, with the reason it gave."""
    if bench == "relay" and "error" in result.get("streamrelay", {}):
        return {"streamrelay": str(result["streamrelay"]["error"])}
    if bench == "serve":
        return {str(k): str(v) for k, v in result.get("skipped", {}).items()}
    return {}


def run_one(spec: BenchSpec, progress: bool) -> dict[str, Any]:
    """Run one bench; a failure becomes an entry with its error instead of an exception."""
    entry: dict[str, Any] = {"bench": spec.bench, "command": spec.command}
    started = time.perf_counter()
    try:
        result = spec.run(progress)
    except Exception as exc:  # any failure is a figure not measured, never the end of the run
        entry["status"] = "failed"
        entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["traceback"] = traceback.format_exc(limit=8)[-4000:]
    else:
        entry["status"] = "ok"
        entry["result"] = result
        missing = missing_peers(spec.bench, result)
        if missing:
            entry["missing"] = missing
    entry["duration_s"] = round(time.perf_counter() - started, 1)
    return entry


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_all(
    out_dir: Path,
    *,
    quick: bool = False,
    command: str = "stream bench all",
    specs: list[BenchSpec] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every benchmark, write ``report.json`` and the plots into ``out_dir``.

    Returns the report; its ``failed`` lists the benches (and plots) that failed.
    """
    from langchain_stream import __version__
    from langchain_stream.bench.plots import draw_all
    from langchain_stream.bench.readme import figure_rows

    specs = specs if specs is not None else plan(quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "report": "stream bench all",
        "package": "langchain-stream",
        "version": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "mode": "quick" if quick else "default",
        "machine": machine(),
        "load_average": {"start": _load()},
        "benches": {},
    }
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # The benches' own bars nest under this one (same console, rich >= 14.1).
    with Progress(*columns, disable=not progress) as bar:
        overall = bar.add_task("bench all", total=len(specs))
        for spec in specs:
            bar.update(overall, description=f"bench all: {spec.key}")
            report["benches"][spec.key] = run_one(spec, progress)
            bar.advance(overall)
        bar.update(overall, description="bench all: done")
    report["load_average"]["end"] = _load()
    report["duration_s"] = round(time.perf_counter() - started, 1)
    report["figures"] = figure_rows(report)
    report["plots"], skipped, plot_errors = draw_all(report, out_dir)
    if skipped:
        report["plots_skipped"] = skipped
    if plot_errors:
        report["plot_errors"] = plot_errors
    report["failed"] = [k for k, e in report["benches"].items() if e["status"] != "ok"]
    report["failed"] += [f"plot:{name}" for name in plot_errors]
    (out_dir / REPORT_NAME).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


__all__ = ["REPORT_NAME", "BenchSpec", "missing_peers", "plan", "run_all", "run_one"]
