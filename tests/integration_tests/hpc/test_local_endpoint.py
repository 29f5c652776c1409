"""The local endpoint as users reach it: the `stream` command with STREAM_HPC_ENDPOINT_ID=local,
its doctor check, its benchmarks, and a worker that dies.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from langchain_stream.hpc import LocalEndpoint
from langchain_stream.hpc.local_endpoint import worker_pid
from tests.integration_tests.hpc.helpers import UNIT_S
from tests.integration_tests.test_cli import run_cli

pytestmark = pytest.mark.timeout(180)

LOCAL = {"STREAM_HPC_ENDPOINT_ID": "local"}


def test_a_dead_worker_is_replaced_on_the_next_submit() -> None:
    endpoint = LocalEndpoint(workers=1, relay=False, preload=False)
    try:
        first = endpoint.submit(worker_pid).result(60 * UNIT_S)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30 * UNIT_S
        while True:  # the pool notices the death on its own, then refuses new work
            try:
                second = endpoint.submit(worker_pid).result(60 * UNIT_S)
                break
            except Exception:  # BrokenProcessPool for the task caught in the death
                assert time.monotonic() < deadline
        assert second != first
    finally:
        endpoint.shutdown(wait=True)


def test_chat_answers_from_the_local_and_the_hpc_tier_on_one_machine() -> None:
    answers = {}
    for tier in ("local", "hpc"):
        done = run_cli(
            "chat", "What is the capital of France?", "--tier", tier, "--json", env=LOCAL
        )
        assert done.returncode == 0, done.stderr
        answers[tier] = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["local"]["tier"] == "local" and answers["hpc"]["tier"] == "hpc"
    assert answers["hpc"]["text"].strip()
    assert answers["hpc"]["usage"]["output_tokens"] > 0


def test_doctor_starts_the_local_endpoint_and_reports_it() -> None:
    done = run_cli("doctor", "--json", env=LOCAL)
    assert done.returncode == 0, done.stderr
    rows = {row["part"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])}
    assert rows["hpc tier"]["healthy"] is True
    assert "local endpoint" in rows["hpc tier"]["detail"]
    assert "first token" in rows["hpc tier"]["detail"]


def test_doctor_reports_an_unreachable_relay() -> None:
    env = {
        **LOCAL,
        "STREAM_RELAY_URLS": "ws://127.0.0.1:9",
        "STREAM_RELAY_SECRET": "a-secret-for-a-relay-that-is-not-there",
    }
    done = run_cli("doctor", "--json", env=env)
    assert done.returncode == 1
    rows = {row["part"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])}
    assert rows["hpc tier"]["healthy"] is False
    assert "unreachable" in rows["hpc tier"]["detail"]


def test_bench_hpc_ends_with_a_json_line() -> None:
    done = run_cli("bench", "hpc", "--runs", "1", "--max-tokens", "16", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "hpc"
    assert result["ttft_relay_ms"] > 0 and result["ttft_batch_ms"] > 0
    assert {"relay_added_ms", "dispatch_ms", "backend_ttft_ms"} <= set(result)


def test_bench_relay_ends_with_a_json_line() -> None:
    done = run_cli(
        "bench", "relay", "--streams", "4", "--tokens", "5", "--saturation-streams", "2",
        "--saturation-tokens", "20", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {
        "streams",
        "tokens_per_s",
        "relay_cpu_us_per_token",
        "hop_ms",
        "lost",
        "reordered",
    } <= set(result)
    assert result["streams"] == 4
    assert result["lost"] == 0 and result["reordered"] == 0
    assert "streamrelay" in result  # its figures, or why they are missing (not installed)
