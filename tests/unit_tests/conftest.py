"""Unit tests run without a network: every socket is refused unless the test is marked.

A test marked ``loopback`` may connect to 127.0.0.1 and ::1 only (a server it starts itself);
any other address is refused before a packet leaves. Unix sockets stay allowed: asyncio's event
loops wake themselves through a socket pair.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket, socket_allow_hosts

LOOPBACK_HOSTS = ["127.0.0.1", "::1"]


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("loopback"):
        socket_allow_hosts(LOOPBACK_HOSTS, allow_unix_socket=True)
    else:
        disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
