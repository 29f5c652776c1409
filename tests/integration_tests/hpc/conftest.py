"""Fixtures of the HPC tests: the shared local endpoint and its relay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_stream.hpc import LocalEndpoint
from tests.integration_tests.hpc.helpers import shared_endpoint, shutdown_shared_endpoint


@pytest.fixture(scope="session", autouse=True)
def _shared_endpoint_lifetime() -> Iterator[None]:
    """Whoever starts the shared endpoint (a fixture or a standard suite), it ends here."""
    yield
    shutdown_shared_endpoint()


@pytest.fixture(scope="session")
def endpoint() -> LocalEndpoint:
    """The shared local endpoint, started."""
    endpoint = shared_endpoint()
    endpoint.start()
    return endpoint
