"""Whether llama.cpp's extra buffer types are safe on this machine, decided once and remembered.

llama.cpp's CPU backend can place weights in *extra buffer types*: AMX tiles on Intel CPUs that
have them, and repacked layouts for AVX2/AVX-512/NEON kernels. They are faster where they work,
but on some Intel CPUs with AMX the AMX path faults on the first decode
(``ggml_backend_amx_mul_mat``), and a segmentation fault takes the whole process down with no
message. The model parameter ``use_extra_bufts`` turns them off.

So before the first in-process load on a machine, a child process loads the model with extra
buffers on and decodes a few tokens (the *probe*). A crash there costs nothing: the parent
loads with extra buffers off. If the model also crashes with them off, the file itself is at
fault and the user gets a :class:`~langchain_stream.errors.ModelLoadError` naming it. The
answer is cached per CPU, llama.cpp build and quantization type, so the probe runs once.
``STREAM_LOCAL_EXTRA_BUFFERS=on|off`` skips the probe; ``auto`` (the default) probes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_stream.errors import ModelLoadError

if TYPE_CHECKING:
    from llama_cpp import Llama

ExtraBuffersMode = Literal["auto", "on", "off"]
PROBE_TIMEOUT_S = 180.0
"""A probe that takes longer is abandoned and extra buffers stay off (not cached)."""
PROBE_CTX = 256
PROBE_TOKENS = 4
CACHE_FILE_NAME = "llama-cpu.json"
SETTING = "STREAM_LOCAL_EXTRA_BUFFERS"
_LOADED, _DECODED = "loaded", "decoded"


@dataclass(frozen=True)
class ProbeResult:
    """How one probe child ended."""

    ok: bool
    stage: str
    """The last stage the child reported: ``start``, ``loaded`` or ``decoded``."""
    signal: str | None
    """The signal that killed the child (``SIGSEGV``), if one did."""
    elapsed_ms: float
    detail: str

    @property
    def crashed(self) -> bool:
        """The child died by a signal, as a native crash does."""
        return self.signal is not None


@dataclass(frozen=True)
class ExtraBuffersDecision:
    """Whether models load with extra buffer types, and why."""

    enabled: bool
    source: Literal["setting", "cache", "probe"]
    reason: str
    machine: str
    """The cache key: CPU, llama.cpp build and quantization type."""
    cache_file: str | None = None
    probe_ms: float | None = None

    def describe(self) -> str:
        """One line for ``stream doctor`` and logs."""
        state = "on" if self.enabled else "off"
        where = f" (cached in {self.cache_file})" if self.cache_file else ""
        return f"llama.cpp extra buffer types {state}: {self.reason}{where}; override: {SETTING}"

    def to_metadata(self) -> dict[str, Any]:
        """The JSON form carried in responses' metadata."""
        return {"enabled": self.enabled, "source": self.source, "reason": self.reason}


Probe = Callable[[Path, bool], ProbeResult]


def decide(
    model_path: Path,
    quantization: str,
    *,
    mode: ExtraBuffersMode,
    cache_dir: Path | None,
    probe: Probe | None = None,
) -> ExtraBuffersDecision:
    """Decide whether ``model_path`` may load with extra buffer types on this machine.

    Args:
        model_path: the GGUF file (already checked by
            :func:`~langchain_stream.llama.gguf_file.check_gguf_file`).
        quantization: its quantization type, part of the cache key.
        mode: ``on`` or ``off`` decides outright; ``auto`` uses the cache, else probes.
        cache_dir: where the answer is kept; ``None`` keeps nothing.
        probe: runs one probe; defaults to :func:`run_probe` in a child process.

    Raises:
        ModelLoadError: llama.cpp crashes on the file even with extra buffers off.
    """
    machine = machine_key(quantization)
    if mode != "auto":
        return ExtraBuffersDecision(
            enabled=mode == "on", source="setting", reason=f"{SETTING}={mode}", machine=machine
        )
    cache_file = cache_dir / CACHE_FILE_NAME if cache_dir is not None else None
    with _CACHE_LOCK:
        cached = _read_cache(cache_file).get(machine) if cache_file else None
        if cached is not None:
            return ExtraBuffersDecision(
                enabled=bool(cached["enabled"]),
                source="cache",
                reason=str(cached["reason"]),
                machine=machine,
                cache_file=str(cache_file),
                probe_ms=cached.get("probe_ms"),
            )
        decision = _probe_and_decide(model_path, machine, probe or run_probe)
        if decision is not None and cache_file is not None:
            _write_cache(cache_file, machine, decision)
            decision = ExtraBuffersDecision(**{**asdict(decision), "cache_file": str(cache_file)})
    if decision is None:
        return ExtraBuffersDecision(
            enabled=False,
            source="probe",
            reason="the probe did not finish, so they stay off for now (not cached)",
            machine=machine,
        )
    return decision


def _probe_and_decide(model_path: Path, machine: str, probe: Probe) -> ExtraBuffersDecision | None:
    first = probe(model_path, True)
    if first.ok:
        return ExtraBuffersDecision(
            enabled=True,
            source="probe",
            reason=f"a probe with them on loaded and decoded in {first.elapsed_ms:.0f} ms",
            machine=machine,
            probe_ms=first.elapsed_ms,
        )
    if not first.crashed:
        return None  # an error or a time-out, not a crash: nothing to remember
    second = probe(model_path, False)
    if second.crashed:
        raise ModelLoadError(
            f"llama.cpp crashes ({second.signal}) on {model_path} even with extra buffer types "
            "off: the file is corrupt or of a type this llama.cpp build cannot run; download it "
            "again or set STREAM_LOCAL_MODEL to another GGUF file",
            path=str(model_path),
        )
    if not second.ok:
        return None
    return ExtraBuffersDecision(
        enabled=False,
        source="probe",
        reason=(
            f"a probe with them on crashed with {first.signal} after stage {first.stage!r}; "
            "with them off it ran"
        ),
        machine=machine,
        probe_ms=first.elapsed_ms + second.elapsed_ms,
    )


def run_probe(
    model_path: Path,
    extra_buffers: bool,
    *,
    command: list[str] | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> ProbeResult:
    """Load ``model_path`` and decode a few tokens in a child process; report how it ended.

    Args:
        model_path: the GGUF file.
        extra_buffers: whether the child loads with extra buffer types.
        command: the child's command line (tests replace it); by default this module run as
            ``python -m langchain_stream.llama.extra_buffers PATH on|off``.
        timeout_s: how long the child may take.
    """
    argv = command or [
        sys.executable,
        "-m",
        __name__,
        str(model_path),
        "on" if extra_buffers else "off",
    ]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return ProbeResult(
            ok=False, stage="?", signal=None, elapsed_ms=timeout_s * 1000, detail="timed out"
        )
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    stages = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    stage = stages[-1] if stages else "start"
    if done.returncode < 0:
        name = _signal_name(-done.returncode)
        return ProbeResult(ok=False, stage=stage, signal=name, elapsed_ms=elapsed_ms, detail=name)
    error = (done.stderr.strip().splitlines() or [""])[-1]
    ok = done.returncode == 0 and stage == _DECODED
    return ProbeResult(
        ok=ok, stage=stage, signal=None, elapsed_ms=elapsed_ms, detail="" if ok else error
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# --- the cache -----------------------------------------------------------------------------------

_CACHE_LOCK = threading.Lock()


@functools.cache
def machine_key(quantization: str) -> str:
    """What the answer depends on: the CPU (model and feature flags), llama.cpp's build and
    the quantization type (extra buffer types apply to some types only)."""
    cpu, flags = _cpu_identity()
    try:
        from importlib.metadata import version

        build = f"llama-cpp-python {version('llama-cpp-python')}"
    except Exception:  # not installed: the key still identifies the machine
        build = "llama-cpp-python ?"
    flag_hash = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return f"{cpu} [flags {flag_hash}] | {build} | {quantization}"


def _cpu_identity() -> tuple[str, str]:
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):  # Linux; elsewhere the platform module's names
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = fields.get("flags") or fields.get("Features") or ""
    return model, " ".join(sorted(flags.split()))


def _read_cache(cache_file: Path | None) -> dict[str, dict[str, Any]]:
    if cache_file is None:
        return {}
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: probe again
    return data if isinstance(data, dict) else {}


def _write_cache(cache_file: Path, machine: str, decision: ExtraBuffersDecision) -> None:
    data = _read_cache(cache_file)
    data[machine] = {
        "enabled": decision.enabled,
        "reason": decision.reason,
        "probe_ms": decision.probe_ms,
        "probed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with contextlib.suppress(OSError):  # an unwritable cache only costs a probe next time
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=cache_file.parent, delete=False, suffix=".tmp"
        ) as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(handle.name, cache_file)


# --- constructing a Llama ------------------------------------------------------------------------

_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def model_params(*, extra_buffers: bool) -> Iterator[None]:
    """Within the block, models loaded by ``llama_cpp.Llama`` use (or not) extra buffer types.

    ``Llama`` takes no ``use_extra_bufts`` argument; it builds its model parameters from
    ``llama_cpp.llama_model_default_params()``, so the block wraps that public function.
    """
    import llama_cpp.llama_cpp as bindings

    with _PARAMS_LOCK:
        original = bindings.llama_model_default_params

        def with_extra_buffers() -> Any:
            params = original()
            params.use_extra_bufts = extra_buffers
            return params

        bindings.llama_model_default_params = with_extra_buffers
        try:
            yield
        finally:
            bindings.llama_model_default_params = original


def new_llama(model_path: Path, *, extra_buffers: bool, **kwargs: Any) -> Llama:
    """``llama_cpp.Llama(model_path, **kwargs)`` with extra buffer types on or off."""
    from llama_cpp import Llama

    with model_params(extra_buffers=extra_buffers):
        return Llama(model_path=str(model_path), verbose=False, **kwargs)


def _probe_main(argv: list[str]) -> int:
    """The probe child: load, report, decode a few tokens, report."""
    path, state = Path(argv[0]), argv[1]
    llama = new_llama(path, extra_buffers=state == "on", n_ctx=PROBE_CTX)
    print(_LOADED, flush=True)
    llama.create_completion("The capital of France is", max_tokens=PROBE_TOKENS, temperature=0.0)
    print(_DECODED, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
