"""`stream bench serve` runs end to end (without the peer gateways, briefly) and reports JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import TIME_UNIT_S


def bench_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "langchain_stream.cli", "bench", "serve", "--no-peers"),
            *("--requests", "2", "--concurrency", "1,2", "--max-tokens", "4"),
            *args,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300 * TIME_UNIT_S,
        env=dict(os.environ),
        check=False,
    )


def test_bench_serve_measures_the_gateway_against_the_backend() -> None:
    done = bench_serve("--runs", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "serve" and result["runs"] == 2 and result["backend"] == "llama"
    ours = result["gateways"]["stream serve"]
    assert len(result["direct"]["ttft_ms"]) == 4 and ours["added_ttft_ms_p50"] is not None
    assert set(ours["requests_per_s"]) == {"1", "2"} and ours["failures"] == {}
    assert result["direct"]["failures"] == {}


def test_bench_serve_on_the_instant_backend() -> None:
    done = bench_serve("--runs", "6", "--backend", "instant")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "instant" and result["direct"]["failures"] == {}
    ours = result["gateways"]["stream serve"]
    assert len(ours["added_ttft_samples_ms"]) == 6 and ours["failures"] == {}
    low, high = ours["added_ttft_ms_p50_ci95"]
    assert low <= ours["added_ttft_ms_p50"] <= high
    # Each answer's routing record gives the router's own share of the added time.
    assert ours["router_ms_p50"] is not None


def test_an_unknown_backend_is_refused() -> None:
    done = bench_serve("--runs", "1", "--backend", "vllm")
    assert done.returncode != 0
    assert "unknown backend 'vllm': use llama or instant" in done.stderr
