"""Mid-stream failover in the protocol core, fed bytes and a fake clock only: resend window,
ACKs, pings, duplicates."""

from __future__ import annotations

import pytest

from langchain_stream.errors import (
    ConfigurationError,
    RelayIntegrityError,
    RelayLimitError,
    RelayProtocolError,
)
from langchain_stream.relay.failover import (
    AckSchedule,
    FailoverLimits,
    PingSchedule,
    ResendWindow,
)
from langchain_stream.relay.protocol import (
    AckEvent,
    ChannelOpener,
    ChannelSealer,
    Direction,
    DuplicateEvent,
    FinalEvent,
    TokensEvent,
    new_channel_key,
)
from langchain_stream.relay.tokens import new_channel_id

Channel = tuple[str, bytes]


@pytest.fixture
def channel() -> Channel:
    return new_channel_id(), new_channel_key()


def produce(
    channel: Channel, tokens: list[str], window: ResendWindow
) -> tuple[ChannelSealer, list[bytes]]:
    """Seal one frame per token, holding each in the window as the producer does."""
    sealer = ChannelSealer(channel[1], channel[0])
    frames = []
    for token in tokens:
        seq = sealer.seq
        frame = sealer.seal_token(token)
        window.push(seq, frame, now=0.0)
        frames.append(frame)
    return sealer, frames


def texts(events: list[object]) -> list[str]:
    return [t for e in events if isinstance(e, TokensEvent) for t in e.tokens]


# ---------------------------------------------------------------------------- the whole story


def test_failover_resumes_every_token_once_in_order(channel: Channel) -> None:
    """Relay A carries frames 0-5, the consumer acknowledged 0-2 and holds 0-4; A dies with
    frame 5 in flight. On relay B the producer resends 3-5, the consumer drops 3-4 and takes
    5 on, then the stream goes on and ends with matching counts."""
    window = ResendWindow()
    sealer, frames = produce(channel, [f"t{i}" for i in range(6)], window)
    opener = ChannelOpener(channel[1], channel[0])
    consumer_back = ChannelSealer(channel[1], channel[0], direction=Direction.TO_PRODUCER)
    producer_in = ChannelOpener(channel[1], channel[0], direction=Direction.TO_PRODUCER)

    got = [opener.open(f) for f in frames[:3]]
    ack = producer_in.open(consumer_back.seal_ack(opener.next_seq))
    assert ack == AckEvent(3)
    assert window.ack(ack.next_seq, now=1.0) == 3
    got += [opener.open(f) for f in frames[3:5]]  # frame 5 is lost with relay A

    # Failover: both sides on relay B.
    opener.resync()
    reconnect_ack = producer_in.open(consumer_back.seal_ack(opener.next_seq))
    assert reconnect_ack == AckEvent(5)
    resent = window.resend(now=2.0)
    assert resent == frames[3:6]  # the very same bytes: same nonces, same plaintext
    events = [opener.open(f) for f in resent]
    assert events[:2] == [DuplicateEvent(3), DuplicateEvent(4)]
    got += events
    window.ack(producer_in.open(consumer_back.seal_ack(opener.next_seq)).next_seq, now=2.1)
    assert len(window) == 0 and window.bytes == 0

    got.append(opener.open(sealer.seal_token("t6")))
    final = opener.open(sealer.seal_final())
    assert texts(got) == [f"t{i}" for i in range(7)]
    assert final == FinalEvent(frames=7, tokens=7, usage={})


# ---------------------------------------------------------------------------- resend window


def test_window_holds_until_acknowledged(channel: Channel) -> None:
    window = ResendWindow()
    _, frames = produce(channel, ["a", "b", "c"], window)
    assert len(window) == 3
    assert window.bytes == sum(map(len, frames))
    assert window.ack(2, now=1.0) == 2
    assert window.resend(now=1.0) == frames[2:]
    assert window.ack(1, now=1.0) == 0  # an older, cumulative ACK changes nothing
    assert window.acked == 2


def test_window_limit_in_frames(channel: Channel) -> None:
    window = ResendWindow(FailoverLimits(max_unacked_frames=2))
    sealer, _ = produce(channel, ["a", "b"], window)
    assert not window.room_for(10)
    with pytest.raises(RelayLimitError, match="resend window full: 2 frames"):
        window.push(sealer.seq, sealer.seal_token("c"), now=0.0)
    window.ack(1, now=0.0)
    assert window.room_for(10)


def test_window_limit_in_bytes(channel: Channel) -> None:
    sealer = ChannelSealer(channel[1], channel[0])
    frame = sealer.seal_token("x" * 100)
    window = ResendWindow(FailoverLimits(max_unacked_bytes=len(frame) + 10))
    window.push(0, frame, now=0.0)
    big = sealer.seal_token("y")
    assert not window.room_for(len(big))
    with pytest.raises(RelayLimitError, match=r"limits 1024 frames / \d+ bytes"):
        window.push(1, big, now=0.0)


def test_window_refuses_gaps_and_acks_for_unsent_frames(channel: Channel) -> None:
    window = ResendWindow()
    produce(channel, ["a"], window)
    with pytest.raises(RelayProtocolError, match="expects sequence 1, not 5"):
        window.push(5, b"x" * 40, now=0.0)
    with pytest.raises(RelayProtocolError, match="only 1 frames were sent"):
        window.ack(3, now=0.0)


def test_window_stall_detection() -> None:
    window = ResendWindow(FailoverLimits(ack_timeout_s=2.0, ack_interval_s=0.25))
    assert not window.stalled(100.0)  # nothing waiting: never stalled
    window.push(0, b"f0", now=10.0)
    assert not window.stalled(11.9)
    assert window.stalled(12.1)
    window.push(1, b"f1", now=12.1)
    window.ack(1, now=12.2)  # progress restarts the clock
    assert not window.stalled(14.0)
    assert window.stalled(14.3)
    window.resend(now=15.0)  # a new relay: the consumer has resume_timeout_s to come
    assert not window.stalled(19.9)
    assert window.stalled(20.1)
    window.ack(1, now=20.0)  # it came: back to the ACK timeout
    assert not window.stalled(21.9)
    assert window.stalled(22.1)


# ---------------------------------------------------------------------------- consumer side


def test_duplicates_dropped_only_right_after_failover(channel: Channel) -> None:
    sealer = ChannelSealer(channel[1], channel[0])
    frames = [sealer.seal_token(str(i)) for i in range(4)]
    opener = ChannelOpener(channel[1], channel[0])
    for f in frames[:3]:
        opener.open(f)
    with pytest.raises(RelayIntegrityError, match="replayed frame: sequence 1, expected 3"):
        opener.open(frames[1])  # no failover: a repeat is a replay, as before


def test_frame_replayed_across_two_relays_is_rejected(channel: Channel) -> None:
    """A frame seen on relay A, replayed on relay B once the resumed stream has moved on."""
    sealer = ChannelSealer(channel[1], channel[0])
    frames = [sealer.seal_token(str(i)) for i in range(5)]
    opener = ChannelOpener(channel[1], channel[0])
    for f in frames[:3]:
        opener.open(f)  # on relay A
    opener.resync()  # relay B
    assert opener.open(frames[2]) == DuplicateEvent(2)
    assert opener.open(frames[3]) == TokensEvent(["3"])
    with pytest.raises(RelayIntegrityError, match="replayed frame: sequence 1, expected 4"):
        opener.open(frames[1])
    with pytest.raises(RelayProtocolError, match="already failed"):
        opener.open(frames[4])  # fail closed: nothing after a replay is trusted


def test_replay_after_resync_is_rejected_once_new_frames_flow(channel: Channel) -> None:
    sealer = ChannelSealer(channel[1], channel[0])
    frames = [sealer.seal_token(str(i)) for i in range(5)]
    opener = ChannelOpener(channel[1], channel[0])
    for f in frames[:2]:
        opener.open(f)
    opener.resync()
    assert opener.open(frames[2]) == TokensEvent(["2"])  # nothing to drop: resync is over
    opener.open(frames[3])
    with pytest.raises(RelayIntegrityError, match="replayed frame: sequence 0, expected 4"):
        opener.open(frames[0])


def test_gap_after_failover_is_loss(channel: Channel) -> None:
    sealer = ChannelSealer(channel[1], channel[0])
    frames = [sealer.seal_token(str(i)) for i in range(5)]
    opener = ChannelOpener(channel[1], channel[0])
    opener.open(frames[0])
    opener.resync()
    with pytest.raises(RelayIntegrityError, match="sequence 3, expected 1"):
        opener.open(frames[3])


def test_resend_must_be_contiguous(channel: Channel) -> None:
    sealer = ChannelSealer(channel[1], channel[0])
    frames = [sealer.seal_token(str(i)) for i in range(5)]
    opener = ChannelOpener(channel[1], channel[0])
    for f in frames[:4]:
        opener.open(f)
    opener.resync()
    opener.open(frames[1])
    with pytest.raises(RelayIntegrityError, match="sequence 3 after 1"):
        opener.open(frames[3])


def test_forged_duplicate_fails_authentication(channel: Channel) -> None:
    sealer = ChannelSealer(channel[1], channel[0])
    frames = [sealer.seal_token(str(i)) for i in range(3)]
    opener = ChannelOpener(channel[1], channel[0])
    for f in frames:
        opener.open(f)
    opener.resync()
    forged = bytearray(frames[1])
    forged[-1] ^= 1
    with pytest.raises(RelayIntegrityError, match="failed authentication"):
        opener.open(bytes(forged))


def test_truncation_still_detected_after_failover(channel: Channel) -> None:
    sealer = ChannelSealer(channel[1], channel[0])
    frames = [sealer.seal_token(str(i)) for i in range(3)]
    final = sealer.seal_final()
    opener = ChannelOpener(channel[1], channel[0])
    opener.open(frames[0])
    opener.resync()
    opener.open(frames[0])  # a duplicate
    opener.open(frames[1])
    with pytest.raises(RelayIntegrityError, match="sequence 3, expected 2"):
        opener.open(final)  # frame 2 dropped by a relay: refused, never a short answer


def test_acks_tolerate_loss_but_not_replay(channel: Channel) -> None:
    back = ChannelSealer(channel[1], channel[0], direction=Direction.TO_PRODUCER)
    opener = ChannelOpener(channel[1], channel[0], direction=Direction.TO_PRODUCER)
    acks = [back.seal_ack(n) for n in (4, 9, 12)]
    assert opener.open(acks[0]) == AckEvent(4)
    assert opener.open(acks[2]) == AckEvent(12)  # the ACK of 9 died with a relay
    with pytest.raises(RelayIntegrityError, match="replayed frame: sequence 1"):
        opener.open(acks[1])


def test_ack_cannot_travel_to_the_consumer(channel: Channel) -> None:
    back = ChannelSealer(channel[1], channel[0], direction=Direction.TO_PRODUCER)
    with pytest.raises(RelayProtocolError, match="ACK frames cannot travel"):
        ChannelSealer(channel[1], channel[0]).seal_ack(1)
    ack = back.seal_ack(1)
    with pytest.raises(RelayIntegrityError, match="travels direction 2"):
        ChannelOpener(channel[1], channel[0]).open(ack)


def test_ack_schedule() -> None:
    schedule = AckSchedule(FailoverLimits(ack_every_frames=3, ack_interval_s=0.25))
    assert schedule.due_in(0.0) is None
    assert not schedule.received(10.0)
    assert schedule.due_in(10.1) == pytest.approx(0.15)
    assert not schedule.received(10.1)
    assert schedule.received(10.2)  # the third frame
    schedule.sent()
    assert schedule.due_in(10.3) is None
    assert not schedule.received(11.0)
    assert schedule.due_in(11.3) == 0.0  # the interval passed


def test_limits_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="max_unacked_frames must be positive"):
        FailoverLimits(max_unacked_frames=0)
    with pytest.raises(ConfigurationError, match="resume_timeout_s must be at least"):
        FailoverLimits(resume_timeout_s=1.0)
    with pytest.raises(ConfigurationError, match="heartbeat_s must be below"):
        FailoverLimits(heartbeat_s=5.0, progress_timeout_s=3.0)
    assert FailoverLimits(ping_interval_s=None).ping_interval_s is None


def test_a_relay_that_stops_is_lost_within_the_ping_bound() -> None:
    limits = FailoverLimits(ping_interval_s=0.25, ping_timeout_s=0.25)
    assert limits.ping_bound_s == 0.5
    pings = PingSchedule(limits, now=0.0)
    # Frames keep arriving: the connection is never quiet, so no ping goes out.
    for t in (0.1, 0.2, 0.3, 0.4):
        pings.heard(t)
        assert not pings.ping_due(t) and not pings.lost(t)
    assert pings.due_in(0.4) == pytest.approx(0.25)
    # The relay stops after its frame at 0.4: a ping at 0.65, and at 0.9 it is gone.
    assert not pings.ping_due(0.6)
    assert pings.ping_due(0.65)
    pings.pinged(0.65)
    assert not pings.ping_due(0.7)  # one ping at a time
    assert pings.due_in(0.7) == pytest.approx(0.2)
    assert not pings.lost(0.85)
    assert pings.lost(0.9)  # = the last frame + ping_bound_s


def test_a_pong_or_any_frame_answers_the_ping() -> None:
    pings = PingSchedule(FailoverLimits(ping_interval_s=0.25, ping_timeout_s=0.25), now=0.0)
    pings.pinged(0.25)
    pings.heard(0.4)  # the pong
    assert not pings.lost(0.6) and not pings.ping_due(0.6)
    assert pings.ping_due(0.65)
    pings.heard(0.3)  # late news of an older frame does not move the clock back
    assert pings.ping_due(0.65)


def test_without_pings_nothing_is_sent_and_nothing_is_lost() -> None:
    for limits in (FailoverLimits(ping_interval_s=None), FailoverLimits(ping_timeout_s=None)):
        assert limits.ping_bound_s is None
        pings = PingSchedule(limits, now=0.0)
        assert pings.due_in(100.0) is None
        assert not pings.ping_due(100.0) and not pings.lost(100.0)


def test_the_window_hands_over_the_frames_sealed_during_a_move(channel: Channel) -> None:
    window = ResendWindow()
    sealer, held = produce(channel, ["a", "b"], window)
    assert window.resend(now=1.0) == held
    mark = window.next_seq
    sealed = []
    for token in ("c", "d"):  # sealed while the resend went out
        seq = sealer.seq
        sealed.append(sealer.seal_token(token))
        window.push(seq, sealed[-1], now=1.0)
    assert window.frames_from(mark) == sealed
    assert window.frames_from(window.next_seq) == []
