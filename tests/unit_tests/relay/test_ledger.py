"""The relay's admission and accounting rules, with a fake clock: no sockets, no event loop."""

from __future__ import annotations

import pytest

from langchain_stream.errors import ConfigurationError
from langchain_stream.relay.ledger import RelayLedger, Verdict
from langchain_stream.relay.limits import RelayLimits
from langchain_stream.relay.tokens import new_channel_id

KIB = 1_024
TTL_S = 3_600.0


def admit(
    ledger: RelayLedger,
    channel_id: str,
    role: str = "producer",
    address: str = "10.0.0.1",
    *,
    now: float = 0.0,
    ttl_s: float = TTL_S,
) -> Verdict | None:
    return ledger.admit(channel_id, role, address, expires_in_s=ttl_s, now=now)


def connect_and_close(ledger: RelayLedger, address: str, now: float = 0.0) -> Verdict | None:
    """What one loop of a connect-and-close flood leaves: a producer that joined and left."""
    channel_id = new_channel_id()
    verdict = admit(ledger, channel_id, address=address, now=now)
    if verdict is None:
        ledger.detach(channel_id, "producer", now=now)
    return verdict


# ---------------------------------------------------------------------------- the limits object


def test_default_limits_are_the_documented_ones() -> None:
    limits = RelayLimits()
    assert limits.max_frame_bytes == 65_536
    assert (limits.max_buffered_frames, limits.max_buffered_bytes) == (1_024, 1_048_576)
    assert limits.max_buffered_bytes_per_client == 16 * 1_048_576
    assert limits.max_buffered_bytes_total == 256 * 1_048_576
    assert (limits.max_channels, limits.max_channels_per_client) == (10_000, 256)
    assert (limits.pairing_timeout_s, limits.unattended_timeout_s) == (60.0, 10.0)
    assert (limits.idle_timeout_s, limits.close_timeout_s) == (120.0, 5.0)
    assert limits.max_ended_channels == 100_000
    # One address cannot hold the whole relay.
    assert limits.max_channels_per_client * 10 < limits.max_channels
    assert limits.max_buffered_bytes_per_client * 10 < limits.max_buffered_bytes_total


@pytest.mark.parametrize(
    "bad", [{"max_channels": 0}, {"pairing_timeout_s": -1.0}, {"max_frame_bytes": True}]
)
def test_limits_must_be_positive(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="must be positive"):
        RelayLimits(**bad)  # type: ignore[arg-type]


def test_sweep_interval_follows_the_shortest_timeout() -> None:
    assert RelayLimits(unattended_timeout_s=2.0).sweep_interval_s == 0.5
    off = RelayLimits(idle_timeout_s=None, pairing_timeout_s=None, unattended_timeout_s=None)
    assert off.sweep_interval_s is None


# ---------------------------------------------------------------------------- channels held


def test_what_a_client_leaves_behind_counts_against_it_and_no_one_else() -> None:
    ledger = RelayLedger(RelayLimits(max_channels=100, max_channels_per_client=10))
    verdicts = [connect_and_close(ledger, "10.0.0.66") for _ in range(1_000)]
    assert verdicts.count(None) == 10
    assert set(verdicts[10:]) == {Verdict.CLIENT_CHANNELS}
    assert ledger.channels == 10
    assert ledger.channels_held_by("10.0.0.66") == 10
    # The relay is far from full, so everyone else gets in.
    assert admit(ledger, new_channel_id(), "consumer", "10.0.0.2") is None


def test_spreading_over_addresses_meets_the_global_limit_with_a_clear_refusal() -> None:
    ledger = RelayLedger(RelayLimits(max_channels=20, max_channels_per_client=5))
    for host in range(2, 10):
        for _ in range(5):
            connect_and_close(ledger, f"127.0.0.{host}")
    assert ledger.channels == 20
    assert admit(ledger, new_channel_id(), address="127.0.0.99") is Verdict.CHANNEL_LIMIT


def test_a_channel_counts_once_per_address_and_the_second_side_joins_anew() -> None:
    ledger = RelayLedger(RelayLimits(max_channels_per_client=1))
    cid = new_channel_id()
    assert admit(ledger, cid, "producer", "10.0.0.1") is None
    # Both sides on one machine: the channel is one channel on that address's account.
    assert admit(ledger, cid, "consumer", "10.0.0.1") is None
    assert ledger.channels_held_by("10.0.0.1") == 1
    # A new channel from the same address is over its quota; another address is not.
    assert admit(ledger, new_channel_id(), address="10.0.0.1") is Verdict.CLIENT_CHANNELS
    assert admit(ledger, new_channel_id(), address="10.0.0.2") is None


def test_forgetting_frees_the_quota() -> None:
    ledger = RelayLedger(RelayLimits(max_channels_per_client=1))
    cid = new_channel_id()
    assert admit(ledger, cid) is None
    assert admit(ledger, new_channel_id()) is Verdict.CLIENT_CHANNELS
    ledger.forget(cid)
    assert ledger.channels_held_by("10.0.0.1") == 0
    assert admit(ledger, new_channel_id()) is None


def test_a_role_joins_once_and_a_refusal_changes_nothing() -> None:
    ledger = RelayLedger(RelayLimits())
    cid = new_channel_id()
    assert admit(ledger, cid) is None
    assert admit(ledger, cid, address="10.0.0.9") is Verdict.ROLE_TAKEN
    assert ledger.channels_held_by("10.0.0.9") == 0
    with pytest.raises(ValueError, match="unknown role"):
        admit(ledger, cid, "admin")


# ---------------------------------------------------------------------------- buffered bytes


def test_buffered_bytes_are_bounded_per_channel_per_address_and_in_total() -> None:
    limits = RelayLimits(
        max_buffered_bytes=100 * KIB,
        max_buffered_bytes_per_client=250 * KIB,
        max_buffered_bytes_total=400 * KIB,
    )
    ledger = RelayLedger(limits)
    a1, a2, a3, b1 = (new_channel_id() for _ in range(4))
    for cid in (a1, a2, a3):
        assert admit(ledger, cid, address="10.0.0.1") is None
    assert admit(ledger, b1, address="10.0.0.2") is None
    assert ledger.hold(a1, 100 * KIB) is None
    assert ledger.hold(a1, 1) is Verdict.CHANNEL_BUFFER
    assert ledger.hold(a2, 100 * KIB) is None
    assert ledger.hold(a3, 60 * KIB) is Verdict.CLIENT_BYTES
    assert ledger.hold(a3, 50 * KIB) is None
    assert ledger.bytes_held_by("10.0.0.1") == 250 * KIB
    assert ledger.hold(b1, 100 * KIB) is None
    assert ledger.hold(b1, 0) is None
    assert ledger.buffered_bytes == 350 * KIB
    # The ceiling: another address's room is capped by what the relay may hold in total.
    b2 = new_channel_id()
    assert admit(ledger, b2, address="10.0.0.3") is None
    assert ledger.hold(b2, 51 * KIB) is Verdict.MEMORY_FULL
    assert ledger.hold(b2, 50 * KIB) is None
    assert ledger.buffered_bytes == 400 * KIB
    # Full: new producers are refused up front, consumers (who drain) are not.
    assert admit(ledger, new_channel_id(), address="10.0.0.4") is Verdict.MEMORY_FULL
    assert admit(ledger, a1, "consumer", "10.0.0.4") is None
    ledger.release(a1, 100 * KIB)
    assert ledger.buffered_bytes == 300 * KIB
    ledger.forget(a2)
    ledger.release_all(a3)
    assert ledger.bytes_held_by("10.0.0.1") == 0
    assert ledger.buffered_bytes == 150 * KIB


def test_a_departed_producer_flood_from_many_addresses_stays_under_the_ceiling() -> None:
    limits = RelayLimits(max_buffered_bytes_per_client=4 * KIB * KIB)
    ledger = RelayLedger(limits)
    frame = 64 * KIB
    stored = 0
    for host in range(2, 10):
        for _ in range(40):
            cid = new_channel_id()
            if admit(ledger, cid, address=f"127.0.0.{host}") is not None:
                continue
            for _ in range(16):  # 1 MiB, then leave
                if ledger.hold(cid, frame) is None:
                    stored += frame
            ledger.detach(cid, "producer", now=0.0)
    assert ledger.buffered_bytes == stored <= 8 * 4 * KIB * KIB
    assert max(ledger.bytes_held_by(f"127.0.0.{h}") for h in range(2, 10)) <= 4 * KIB * KIB


def test_frame_count_bound_and_release() -> None:
    ledger = RelayLedger(RelayLimits(max_buffered_frames=2))
    cid = new_channel_id()
    admit(ledger, cid)
    assert ledger.hold(cid, 10) is None
    assert ledger.hold(cid, 10) is None
    assert ledger.hold(cid, 10) is Verdict.CHANNEL_BUFFER
    ledger.release(cid, 10)
    assert ledger.hold(cid, 10) is None


# ---------------------------------------------------------------------------- timeouts


def test_a_channel_without_both_sides_is_overdue_after_the_pairing_timeout() -> None:
    ledger = RelayLedger(RelayLimits(pairing_timeout_s=30.0, unattended_timeout_s=5.0))
    waiting, paired = new_channel_id(), new_channel_id()
    admit(ledger, waiting, "consumer", now=0.0)
    admit(ledger, paired, "consumer", now=0.0)
    admit(ledger, paired, "producer", now=10.0)
    assert ledger.overdue(29.9) == []
    assert ledger.overdue(30.0) == [(waiting, Verdict.PAIRING_TIMEOUT)]


def test_a_channel_nobody_is_attached_to_is_overdue_after_the_unattended_timeout() -> None:
    ledger = RelayLedger(RelayLimits(pairing_timeout_s=60.0, unattended_timeout_s=5.0))
    left = new_channel_id()
    admit(ledger, left, now=0.0)
    ledger.hold(left, 1_000)
    ledger.detach(left, "producer", now=1.0)
    assert ledger.overdue(5.9) == []
    assert ledger.overdue(6.0) == [(left, Verdict.UNATTENDED)]
    # The other side arriving in time keeps it.
    admit(ledger, left, "consumer", now=5.5)
    assert ledger.overdue(6.0) == []


# ---------------------------------------------------------------------------- single use


def test_an_ended_channel_never_reopens_while_its_tokens_live() -> None:
    ledger = RelayLedger(RelayLimits())
    cid = new_channel_id()
    admit(ledger, cid, "producer", now=0.0, ttl_s=100.0)
    admit(ledger, cid, "consumer", now=0.0, ttl_s=100.0)
    ledger.forget(cid)
    for role in ("producer", "consumer"):
        assert admit(ledger, cid, role, now=1.0) is Verdict.CHANNEL_ENDED
        assert admit(ledger, cid, role, now=99.0) is Verdict.CHANNEL_ENDED
    assert ledger.ended_channels == 1
    # Once every token for it has expired (the relay refuses those anyway), memory is freed.
    assert admit(ledger, new_channel_id(), now=100.0) is None
    assert ledger.ended_channels == 0


def test_ended_channel_memory_is_bounded_and_full_means_refusal_not_forgetting() -> None:
    ledger = RelayLedger(RelayLimits(max_ended_channels=3))
    ended = []
    for _ in range(3):
        cid = new_channel_id()
        admit(ledger, cid, now=0.0, ttl_s=50.0)
        ledger.forget(cid)
        ended.append(cid)
    assert admit(ledger, new_channel_id(), now=10.0) is Verdict.ENDED_MEMORY_FULL
    assert all(admit(ledger, cid, now=10.0) is Verdict.CHANNEL_ENDED for cid in ended)
    assert admit(ledger, new_channel_id(), now=50.0) is None


def test_a_check_during_the_handshake_registers_nothing() -> None:
    ledger = RelayLedger(RelayLimits(max_channels_per_client=1))
    cid = new_channel_id()
    for _ in range(3):  # handshakes that never upgrade leave nothing behind
        assert ledger.check(cid, "producer", "10.0.0.1", now=0.0) is None
    assert (ledger.channels, ledger.channels_held_by("10.0.0.1")) == (0, 0)
    assert admit(ledger, cid) is None
    assert ledger.check(cid, "producer", "10.0.0.1", now=0.0) is Verdict.ROLE_TAKEN
