"""The unit tests' network isolation holds: no socket without the mark, loopback only with it."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError, SocketConnectBlockedError


def test_an_unmarked_test_cannot_open_an_internet_socket() -> None:
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_an_unmarked_test_cannot_reach_loopback_either() -> None:
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


@pytest.mark.loopback
def test_a_loopback_test_talks_to_its_own_server_on_127_0_0_1() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"ping")
                assert peer.recv(4) == b"ping"


@pytest.mark.loopback
def test_a_loopback_test_cannot_reach_another_address() -> None:
    # A documentation address (RFC 5737): refused by the guard before anything is sent.
    with pytest.raises(SocketConnectBlockedError), socket.socket() as sock:
        sock.connect(("192.0.2.1", 80))
