"""Running the server: ``stream serve`` → uvicorn, with N worker processes.

With no API key configured the server lets every request in; it therefore refuses to bind
anything but a loopback interface without keys, so an open gateway to the tiers (and the
cloud budget behind them) can only be reached from the machine itself.

Several workers (``--workers N``) are separate processes behind uvicorn's shared socket: they
share the database (``STREAM_DATABASE_URL``: ledger, budgets, conversations) but not memory,
so per-key rate limits are counted per worker unless ``STREAM_RATE_LIMIT_STORAGE`` names a
shared store (e.g. ``redis://``). Each worker loads its own copy of the local model.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from typing import Any

from langchain_stream.config import Settings
from langchain_stream.errors import ConfigurationError
from langchain_stream.server.access_log import LOGGER_NAME as ACCESS_LOGGER
from langchain_stream.server.auth import KeyStore
from langchain_stream.server.protocol import HTTP_PROTOCOL

logger = logging.getLogger("langchain_stream.server")

APP_FACTORY = "langchain_stream.server.app:app_from_settings"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: assume it is reachable
        return False


def check_exposure(host: str, keys: KeyStore) -> None:
    """Refuse to serve without API keys on anything but loopback.

    Raises:
        ConfigurationError: ``host`` is not loopback and no key is configured.
    """
    if keys.enabled:
        return
    if not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without API keys: set STREAM_API_KEYS or "
            "STREAM_API_KEYS_FILE (e.g. a key from `openssl rand -hex 32`), or bind 127.0.0.1"
        )
    logger.warning("no API keys configured: any program on this machine may call the server")


def log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging configuration, with the access log written by the app (at the end
    of each response) rather than by uvicorn (at its start)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["stream_access"] = {
        "formatter": "default",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    # The server's own lines (the model loading, warnings) beside uvicorn's, on stderr.
    config["loggers"]["langchain_stream.server"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    config["loggers"][ACCESS_LOGGER] = {
        "handlers": ["stream_access"],
        "level": "INFO" if access_log else "WARNING",
        "propagate": False,
    }
    return config


def run_server(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    access_log: bool = True,
) -> None:
    """Serve the app from the settings with uvicorn until interrupted.

    Args:
        settings: keys and server defaults (host, port, workers).
        host: interface to bind; ``settings.server_host`` when ``None``.
        port: TCP port; ``settings.server_port`` when ``None``.
        workers: processes; ``settings.server_workers`` when ``None``.
        access_log: log one line per request.

    Raises:
        ConfigurationError: no keys on a non-loopback host, or a bad keys file.
    """
    import uvicorn

    host = host or settings.server_host
    check_exposure(host, KeyStore.from_settings(settings))
    uvicorn.run(
        APP_FACTORY,
        factory=True,  # each worker builds its app from the environment's settings
        host=host,
        port=port or settings.server_port,
        workers=workers or settings.server_workers,
        http=HTTP_PROTOCOL,  # headers and the first event leave together
        access_log=False,  # the app's own access log (see log_config)
        log_config=log_config(access_log),
        server_header=False,  # the server's software is nobody's business
        log_level="info",
    )
