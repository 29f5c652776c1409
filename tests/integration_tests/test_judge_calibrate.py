"""Calibration as a user runs it (`stream judge calibrate`), and the routing shares the router
reports over real requests (``StreamChatModel.routing_shares()``, ``stream doctor``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import get_settings
from langchain_stream.doctor import check_routing_shares
from tests.conftest import TIME_UNIT_S

CORPUS = Path(__file__).resolve().parents[2] / "data" / "complexity" / "corpus.jsonl"
QUERY = "Explain how a hash table handles collisions."


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langchain_stream.cli", *args],
        capture_output=True,
        text=True,
        timeout=120 * TIME_UNIT_S,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "stream.toml"
    path.write_text("# mine\nmax_tokens = 64\n")
    return path


def test_calibrate_writes_the_offsets_and_the_judge_uses_them(tmp_path: Path, config: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(CORPUS.read_text().splitlines()[:150]) + "\n")
    env = {"STREAM_CONFIG": str(config)}
    before = json.loads(run_cli("judge", QUERY, "--json", env=env).stdout.splitlines()[-1])

    done = run_cli("judge", "calibrate", str(traffic), "--target", "80,15,5", "--json", env=env)
    assert done.returncode == 0, done.stderr
    fitted = json.loads(done.stdout.strip().splitlines()[-1])
    assert fitted["judge"] == "trained" and fitted["n"] == 150
    assert fitted["saved_to"] == str(config)
    assert fitted["shares_after"]["LOW"] == pytest.approx(0.8, abs=0.03)
    saved = tomllib.loads(config.read_text())
    assert saved["max_tokens"] == 64 and "# mine" in config.read_text()
    assert saved["judge_offsets"]["trained"] == fitted["offsets"]
    assert saved["judge_target"] == {"LOW": 0.8, "MEDIUM": 0.15, "HIGH": 0.05}

    after = json.loads(run_cli("judge", QUERY, "--json", env=env).stdout.splitlines()[-1])
    assert after["scores"]["LOW"] > before["scores"]["LOW"]


def test_calibrate_says_when_the_environment_overrides_the_saved_offsets(
    tmp_path: Path, config: Path
) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(CORPUS.read_text().splitlines()[:40]) + "\n")
    env = {"STREAM_CONFIG": str(config), "STREAM_JUDGE_OFFSETS": '{"keyword": {"HIGH": 1.5}}'}
    for extra in ([], ["--json"]):
        done = run_cli("judge", "calibrate", str(traffic), "--judge", "keyword", *extra, env=env)
        assert done.returncode == 0, done.stderr
        stderr = " ".join(done.stderr.split())  # rich wraps long lines
        assert "warning: STREAM_JUDGE_OFFSETS sets the offsets of judge 'keyword'" in stderr
        assert f"overriding those saved to {config}" in stderr
        assert "Warning:" not in done.stderr  # said once, not also as a Python warning
        fitted = json.loads(done.stdout.strip().splitlines()[-1])
        assert fitted["env_overrides"] == {"STREAM_JUDGE_OFFSETS": {"HIGH": 1.5}}
    # Another judge's offsets in the environment override nothing that was saved.
    env["STREAM_JUDGE_OFFSETS"] = '{"trained": {"HIGH": 1.5}}'
    done = run_cli("judge", "calibrate", str(traffic), "--judge", "keyword", env=env)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr


def test_calibrate_with_a_bad_target_fails_clearly(tmp_path: Path, config: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text('"hello"\n')
    done = run_cli(
        "judge", "calibrate", str(traffic), "--target", "90,10", env={"STREAM_CONFIG": str(config)}
    )
    assert done.returncode == 1
    assert "--target" in done.stderr and "Traceback" not in done.stderr
    assert "judge_offsets" not in config.read_text()


def test_the_router_reports_the_shares_of_recent_requests(local_model: ChatLocal) -> None:
    router = StreamChatModel(local=local_model, max_tokens=4)
    assert router.routing_shares().requests == 0
    router.invoke("What is the capital of France?")
    router.invoke("Prove that there are infinitely many primes.")
    router.invoke("hi", model="stream-local")  # pinned: not judged
    shares = router.routing_shares()
    assert (shares.requests, shares.judged, shares.answered) == (3, 2, 3)
    assert sum(shares.classes.values()) == pytest.approx(1.0)
    assert shares.tiers["local"] == 1.0  # the only tier configured
    # `stream doctor` reads the same figures back from the audit log.
    row = check_routing_shares(get_settings())
    assert row.healthy and row.detail.startswith("last 3 requests")


def test_doctor_has_a_routing_shares_row() -> None:
    done = run_cli("doctor", "--json")
    rows = {row["part"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])}
    assert rows["routing shares"]["healthy"] is True
    assert rows["routing shares"]["detail"] == "no routed requests yet"
