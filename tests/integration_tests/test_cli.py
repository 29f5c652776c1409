"""The `stream` command, run as a user runs it: a real process on the embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_stream.config import get_settings
from langchain_stream.policies.store import AnswerEntry, PolicyStore
from tests.conftest import TIME_UNIT_S

STREAM = [sys.executable, "-m", "langchain_stream.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STREAM, *args],
        capture_output=True,
        text=True,
        timeout=120 * TIME_UNIT_S,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_chat_json_prints_only_json_on_stdout() -> None:
    done = run_cli("chat", "What is the capital of France?", "--json", "--max-tokens", "24")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1  # a script can parse stdout as it is
    summary = json.loads(lines[0])
    assert {"tier", "complexity", "judge_ms", "ttft_ms", "tokens_per_s", "text"} <= set(summary)
    assert summary["tier"] == "local"
    assert summary["complexity"] == "LOW"
    assert summary["text"].strip()
    assert summary["text"].strip() in done.stderr  # the streamed answer, for a person


def test_version_and_log_level() -> None:
    from langchain_stream import __version__

    done = run_cli("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"langchain-stream {__version__}")
    bad = run_cli("--log-level", "loud", "doctor")
    assert bad.returncode != 0 and "loud" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("judge", "--eval", "/nonexistent/labels.jsonl"),
        ("bench", "judge", "--eval", "/nonexistent/labels.jsonl", "--json"),
        ("bench", "readme", "/nonexistent/report.json"),
        ("chat", "hi", "--tier", "nowhere"),
        ("costs",),
        ("bench", "serve", "--concurrency", "1,lots", "--json"),
        ("bench", "privacy", "--variants", "/nonexistent/variants.jsonl", "--json"),
        ("bench", "readme", "/nonexistent/report.json", "--check"),
    ],
    ids=[
        "judge-eval",
        "bench-judge",
        "bench-readme",
        "chat-tier",
        "costs-no-ledger",
        "bench-serve-concurrency",
        "bench-privacy-variants",
        "bench-readme-check",
    ],
)
def test_ordinary_errors_are_one_line_without_a_traceback(args: tuple[str, ...]) -> None:
    done = run_cli(*args, env={"STREAM_DATABASE_URL": "none"})
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_bad_option_value_is_a_usage_error_without_a_traceback() -> None:
    for args in (("bench", "local", "--runs", "0", "--json"), ("bench", "nosuch"), ("chat",)):
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert done.stdout == ""  # nothing a script would take for JSON
    assert "--runs" in run_cli("bench", "local", "--runs", "0").stderr


def test_debug_shows_the_traceback() -> None:
    done = run_cli("--debug", "judge", "--eval", "/nonexistent/labels.jsonl")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "labels.jsonl" in done.stderr


def test_chat_prints_the_routing_table() -> None:
    done = run_cli("chat", "Say hi.", "--max-tokens", "8")
    assert done.returncode == 0, done.stderr
    assert "tier" in done.stderr and "local" in done.stderr and "ttft_ms" in done.stderr


def test_chat_pinned_to_an_unconfigured_tier_fails_clearly() -> None:
    done = run_cli("chat", "hi", "--tier", "cloud")
    assert done.returncode == 1
    assert "not configured" in done.stderr


def test_chat_with_a_missing_model_file_fails_clearly(tmp_path: Path) -> None:
    done = run_cli("chat", "hi", env={"STREAM_LOCAL_MODEL": str(tmp_path / "gone.gguf")})
    assert done.returncode == 1
    assert "gone.gguf" in done.stderr and "Traceback" not in done.stderr


def test_chat_with_a_truncated_model_file_fails_in_one_line(tmp_path: Path) -> None:
    from langchain_stream.tiers.embedded import embedded_model_path

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(embedded_model_path().read_bytes()[:2_000_000])
    done = run_cli("chat", "hi", env={"STREAM_LOCAL_MODEL": str(cut)})
    assert done.returncode == 1  # an error exit, not death by a signal
    assert "cut.gguf" in done.stderr and "truncated" in done.stderr
    assert "Traceback" not in done.stderr


def test_doctor_says_which_llama_cpp_path_is_in_use() -> None:
    done = run_cli("doctor", "--json")
    local = next(row for row in json.loads(done.stdout) if row["part"] == "local tier")
    assert local["healthy"], local
    assert "extra buffer types" in local["detail"]
    assert "STREAM_LOCAL_EXTRA_BUFFERS" in local["detail"]


def test_doctor_reports_each_tier() -> None:
    done = run_cli("doctor", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["part"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])}
    assert rows["local tier"]["healthy"] is True
    assert rows["hpc tier"]["configured"] is False
    assert "STREAM_HPC_ENDPOINT_ID" in rows["hpc tier"]["detail"]
    assert rows["cloud tier"]["configured"] is False


def test_doctor_fails_when_a_configured_tier_is_down() -> None:
    done = run_cli(
        "doctor",
        "--json",
        env={"STREAM_CLOUD_MODEL": "gpt-test", "STREAM_CLOUD_BASE_URL": "http://127.0.0.1:9/v1"},
    )
    assert done.returncode == 1
    rows = {row["part"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])}
    assert rows["cloud tier"]["healthy"] is False
    assert "unreachable" in rows["cloud tier"]["detail"]


@pytest.mark.parametrize("bench", ["local", "overhead"])
def test_benchmarks_end_with_a_json_line(bench: str) -> None:
    done = run_cli("bench", bench, "--runs", "2", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == bench
    assert result["runs"] == 2


def test_judge_a_query() -> None:
    # A textbook proof is MEDIUM by the rubric; this one needs a path of its own.
    query = "Prove that every finite group of order p^2 is abelian, then classify them."
    done = run_cli("judge", query, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["complexity"] == "HIGH"
    assert result["judge"] == "trained"
    assert set(result["scores"]) == {"LOW", "MEDIUM", "HIGH"}


def test_judge_eval_ends_with_the_documented_json(tmp_path: Path) -> None:
    rows = [
        {"text": "What is the capital of Peru?", "ground_truth": "LOW", "domain": "x"},
        {"text": "Explain how TCP congestion control works.", "ground_truth": "MEDIUM"},
        {"text": "Prove that there are infinitely many primes.", "ground_truth": "HIGH"},
    ]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_cli("judge", "--eval", str(path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["n"] == 3
    assert {"accuracy", "macro_f1", "recall", "free_tier_retention", "latency_ms"} <= set(report)
    assert set(report["recall"]) == {"LOW", "MEDIUM", "HIGH"}
    assert set(report["latency_ms"]) >= {"p50", "p95", "p99"}
    assert report["calibrated"] is False and report["offsets"] is None


def test_judge_eval_says_the_judge_is_calibrated(tmp_path: Path) -> None:
    rows = [
        {"text": "What is the capital of Peru?", "ground_truth": "LOW"},
        {"text": "Prove that there are infinitely many primes.", "ground_truth": "HIGH"},
    ]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "stream.toml"
    config.write_text("judge_offsets = { trained = { LOW = 0.0, MEDIUM = 0.3, HIGH = -0.4 } }\n")
    env = {"STREAM_CONFIG": str(config), "COLUMNS": "200"}  # no wrapping of the table
    done = run_cli("judge", "--eval", str(path), "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["judge"], report["calibrated"]) == ("trained", True)
    assert report["offsets"] == {"LOW": 0.0, "MEDIUM": 0.3, "HIGH": -0.4}
    human = run_cli("judge", "--eval", str(path), env=env)
    assert human.returncode == 0, human.stderr
    assert "judge trained (calibrated): n=2" in human.stdout
    assert "offsets: LOW=+0.000  MEDIUM=+0.300  HIGH=-0.400" in human.stdout


def _ledger_with_a_local_and_a_cloud_answer() -> None:
    """Two answers in the test's own ledger (STREAM_DATABASE_URL, inherited by the CLI)."""
    store = PolicyStore(str(get_settings().database_url))
    common: dict = {
        "user": "alice",
        "conversation": None,
        "privacy": "standard",
        "sensitive": [],
        "reason": "judge",
        "input_tokens": 1000,
        "output_tokens": 500,
        "policies": [],
    }
    store.record_answer(
        AnswerEntry(
            **common,
            complexity="HIGH",
            tier="cloud",
            model="gpt-4o-mini",
            cost_usd=0.003,
            cloud_equivalent_usd=0.003,
            tiers_tried=[{"tier": "cloud", "error": None}],
        )
    )
    store.record_answer(
        AnswerEntry(
            **common,
            complexity="LOW",
            tier="local",
            model="smollm2",
            cost_usd=0.0,
            cloud_equivalent_usd=0.002,
            tiers_tried=[{"tier": "local", "error": None}],
        )
    )


def test_costs_prints_the_table_and_the_summary_on_stdout_without_json() -> None:
    _ledger_with_a_local_and_a_cloud_answer()
    done = run_cli("costs", env={"STREAM_CLOUD_MODEL": "gpt-4o-mini"})
    assert done.returncode == 0, done.stderr
    assert "spend by day and tier" in done.stdout
    assert "local" in done.stdout and "cloud" in done.stdout
    # The summary travels with the table through a pipe.
    assert "total $0.003000; all on gpt-4o-mini: $0.005000; saved $0.002000" in done.stdout
    assert "saved" not in done.stderr
    assert not any(line.lstrip().startswith("{") for line in done.stdout.splitlines())


def test_costs_json_prints_only_the_report() -> None:
    _ledger_with_a_local_and_a_cloud_answer()
    done = run_cli("costs", "--json", env={"STREAM_CLOUD_MODEL": "gpt-4o-mini"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # the whole of stdout: no table around the JSON
    assert {row["tier"] for row in report["by_day_and_tier"]} == {"cloud", "local"}
    assert report["total_cost_usd"] == pytest.approx(0.003)
    assert report["all_cloud_cost_usd"] == pytest.approx(0.005)
    assert report["savings_usd"] == pytest.approx(0.002)
    assert report["cloud_model"] == "gpt-4o-mini"
    assert "saved" not in done.stderr
