"""Health checks behind ``stream doctor``: is each part configured, reachable and working."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from langchain_stream.config import Settings
from langchain_stream.errors import StreamError
from langchain_stream.tier_spec import TierSpec

PROBE_TIMEOUT_S = 5.0


class HealthRow(BaseModel):
    """The state of one part."""

    part: str
    configured: bool
    healthy: bool
    detail: str


def not_configured(part: str, detail: str) -> HealthRow:
    """The row of a part that is not set up: ``detail`` says what would set it up."""
    return HealthRow(part=part, configured=False, healthy=False, detail=detail)


class TierStatus(BaseModel):
    """One configured tier, as ``stream tiers`` lists it."""

    name: str
    kind: str
    level: str
    privacy: str
    capabilities: list[str] | None
    """What the tier declares it supports; ``None``: not declared (routing assumes any)."""
    model: str | None
    base_url: str | None
    context_window: int | None
    cost_per_million_tokens: dict[str, float] | None
    reachable: bool
    detail: str
    """Where the tier was reached, or why it was not."""


def tier_statuses(settings: Settings) -> list[TierStatus]:
    """Every configured tier and whether it is reachable now; never raises for a tier that
    is not. Cheap checks only: the GGUF file exists, the server lists its models, the relays
    and the endpoint answer (no model is loaded and no worker started)."""
    statuses = []
    for spec in settings.tier_specs:
        try:
            detail, reachable = _reach(spec, settings), True
        except (StreamError, OSError, ValueError) as exc:
            detail, reachable = str(exc), False
        statuses.append(TierStatus(**spec.describe(), reachable=reachable, detail=detail))
    return statuses


def _reach(spec: TierSpec, settings: Settings) -> str:
    if spec.kind == "llama_cpp":
        from langchain_stream.tiers.embedded import embedded_model_path

        path = Path(spec.model) if spec.model else embedded_model_path()
        if not path.is_file():
            raise OSError(f"the GGUF file {path} does not exist")
        return f"GGUF file {path}"
    if spec.kind == "openai":
        base = (spec.base_url or "https://api.openai.com/v1").rstrip("/")
        key = spec.api_key.get_secret_value() if spec.api_key else ""
        _http_ok(f"{base}/models", headers={"Authorization": f"Bearer {key}"} if key else {})
        return f"{spec.model} at {base}"
    endpoint = spec.endpoint_id or settings.hpc_endpoint_id
    if not endpoint:
        raise ValueError("no endpoint: set endpoint_id or STREAM_HPC_ENDPOINT_ID")
    parts = [_check_relays(settings)] if settings.relay_urls else []
    if endpoint == "local":
        parts.append("local endpoint (its workers start on first use)")
    else:
        parts.append(_globus_endpoint_status(endpoint))
    return "; ".join(parts)


def check_relays(settings: Settings) -> list[HealthRow]:
    """One row per relay of ``STREAM_RELAY_URLS``, reachable or not: its health check answers,
    and how fast. The relays are asked at once, so one that hangs costs one probe timeout."""
    urls = settings.relay_urls
    if not urls:
        return []
    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(lambda url: _guarded(f"relay {url}", lambda: _probe_relay(url)), urls))


def _probe_relay(url: str) -> str:
    health = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    health = health.rstrip("/") + "/healthz"
    started = time.perf_counter()
    _http_ok(health)
    return f"{health} answered in {(time.perf_counter() - started) * 1000:.0f} ms"


def _check_relays(settings: Settings, rows: list[HealthRow] | None = None) -> str:
    """The relay set in one line: usable while one relay answers (the channels fail over to
    it); the rows of :func:`check_relays` say which do not."""
    if settings.relay_secret is None:
        raise ValueError("STREAM_RELAY_URLS is set but STREAM_RELAY_SECRET is not")
    rows = check_relays(settings) if rows is None else rows
    healthy = sum(row.healthy for row in rows)
    if not healthy:
        raise OSError("no relay answers: " + "; ".join(f"{r.part}: {r.detail}" for r in rows))
    return f"{healthy} of {len(rows)} relays healthy"


def check_all(settings: Settings) -> list[HealthRow]:
    """Check the judge and every tier; never raises for an unhealthy part.

    The default tiers get their deep checks (the local model generates, the local HPC
    endpoint answers); a ``[[tiers]]`` list gets one row per tier from :func:`tier_statuses`.
    """
    rows = [check_judge(settings), check_routing_shares(settings)]
    relays = check_relays(settings)
    if not settings.tiers:
        return [
            *rows,
            check_local(settings),
            check_hpc(settings, relays),
            *relays,
            check_cloud(settings),
        ]
    for status in tier_statuses(settings):
        rows.append(
            HealthRow(
                part=f"tier {status.name} ({status.kind}, {status.level}, {status.privacy})",
                configured=True,
                healthy=status.reachable,
                detail=status.detail,
            )
        )
    return [*rows, *relays]


def _guarded(part: str, check: Callable[[], str]) -> HealthRow:
    try:
        return HealthRow(part=part, configured=True, healthy=True, detail=check())
    except (StreamError, OSError, ValueError) as exc:
        return HealthRow(part=part, configured=True, healthy=False, detail=str(exc))


def check_judge(settings: Settings) -> HealthRow:
    """The configured judge loads and judges a query."""
    from langchain_stream.judge import resolve_judge

    def run() -> str:
        judgment = resolve_judge(settings.judge).judge("What is the boiling point of water?")
        return f"{judgment.judge}: {judgment.complexity.value} in {judgment.latency_ms:.2f} ms"

    return _guarded("judge", run)


def check_routing_shares(settings: Settings) -> HealthRow:
    """Share of each class over the last ``judge_share_window`` requests of the audit log,
    beside the calibration target: drift shows here. Informational, never unhealthy."""
    from langchain_stream.judge.shares import ShareWindow
    from langchain_stream.policies.engine import PolicyEngine

    store = PolicyEngine(settings).store
    if store is None:
        return not_configured("routing shares", "no audit log (STREAM_DATABASE_URL=none)")

    def run() -> str:
        window = ShareWindow(settings.judge_share_window, target=settings.judge_target)
        for entry in store.audit_entries(limit=settings.judge_share_window):
            window.add(entry["complexity"], entry["tier"])
        return window.snapshot().summary()

    return _guarded("routing shares", run)


def check_local(settings: Settings) -> HealthRow:
    """The local GGUF file exists, loads, and generates."""
    from langchain_stream.tiers.local import ChatLocal

    def run() -> str:
        model = ChatLocal(max_tokens=4)
        started = time.perf_counter()
        model.load()
        load_s = time.perf_counter() - started
        loaded = model.load()
        model.invoke("Hi")
        return (
            f"{model.resolved_model_path} (loaded and warmed up in {load_s:.1f} s); "
            f"{loaded.extra_buffers.describe()}"
        )

    return _guarded("local tier", run)


def check_hpc(settings: Settings, relays: list[HealthRow] | None = None) -> HealthRow:
    """The HPC tier: one of its relays answers its health check and its endpoint is up.

    ``relays`` are the rows of :func:`check_relays` when already taken (each relay is then
    asked once).

    With ``STREAM_HPC_ENDPOINT_ID=local`` the local endpoint is started and answers a
    one-word request through its relay. For a Globus Compute endpoint, the endpoint's status
    is asked of Globus only when the SDK is already logged in (a check never prompts).
    """
    if not settings.hpc_endpoint_id:
        return not_configured(
            "hpc tier",
            "not configured: set STREAM_HPC_ENDPOINT_ID (`local` runs it on this machine) and "
            "STREAM_RELAY_URLS",
        )

    def run() -> str:
        parts = []
        if settings.relay_urls:
            parts.append(_check_relays(settings, relays))
        elif settings.hpc_endpoint_id != "local":
            parts.append("no relay configured: answers come in batch mode (STREAM_RELAY_URLS)")
        if settings.hpc_endpoint_id == "local":
            parts.append(_probe_local_endpoint(settings))
        else:
            parts.append(_globus_endpoint_status(settings.hpc_endpoint_id))
        return "; ".join(parts)

    return _guarded("hpc tier", run)


def _probe_local_endpoint(settings: Settings) -> str:
    from langchain_stream.hpc.chat_model import ChatHPC
    from langchain_stream.hpc.local_endpoint import LocalEndpoint

    model = ChatHPC.from_settings(settings, max_tokens=4)
    started = time.perf_counter()
    endpoint = model.get_executor()
    if isinstance(endpoint, LocalEndpoint):
        endpoint.start()  # the workers load their model
    start_s = time.perf_counter() - started
    started = time.perf_counter()
    ttft_ms: float | None = None
    last = None
    for chunk in model.stream("Hi"):
        if ttft_ms is None and chunk.content:
            ttft_ms = (time.perf_counter() - started) * 1000.0
        last = chunk
    hpc = last.response_metadata.get("hpc", {}) if last is not None else {}
    where = hpc.get("relay_url") or hpc.get("mode", "?")
    return (
        f"local endpoint: {settings.hpc_local_workers} worker(s) up in {start_s:.1f} s, "
        f"first token in {ttft_ms or 0:.0f} ms through {where}"
    )


def _globus_endpoint_status(endpoint_id: str) -> str:
    from langchain_stream.hpc.status import GlobusLoginRequired, globus_status_client

    try:
        client = globus_status_client()
    except GlobusLoginRequired as exc:
        return f"endpoint {endpoint_id}: {exc}"
    try:
        status = client.get_endpoint_status(endpoint_id)
    except Exception as exc:  # the SDK's own errors: report them, never crash the check
        raise OSError(f"could not get the status of endpoint {endpoint_id}: {exc}") from exc
    state = status.get("status", "unknown")
    if state != "online":
        raise OSError(f"endpoint {endpoint_id} is {state}")
    return f"endpoint {endpoint_id}: online"


def check_cloud(settings: Settings) -> HealthRow:
    """The cloud API answers its model listing with the configured key."""
    if not settings.cloud_model:
        return not_configured(
            "cloud tier", "not configured: set STREAM_CLOUD_MODEL (and STREAM_CLOUD_API_KEY)"
        )

    def run() -> str:
        base = (settings.cloud_base_url or "https://api.openai.com/v1").rstrip("/")
        key = settings.cloud_api_key.get_secret_value() if settings.cloud_api_key else ""
        _http_ok(f"{base}/models", headers={"Authorization": f"Bearer {key}"} if key else {})
        return f"{settings.cloud_model} at {base}"

    return _guarded("cloud tier", run)


def _http_ok(url: str, headers: dict[str, str] | None = None) -> None:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            if response.status >= 400:
                raise OSError(f"{url} answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise OSError(f"{url} answered HTTP {exc.code}") from exc
    except urllib.error.URLError as exc:
        raise OSError(f"{url} is unreachable: {exc.reason}") from exc
