"""The extra-buffer decision: a probe that crashes turns them off, the answer is cached, and
settings override it. Probes are real child processes that end the way the test needs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from langchain_stream.errors import ModelLoadError
from langchain_stream.llama.extra_buffers import (
    CACHE_FILE_NAME,
    ProbeResult,
    decide,
    machine_key,
    run_probe,
)

SEGFAULT = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
WORKS = [sys.executable, "-c", "print('loaded'); print('decoded')"]
FAILS = [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(1)"]
MODEL = Path("model.gguf")


def probe_by_state(on: list[str], off: list[str]):
    """A probe whose child runs ``on`` with extra buffers on and ``off`` with them off."""
    calls: list[bool] = []

    def probe(path: Path, extra_buffers: bool) -> ProbeResult:
        calls.append(extra_buffers)
        return run_probe(path, extra_buffers, command=on if extra_buffers else off)

    probe.calls = calls  # type: ignore[attr-defined]
    return probe


def never(path: Path, extra_buffers: bool) -> ProbeResult:
    raise AssertionError("the probe must not run")


def test_a_probe_killed_by_a_signal_is_a_crash() -> None:
    result = run_probe(MODEL, True, command=SEGFAULT)
    assert (result.ok, result.crashed, result.signal) == (False, True, "SIGSEGV")


def test_crash_with_them_on_turns_them_off_and_is_cached(tmp_path: Path) -> None:
    probe = probe_by_state(on=SEGFAULT, off=WORKS)
    decision = decide(MODEL, "MOSTLY_Q4_1", mode="auto", cache_dir=tmp_path, probe=probe)
    assert decision.enabled is False and decision.source == "probe"
    assert "SIGSEGV" in decision.reason
    assert probe.calls == [True, False]
    assert decision.cache_file == str(tmp_path / CACHE_FILE_NAME)
    # The next load on this machine reuses the answer without probing.
    again = decide(MODEL, "MOSTLY_Q4_1", mode="auto", cache_dir=tmp_path, probe=never)
    assert (again.enabled, again.source) == (False, "cache")
    assert "SIGSEGV" in again.describe() and "STREAM_LOCAL_EXTRA_BUFFERS" in again.describe()
    stored = json.loads((tmp_path / CACHE_FILE_NAME).read_text())
    assert stored[machine_key("MOSTLY_Q4_1")]["enabled"] is False


def test_a_probe_that_works_turns_them_on(tmp_path: Path) -> None:
    probe = probe_by_state(on=WORKS, off=FAILS)
    decision = decide(MODEL, "MOSTLY_Q4_K_M", mode="auto", cache_dir=tmp_path, probe=probe)
    assert (decision.enabled, decision.source, probe.calls) == (True, "probe", [True])
    # The key includes the quantization type: another type is probed on its own.
    other = probe_by_state(on=SEGFAULT, off=WORKS)
    assert (
        decide(MODEL, "MOSTLY_Q8_0", mode="auto", cache_dir=tmp_path, probe=other).enabled is False
    )
    assert decide(MODEL, "MOSTLY_Q4_K_M", mode="auto", cache_dir=tmp_path, probe=never).enabled


def test_crash_both_ways_blames_the_file(tmp_path: Path) -> None:
    probe = probe_by_state(on=SEGFAULT, off=SEGFAULT)
    with pytest.raises(ModelLoadError, match=r"crashes \(SIGSEGV\) on model\.gguf") as info:
        decide(MODEL, "MOSTLY_Q4_1", mode="auto", cache_dir=tmp_path, probe=probe)
    assert info.value.path == str(MODEL)
    assert not (tmp_path / CACHE_FILE_NAME).exists()


def test_an_error_is_not_a_crash_and_is_not_cached(tmp_path: Path) -> None:
    probe = probe_by_state(on=FAILS, off=WORKS)
    decision = decide(MODEL, "MOSTLY_Q4_1", mode="auto", cache_dir=tmp_path, probe=probe)
    assert decision.enabled is False and "not cached" in decision.reason
    assert probe.calls == [True]
    assert not (tmp_path / CACHE_FILE_NAME).exists()


def test_a_probe_that_hangs_is_abandoned() -> None:
    hang = [sys.executable, "-c", "import time; time.sleep(30)"]
    result = run_probe(MODEL, True, command=hang, timeout_s=0.5)
    assert (result.ok, result.crashed, result.detail) == (False, False, "timed out")


@pytest.mark.parametrize(("mode", "enabled"), [("on", True), ("off", False)])
def test_the_setting_decides_without_a_probe(tmp_path: Path, mode: str, enabled: bool) -> None:
    decision = decide(MODEL, "MOSTLY_Q4_1", mode=mode, cache_dir=tmp_path, probe=never)  # type: ignore[arg-type]
    assert (decision.enabled, decision.source) == (enabled, "setting")
    assert f"STREAM_LOCAL_EXTRA_BUFFERS={mode}" in decision.reason


def test_a_damaged_cache_is_probed_again(tmp_path: Path) -> None:
    (tmp_path / CACHE_FILE_NAME).write_text("{not json")
    probe = probe_by_state(on=WORKS, off=WORKS)
    assert decide(MODEL, "Q", mode="auto", cache_dir=tmp_path, probe=probe).source == "probe"
    assert json.loads((tmp_path / CACHE_FILE_NAME).read_text())  # rewritten whole


def test_no_cache_dir_keeps_nothing() -> None:
    probe = probe_by_state(on=WORKS, off=WORKS)
    first = decide(MODEL, "Q", mode="auto", cache_dir=None, probe=probe)
    second = decide(MODEL, "Q", mode="auto", cache_dir=None, probe=probe)
    assert first.enabled and second.enabled and probe.calls == [True, True]
