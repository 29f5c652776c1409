"""Every cookbook example that needs no live credentials runs, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIME_UNIT_S

COOKBOOK = Path(__file__).resolve().parents[2] / "cookbook"
EXPECTED = {
    "lcel_chain.py": "[local",
    "agent_with_tools.py": "lookup_boiling_point",
    "router_as_subgraph.py": "answered by local",
    "routing_record_stream.py": "[done]",
    "relay_behind_tls.py": "received over wss:",
    "hpc_local_endpoint.py": "[batch] whole answer after",
    "hpc_globus_endpoint.py": "skipped: this example needs a Globus Compute endpoint",
}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in COOKBOOK.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs(example: str) -> None:
    done = subprocess.run(
        [sys.executable, str(COOKBOOK / example)],
        capture_output=True,
        text=True,
        timeout=180 * TIME_UNIT_S,
        env={**os.environ},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert EXPECTED[example] in done.stdout
