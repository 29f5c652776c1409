"""`stream bench serve` runs end to end (without the peer gateways, briefly) and reports JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import TIME_UNIT_S


def test_bench_serve_measures_the_gateway_against_the_backend() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "langchain_stream.cli", "bench", "serve", "--no-peers"),
            *("--runs", "2", "--requests", "2", "--concurrency", "1,2", "--max-tokens", "4"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300 * TIME_UNIT_S,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "serve" and result["runs"] == 2
    ours = result["gateways"]["stream serve"]
    assert len(result["direct"]["ttft_ms"]) == 4 and ours["added_ttft_ms_p50"] is not None
    assert set(ours["requests_per_s"]) == {"1", "2"} and ours["failures"] == {}
    assert result["direct"]["failures"] == {}
