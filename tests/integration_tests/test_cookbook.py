"""Every cookbook example that needs no live credentials runs, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TIME_UNIT_S

COOKBOOK = Path(__file__).resolve().parents[2] / "cookbook"
EXPECTED: dict[str, str | tuple[str, ...]] = {
    "lcel_chain.py": "[local",
    "agent_with_tools.py": "lookup_boiling_point",
    "router_as_subgraph.py": "answered by local",
    "routing_record_stream.py": "[done]",
    "relay_behind_tls.py": "received over wss:",
    "hpc_local_endpoint.py": "[batch] whole answer after",
    "hpc_globus_endpoint.py": "skipped: this example needs a Globus Compute endpoint",
    "privacy_and_budget.py": (
        "tier=local reason=privacy complexity=HIGH cost=$0.000000 sensitive=['email']",
        "tier=local reason=budget complexity=HIGH",
        "requests with sensitive data that reached the cloud: 0",
        "spend by day and tier",
        "; saved $",  # `stream costs`'s summary, printed with its table
    ),
    "openai_client_with_stream_serve.py": (
        "header x-stream-routing: tier=local",
        "usage chunk: prompt_tokens=",
        "[wrong key] openai.AuthenticationError 401",
        "[server stopped] exit code 0",
    ),
    "calibrate_the_judge.py": (
        "saved to ",
        "(target LOW 60% / MEDIUM 25% / HIGH 15%)",
        "[calibrated] LOW share 60% (target 60%)",
    ),
}
"""Each example's name → what its output must contain (a substring, or several) to show it
did what it says."""


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
    expected = EXPECTED[example]
    for text in (expected,) if isinstance(expected, str) else expected:
        assert text in done.stdout, f"{text!r} not in the output:\n{done.stdout[-3000:]}"
