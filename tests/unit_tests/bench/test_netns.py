"""The failure bench's namespace addressing, without creating any namespace."""

from __future__ import annotations

import ipaddress
import random

import pytest

from langchain_stream.bench.netns import NetnsUnavailableError, pick_subnet


def test_the_relays_subnet_is_private_and_overlaps_no_route_of_the_machine() -> None:
    taken = [ipaddress.ip_network("10.192.0.0/11"), ipaddress.ip_network("10.230.0.0/16")]
    for seed in range(200):
        subnet = pick_subnet(taken, random.Random(seed))
        assert subnet.prefixlen == 24 and subnet.is_private
        assert subnet.subnet_of(ipaddress.ip_network("10.192.0.0/10"))
        assert not any(subnet.overlaps(net) for net in taken)


def test_a_machine_whose_routes_cover_the_pool_gets_a_clear_error() -> None:
    with pytest.raises(NetnsUnavailableError, match=r"no free /24 in 10\.192\.0\.0/10"):
        pick_subnet([ipaddress.ip_network("10.0.0.0/8")], random.Random(0))
