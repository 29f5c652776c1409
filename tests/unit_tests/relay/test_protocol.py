"""The wire protocol, fed bytes only: no sockets, no event loop."""

from __future__ import annotations

import struct

import pytest

from langchain_stream.errors import (
    ConfigurationError,
    RelayIntegrityError,
    RelayLimitError,
    RelayProtocolError,
)
from langchain_stream.relay.protocol import (
    HEADER_BYTES,
    PROTOCOL_VERSION,
    TAG_BYTES,
    CancelEvent,
    ChannelOpener,
    ChannelSealer,
    Direction,
    ErrorEvent,
    FinalEvent,
    FrameFlags,
    FrameHeader,
    FrameType,
    TokensEvent,
    new_channel_key,
    parse_header,
)
from langchain_stream.relay.tokens import new_channel_id


@pytest.fixture
def channel() -> tuple[str, bytes]:
    return new_channel_id(), new_channel_key()


def pair(channel: tuple[str, bytes], **kwargs: int) -> tuple[ChannelSealer, ChannelOpener]:
    cid, key = channel
    return ChannelSealer(key, cid, **kwargs), ChannelOpener(key, cid, **kwargs)


def test_round_trip(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    frames = [sealer.seal_token("Hello"), sealer.seal_tokens([", ", "wörld", " ✓"])]
    frames.append(sealer.seal_final({"prompt_tokens": 3, "completion_tokens": 4}))
    events = [opener.open(f) for f in frames]
    assert events[0] == TokensEvent(["Hello"])
    assert events[1] == TokensEvent([", ", "wörld", " ✓"])
    assert events[2] == FinalEvent(
        frames=2, tokens=4, usage={"prompt_tokens": 3, "completion_tokens": 4}
    )
    assert opener.finished
    opener.end_of_stream()  # complete: no error


def test_frames_hide_the_text(channel: tuple[str, bytes]) -> None:
    sealer, _ = pair(channel)
    frame = sealer.seal_token("secret answer")
    assert b"secret" not in frame
    assert len(frame) == HEADER_BYTES + TAG_BYTES + 4 + 4 + len("secret answer")


def test_header_layout(channel: tuple[str, bytes]) -> None:
    cid, _ = channel
    sealer, _ = pair(channel)
    sealer.seal_token("a")
    header = parse_header(sealer.seal_token("b"))
    assert header == FrameHeader(
        version=PROTOCOL_VERSION,
        type=FrameType.DATA,
        direction=Direction.TO_CONSUMER,
        flags=FrameFlags.SEALED,
        channel_id=bytes.fromhex(cid),
        seq=1,
    )


def test_error_frame(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    opener.open(sealer.seal_token("partial"))
    assert opener.open(sealer.seal_error("backend returned 500")) == ErrorEvent(
        "backend returned 500"
    )
    with pytest.raises(RelayProtocolError, match="finished"):
        sealer.seal_token("more")


def test_cancel_travels_the_other_way(channel: tuple[str, bytes]) -> None:
    cid, key = channel
    sealer = ChannelSealer(key, cid, direction=Direction.TO_PRODUCER)
    opener = ChannelOpener(key, cid, direction=Direction.TO_PRODUCER)
    assert opener.open(sealer.seal_cancel("user pressed stop")) == CancelEvent("user pressed stop")
    with pytest.raises(RelayProtocolError, match="DATA frames cannot travel"):
        ChannelSealer(key, cid, direction=Direction.TO_PRODUCER).seal_token("x")
    with pytest.raises(RelayProtocolError, match="CANCEL frames cannot travel"):
        ChannelSealer(key, cid).seal_cancel()


def test_reflected_frame_is_rejected(channel: tuple[str, bytes]) -> None:
    """A consumer's CANCEL bounced back to the consumer is not a producer frame."""
    cid, key = channel
    cancel = ChannelSealer(key, cid, direction=Direction.TO_PRODUCER).seal_cancel()
    with pytest.raises(RelayIntegrityError, match="direction"):
        ChannelOpener(key, cid).open(cancel)


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 19, 20, 27, HEADER_BYTES, -TAG_BYTES, -1])
def test_tampered_frame(channel: tuple[str, bytes], offset: int) -> None:
    sealer, opener = pair(channel)
    frame = bytearray(sealer.seal_token("pay 100"))
    frame[offset] ^= 0x01
    with pytest.raises((RelayIntegrityError, RelayProtocolError)):
        opener.open(bytes(frame))


def test_tampered_ciphertext_fails_authentication(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    frame = bytearray(sealer.seal_token("pay 100"))
    frame[HEADER_BYTES + 2] ^= 0xFF
    with pytest.raises(RelayIntegrityError, match="failed authentication"):
        opener.open(bytes(frame))


def test_tampered_sequence_number_fails_authentication(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    frame = bytearray(sealer.seal_token("a"))
    frame[HEADER_BYTES - 1] = 5  # claim to be frame 5
    with pytest.raises(RelayIntegrityError, match="failed authentication"):
        opener.open(bytes(frame))


def test_type_swap_fails_authentication(channel: tuple[str, bytes]) -> None:
    """Relabelling an ERROR as FINAL (or DATA) is caught: the header is associated data."""
    sealer, opener = pair(channel)
    frame = bytearray(sealer.seal_error("boom"))
    frame[1] = FrameType.FINAL
    with pytest.raises(RelayIntegrityError, match="failed authentication"):
        opener.open(bytes(frame))


def test_replayed_frame(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    first = sealer.seal_token("a")
    opener.open(first)
    opener.open(sealer.seal_token("b"))
    with pytest.raises(RelayIntegrityError, match="replayed frame: sequence 0, expected 2"):
        opener.open(first)


def test_reordered_frames(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    first, second = sealer.seal_token("a"), sealer.seal_token("b")
    with pytest.raises(RelayIntegrityError, match="missing or reordered frames: sequence 1"):
        opener.open(second)
    del first


def test_dropped_frame(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    opener.open(sealer.seal_token("a"))
    sealer.seal_token("dropped by the relay")
    with pytest.raises(RelayIntegrityError, match="sequence 2, expected 1"):
        opener.open(sealer.seal_token("c"))


def test_frame_spliced_from_another_channel_with_another_key(
    channel: tuple[str, bytes],
) -> None:
    _, opener = pair(channel)
    other = ChannelSealer(new_channel_key(), new_channel_id())
    with pytest.raises(RelayIntegrityError, match="another channel"):
        opener.open(other.seal_token("foreign"))


def test_frame_spliced_from_another_channel_with_the_same_key(
    channel: tuple[str, bytes],
) -> None:
    cid, key = channel
    other = ChannelSealer(key, new_channel_id())
    frame = other.seal_token("foreign")
    with pytest.raises(RelayIntegrityError, match="another channel"):
        ChannelOpener(key, cid).open(frame)
    # Rewriting the channel id in the header does not help: it is associated data.
    forged = frame[:4] + bytes.fromhex(cid) + frame[20:]
    with pytest.raises(RelayIntegrityError, match="failed authentication"):
        ChannelOpener(key, cid).open(forged)


def test_frame_from_another_key_same_channel_id(channel: tuple[str, bytes]) -> None:
    cid, _ = channel
    _, opener = pair(channel)
    with pytest.raises(RelayIntegrityError, match="failed authentication"):
        opener.open(ChannelSealer(new_channel_key(), cid).seal_token("forged"))


def test_truncated_stream_without_final(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    opener.open(sealer.seal_token("a"))
    with pytest.raises(RelayIntegrityError, match="ended without FINAL after 1 frames"):
        opener.end_of_stream()


def test_truncated_stream_final_count_mismatch(channel: tuple[str, bytes]) -> None:
    """A FINAL claiming more frames than arrived: built by a producer that lost track."""
    cid, key = channel
    sealer = ChannelSealer(key, cid)
    opener = ChannelOpener(key, cid)
    opener.open(sealer.seal_token("a"))
    sealer._data_frames += 1  # simulate a frame the opener never saw, with seq intact
    with pytest.raises(RelayIntegrityError, match="truncated stream: FINAL counts 2 frames"):
        opener.open(sealer.seal_final())


def test_final_sent_early_is_detected(channel: tuple[str, bytes]) -> None:
    """The relay cannot cut the tail and deliver FINAL: FINAL's sequence number gives it away."""
    sealer, opener = pair(channel)
    frames = [sealer.seal_token(t) for t in "abc"]
    final = sealer.seal_final()
    opener.open(frames[0])
    with pytest.raises(RelayIntegrityError, match="missing or reordered"):
        opener.open(final)


def test_downgrade_to_plaintext_rejected(channel: tuple[str, bytes]) -> None:
    cid, _ = channel
    _, opener = pair(channel)
    plaintext = ChannelSealer(None, cid).seal_token("injected")
    assert not parse_header(plaintext).flags & FrameFlags.SEALED
    with pytest.raises(RelayIntegrityError, match="unsealed frame rejected"):
        opener.open(plaintext)


def test_downgrade_by_clearing_the_flag(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    frame = bytearray(sealer.seal_token("a"))
    frame[3] = 0
    with pytest.raises(RelayIntegrityError, match="unsealed frame rejected"):
        opener.open(bytes(frame))


def test_unsealed_channel_round_trip_and_rejects_sealed(channel: tuple[str, bytes]) -> None:
    cid, key = channel
    opener = ChannelOpener(None, cid)
    assert opener.open(ChannelSealer(None, cid).seal_token("plain")) == TokensEvent(["plain"])
    with pytest.raises(RelayProtocolError, match="without a key"):
        ChannelOpener(None, cid).open(ChannelSealer(key, cid).seal_token("x"))


def test_oversized_frame(channel: tuple[str, bytes]) -> None:
    cid, key = channel
    sealer = ChannelSealer(key, cid, max_frame_bytes=10_000)
    with pytest.raises(RelayLimitError, match="exceeds max_frame_bytes=1000"):
        ChannelOpener(key, cid, max_frame_bytes=1_000).open(sealer.seal_token("x" * 2_000))
    with pytest.raises(RelayLimitError, match="max_frame_bytes=10000"):
        sealer.seal_token("y" * 20_000)


def test_pack_tokens_coalesces_and_splits(channel: tuple[str, bytes]) -> None:
    cid, key = channel
    sealer = ChannelSealer(key, cid, max_frame_bytes=256)
    opener = ChannelOpener(key, cid, max_frame_bytes=256)
    tokens = ["ab"] * 30 + ["é" * 500] + ["z"]
    frames = sealer.pack_tokens(tokens)
    assert all(len(f) <= 256 for f in frames)
    assert 3 < len(frames) < len(tokens)
    received = [t for f in frames for t in opener.open(f).tokens]  # type: ignore[union-attr]
    assert "".join(received) == "".join(tokens)
    final = opener.open(sealer.seal_final())
    assert isinstance(final, FinalEvent)
    assert final.frames == len(frames)
    assert sealer.pack_tokens([]) == []


def test_short_frame(channel: tuple[str, bytes]) -> None:
    _, opener = pair(channel)
    with pytest.raises(RelayProtocolError, match="frame too short: 5 bytes"):
        opener.open(b"\x01\x01\x01\x01\x00")


def test_sealed_frame_too_short_for_tag(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    with pytest.raises(RelayProtocolError, match="authentication tag"):
        opener.open(sealer.seal_token("a")[: HEADER_BYTES + 3])


def test_unknown_version(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    frame = bytearray(sealer.seal_token("a"))
    frame[0] = 9
    with pytest.raises(RelayProtocolError, match="unsupported protocol version 9"):
        opener.open(bytes(frame))


def test_unknown_type_and_flags(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    frame = bytearray(sealer.seal_token("a"))
    frame[1] = 77
    with pytest.raises(RelayProtocolError, match="unknown frame type 77"):
        opener.open(bytes(frame))
    frame = bytearray(pair(channel)[0].seal_token("a"))
    frame[3] |= 0x80
    with pytest.raises(RelayProtocolError, match="unknown flag bits"):
        pair(channel)[1].open(bytes(frame))


def test_malformed_body_under_a_valid_seal(channel: tuple[str, bytes]) -> None:
    """Garbage sealed by the key holder is a protocol error, not a crash."""
    cid, key = channel
    sealer = ChannelSealer(key, cid)
    body = struct.pack(">II", 3, 10) + b"abc"  # claims 3 tokens, gives one length
    frame = sealer._seal(FrameType.DATA, body)
    with pytest.raises(RelayProtocolError, match="DATA body too short"):
        ChannelOpener(key, cid).open(frame)
    sealer = ChannelSealer(key, cid)
    with pytest.raises(RelayProtocolError, match="FINAL body is not valid JSON"):
        ChannelOpener(key, cid).open(sealer._seal(FrameType.FINAL, b"{nope"))


def test_not_bytes(channel: tuple[str, bytes]) -> None:
    _, opener = pair(channel)
    with pytest.raises(RelayProtocolError, match="must be bytes"):
        opener.open("text message")  # type: ignore[arg-type]


def test_opener_fails_closed(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    good = sealer.seal_token("a")
    with pytest.raises(RelayProtocolError):
        opener.open(b"junk")
    with pytest.raises(RelayProtocolError, match="already failed"):
        opener.open(good)


def test_frame_after_final(channel: tuple[str, bytes]) -> None:
    cid, key = channel
    sealer, opener = pair(channel)
    opener.open(sealer.seal_final())
    late = ChannelSealer(key, cid)
    late._seq = 1
    with pytest.raises(RelayProtocolError, match="after the end"):
        opener.open(late.seal_token("late"))


def test_error_is_cut_and_usage_must_be_json(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    event = opener.open(sealer.seal_error("x" * 10_000))
    assert isinstance(event, ErrorEvent)
    assert len(event.message) == 2_000
    with pytest.raises(RelayProtocolError, match="JSON"):
        pair(channel)[0].seal_final({"bad": object()})


def test_nonces_never_repeat_across_directions(channel: tuple[str, bytes]) -> None:
    """Same key, same sequence number, other direction: different ciphertext (own nonce)."""
    cid, key = channel
    down = ChannelSealer(key, cid)
    up = ChannelSealer(key, cid, direction=Direction.TO_PRODUCER)
    a = down._seal(FrameType.ERROR, b"{}")
    b = up._seal(FrameType.CANCEL, b"{}")
    assert a[HEADER_BYTES:] != b[HEADER_BYTES:]


@pytest.mark.parametrize("bad", [b"short", b"x" * 31, b"x" * 33])
def test_key_length_checked(bad: bytes) -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        ChannelSealer(bad, new_channel_id())


@pytest.mark.parametrize("bad", ["", "ABCDEF" * 6, "g" * 32, "a" * 31, "../etc/passwd"])
def test_channel_id_checked(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="channel id"):
        ChannelOpener(new_channel_key(), bad)


def test_lone_surrogates_are_replaced_not_fatal(channel: tuple[str, bytes]) -> None:
    sealer, opener = pair(channel)
    assert opener.open(sealer.seal_token("a\ud800b")) == TokensEvent(["a?b"])
    assert opener.open(sealer.seal_error("bad \udc80 text")) == ErrorEvent("bad ? text")
