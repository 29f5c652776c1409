"""Relay choice and the mapping of the relay's answers to errors: pure functions, no sockets."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

import langchain_stream.relay as relay
from langchain_stream.errors import (
    ChannelClosedError,
    RelayAuthError,
    RelayError,
    RelayLimitError,
    RelayProtocolError,
)
from langchain_stream.relay.protocol import CloseCode
from langchain_stream.relay.routing import (
    channel_url,
    closed_error,
    failover_order,
    may_fail_over,
    pick_relays,
    refused_error,
)
from langchain_stream.relay.tokens import new_channel_id


def test_public_api_is_pinned() -> None:
    assert sorted(relay.__all__) == [
        "AsyncProducerClient",
        "CancelEvent",
        "ChannelOpener",
        "ChannelSealer",
        "ChannelTokens",
        "CloseCode",
        "ConsumerClient",
        "Direction",
        "ErrorEvent",
        "FinalEvent",
        "ProducerClient",
        "RelayLimits",
        "RelayServer",
        "TokenClaims",
        "TokensEvent",
        "channel_url",
        "mint_channel_tokens",
        "mint_token",
        "new_channel_id",
        "new_channel_key",
        "pick_relays",
        "run_relay",
        "verify_token",
    ]


def test_rendezvous_choice_is_stable_and_spread() -> None:
    urls = [f"wss://relay{i}.example" for i in range(4)]
    firsts = {pick_relays(urls, new_channel_id())[0] for _ in range(200)}
    assert firsts == set(urls)
    cid = new_channel_id()
    # Order of configuration, duplicates and trailing slashes do not change the choice.
    assert pick_relays(urls, cid) == pick_relays([*reversed(urls), urls[0] + "/"], cid)
    assert pick_relays("wss://only.example/", cid) == ["wss://only.example"]


def test_removing_a_relay_moves_only_its_channels() -> None:
    urls = [f"wss://relay{i}.example" for i in range(4)]
    survivors = urls[1:]
    for _ in range(100):
        cid = new_channel_id()
        first = pick_relays(urls, cid)[0]
        if first != urls[0]:
            assert pick_relays(survivors, cid)[0] == first


def test_channel_url() -> None:
    cid = "ab" * 16
    assert channel_url("wss://r.example/", cid, "consumer") == (
        f"wss://r.example/v1/channel/{cid}/consumer"
    )


def _closed(code: int | None, *, sent: int | None = None) -> ConnectionClosedError:
    rcvd = Close(code, "") if code is not None else None
    sent_frame = Close(sent, "") if sent is not None else None
    both = rcvd is not None and sent_frame is not None
    return ConnectionClosedError(rcvd, sent_frame, rcvd_then_sent=True if both else None)


@pytest.mark.parametrize(
    ("code", "error", "text"),
    [
        (CloseCode.PRODUCER_GONE, ChannelClosedError, "producer gone"),
        (CloseCode.CONSUMER_GONE, ChannelClosedError, "consumer gone"),
        (CloseCode.GOING_AWAY, ChannelClosedError, "relay shutting down"),
        (CloseCode.INTERNAL_ERROR, ChannelClosedError, "relay internal error"),
        (CloseCode.BUFFER_OVERFLOW, RelayLimitError, "buffer overflow"),
        (CloseCode.FRAME_TOO_LARGE, RelayLimitError, "size limit"),
        (CloseCode.MESSAGE_TOO_BIG, RelayLimitError, "relay's size limit"),
        (CloseCode.IDLE_TIMEOUT, RelayLimitError, "idle"),
        (CloseCode.TOO_MANY_CHANNELS, RelayLimitError, "channel limit"),
        (CloseCode.PROTOCOL_ERROR, RelayProtocolError, "protocol error"),
        (CloseCode.ROLE_TAKEN, RelayProtocolError, "role already taken"),
        (4999, ChannelClosedError, "relay closed the channel"),
        (None, ChannelClosedError, "connection to the relay lost"),
    ],
)
def test_close_codes_map_to_errors(code: int | None, error: type[RelayError], text: str) -> None:
    exc = closed_error(_closed(code), "c" * 32)
    assert type(exc) is error
    assert text in str(exc)
    assert exc.channel_id == "c" * 32


def test_our_own_size_refusal_is_a_limit_error() -> None:
    exc = closed_error(_closed(None, sent=CloseCode.MESSAGE_TOO_BIG), "c" * 32)
    assert isinstance(exc, RelayLimitError)
    assert "this side's size limit" in str(exc)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, RelayAuthError),
        (403, RelayAuthError),
        (404, RelayProtocolError),
        (409, RelayProtocolError),
        (429, RelayLimitError),
        (418, RelayProtocolError),
    ],
)
def test_refusals_map_to_errors(status: int, error: type[RelayError]) -> None:
    exc = refused_error(status, "c" * 32)
    assert type(exc) is error
    assert f"HTTP {status}" in str(exc)


def test_failover_order_starts_after_the_lost_relay_and_wraps() -> None:
    urls = [f"ws://127.0.0.{i}:8765" for i in range(2, 6)]
    cid = new_channel_id()
    order = pick_relays(urls, cid)
    for i, lost in enumerate(order):
        after = failover_order(urls, cid, lost + "/")  # trailing slash: same relay
        assert after == order[i + 1 :] + order[:i] + [lost]  # the lost one last
    assert failover_order(urls, cid, None) == order


def _lost_with(code: int | None) -> ConnectionClosedError:
    return ConnectionClosedError(Close(code, "") if code is not None else None, None)


@pytest.mark.parametrize(
    ("code", "resumable"),
    [
        (None, True),  # connection lost, no close frame
        (CloseCode.GOING_AWAY, True),
        (CloseCode.PRODUCER_GONE, True),
        (CloseCode.IDLE_TIMEOUT, True),
        (CloseCode.PROTOCOL_ERROR, False),
        (CloseCode.FRAME_TOO_LARGE, False),
        (CloseCode.BUFFER_OVERFLOW, False),
        (CloseCode.ROLE_TAKEN, False),
    ],
)
def test_which_endings_fail_over(code: int | None, resumable: bool) -> None:
    assert may_fail_over(_lost_with(code)) is resumable
