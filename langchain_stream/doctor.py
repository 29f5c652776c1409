"""Health checks behind ``stream doctor``: is each part configured, reachable and working."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

from pydantic import BaseModel

from langchain_stream.config import Settings
from langchain_stream.errors import StreamError

PROBE_TIMEOUT_S = 5.0


class HealthRow(BaseModel):
    """The state of one part."""

    part: str
    configured: bool
    healthy: bool
    detail: str


def check_all(settings: Settings) -> list[HealthRow]:
    """Check the judge and every tier; never raises for an unhealthy part."""
    return [
        check_judge(settings),
        check_local(settings),
        check_hpc(settings),
        check_cloud(settings),
    ]


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


def check_local(settings: Settings) -> HealthRow:
    """The local GGUF file exists, loads, and generates."""
    from langchain_stream.tiers.local import ChatLocal

    def run() -> str:
        model = ChatLocal(max_tokens=4)
        started = time.perf_counter()
        model.load()
        load_s = time.perf_counter() - started
        model.invoke("Hi")
        return f"{model.resolved_model_path} (loaded and warmed up in {load_s:.1f} s)"

    return _guarded("local tier", run)


def check_hpc(settings: Settings) -> HealthRow:
    """The HPC tier's endpoint id is set and its relays answer their health check."""
    if not settings.hpc_endpoint_id:
        return HealthRow(
            part="hpc tier",
            configured=False,
            healthy=False,
            detail="not configured: set STREAM_HPC_ENDPOINT_ID and STREAM_RELAY_URLS",
        )

    def run() -> str:
        if not settings.relay_urls:
            raise ValueError("STREAM_RELAY_URLS is empty: the HPC tier needs at least one relay")
        for url in settings.relay_urls:
            health = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
            _http_ok(health.rstrip("/") + "/healthz")
        return (
            f"endpoint {settings.hpc_endpoint_id}; relays healthy: {', '.join(settings.relay_urls)}"
        )

    return _guarded("hpc tier", run)


def check_cloud(settings: Settings) -> HealthRow:
    """The cloud API answers its model listing with the configured key."""
    if not settings.cloud_model:
        return HealthRow(
            part="cloud tier",
            configured=False,
            healthy=False,
            detail="not configured: set STREAM_CLOUD_MODEL (and STREAM_CLOUD_API_KEY)",
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
