"""Whether an HPC endpoint can take a request now, from its status report.

Globus Compute reports an endpoint as ``{"status": "online" | "offline", "details":
{"total_workers", "idle_workers", "pending_tasks", "outstanding_tasks", ...}}``
(``Client.get_endpoint_status``); a :class:`~langchain_stream.hpc.LocalEndpoint` reports
itself in the same shape. An endpoint that is offline, has no worker running (cold: the first
task waits for a batch job, often minutes) or has more tasks waiting than allowed (queued) is
not ready, and the router sends the request elsewhere (docs/design.md#request-path, health).

Reading a Globus endpoint's status never starts a login: without stored Globus tokens (or a
client id and secret) the check says so instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_stream.errors import ConfigurationError


class GlobusLoginRequired(ConfigurationError):
    """No Globus login is stored, so Globus cannot be asked anything without a prompt."""


def not_ready_reason(
    endpoint: str, status: Mapping[str, Any], *, max_queued_tasks: int = 0
) -> str | None:
    """Why the endpoint of this status report should not get a request now, or ``None``.

    Args:
        endpoint: How to name the endpoint in the reason.
        status: The report, in Globus Compute's shape; missing details count as ready.
        max_queued_tasks: Tasks waiting for a worker that are still acceptable.
    """
    state = str(status.get("status") or "unknown").lower()
    if state != "online":
        return f"HPC endpoint {endpoint} is {state}"
    details = status.get("details") or {}
    if details.get("total_workers") == 0:
        return f"HPC endpoint {endpoint} is cold: no worker is running yet"
    pending = int(details.get("pending_tasks") or 0)
    if pending > max_queued_tasks:
        return f"HPC endpoint {endpoint} is queued: {pending} task(s) waiting for a worker"
    return None


def globus_status_client() -> Any:
    """A ``globus_compute_sdk.Client`` that can read endpoint status without a login prompt.

    Raises:
        ConfigurationError: The SDK is missing.
        GlobusLoginRequired: No Globus login is stored.
    """
    try:
        from globus_compute_sdk import Client
        from globus_compute_sdk.sdk.auth.globus_app import get_globus_app
    except ImportError as exc:
        raise ConfigurationError(
            "globus-compute-sdk is missing: pip install 'langchain-stream[hpc]'"
        ) from exc
    app = get_globus_app()
    client = Client(app=app, do_version_check=False)  # adds the Compute scope to the app
    ensure_logged_in(client)
    return client


def ensure_logged_in(client: Any) -> None:
    """Raise unless ``client`` can call Globus without asking anyone to log in.

    Raises:
        GlobusLoginRequired: Its Globus app has no usable tokens.
    """
    app = getattr(client, "app", None)
    if app is not None and app.login_required():
        raise GlobusLoginRequired(
            "not logged in to Globus, so its status is unknown (the first request asks you "
            "to log in; or set GLOBUS_COMPUTE_CLIENT_ID and GLOBUS_COMPUTE_CLIENT_SECRET)"
        )


__all__ = ["GlobusLoginRequired", "ensure_logged_in", "globus_status_client", "not_ready_reason"]
