"""The relay's channel life cycle, event by event, with a fake clock: no sockets, no event loop.

Connections are plain strings: the table only hands them back in its actions.
"""

from __future__ import annotations

import ast
import inspect
from http import HTTPStatus

import pytest

from langchain_stream.relay import channels
from langchain_stream.relay.channels import (
    BUFFERED,
    DROPPED,
    ENDINGS,
    STOP,
    WAIT,
    Action,
    Channel,
    ChannelTable,
    Close,
    End,
    Ending,
    Flush,
    Forget,
    Forward,
    Refuse,
    State,
)
from langchain_stream.relay.ledger import Verdict
from langchain_stream.relay.limits import RelayLimits
from langchain_stream.relay.protocol import ChannelSealer, CloseCode
from langchain_stream.relay.tokens import DEFAULT_LEEWAY_S, Role, mint_token, new_channel_id

SECRET = "channel-table-test-secret-0123456789"
WALL = 1_800_000_000.0  # the fake wall clock tokens are minted and checked against
TTL_S = 3_600.0
P, C = "producer-conn", "consumer-conn"

Table = ChannelTable[str]


def table(**limits: float | int | None) -> Table:
    return ChannelTable(SECRET, RelayLimits(**limits))  # type: ignore[arg-type]


def bearer(channel_id: str, role: Role, *, ttl_s: float = TTL_S, secret: str = SECRET) -> list[str]:
    return [f"Bearer {mint_token(secret, channel_id, role, ttl_s, now=WALL)}"]


def join(
    t: Table,
    channel_id: str,
    role: Role,
    conn: str | None = None,
    *,
    address: str = "10.0.0.1",
    now: float = 0.0,
    authorization: list[str] | None = None,
    wall_now: float = WALL,
) -> tuple[Channel[str], tuple[Action[str], ...]] | Refuse:
    return t.join(
        conn or (P if role == "producer" else C),
        bearer(channel_id, role) if authorization is None else authorization,
        channel_id,
        role,
        address,
        now=now,
        wall_now=wall_now + now,
    )


def joined(outcome: tuple[Channel[str], tuple[Action[str], ...]] | Refuse) -> Channel[str]:
    assert not isinstance(outcome, Refuse), outcome
    ch, actions = outcome
    assert actions == ()
    return ch


def refused(outcome: object) -> Refuse:
    assert isinstance(outcome, Refuse), outcome
    return outcome


def closes(actions: object) -> dict[str, Ending]:
    """Which connection each action closes, and how (an End's closes included)."""
    if isinstance(actions, End):
        actions = (actions,)
    assert isinstance(actions, tuple), actions
    out: dict[str, Ending] = {}
    for action in actions:
        for close in action.closes if isinstance(action, End) else (action,):
            if isinstance(close, Close):
                out[close.conn] = close.ending
    return out


def sealer(channel_id: str) -> ChannelSealer:
    return ChannelSealer(None, channel_id)


def paired(t: Table) -> tuple[Channel[str], ChannelSealer]:
    channel_id = new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    assert joined(join(t, channel_id, "consumer")) is ch
    return ch, sealer(channel_id)


# ---------------------------------------------------------------------------- purity, the table


def test_the_table_is_pure() -> None:
    tree = ast.parse(inspect.getsource(channels))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"asyncio", "socket", "websockets", "time", "threading"}


def test_every_ending_has_one_close_code_and_one_status() -> None:
    assert set(ENDINGS) == set(Ending)
    assert Ending.STREAM_DONE.close_code is CloseCode.NORMAL
    assert Ending.ROLE_TAKEN.status is HTTPStatus.CONFLICT
    for ending in Ending:
        assert isinstance(ending.close_code, CloseCode)
        assert isinstance(ending.status, HTTPStatus)


# ---------------------------------------------------------------------------- a normal life


def test_pairing_forwarding_and_a_finished_stream() -> None:
    t, channel_id = table(), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    assert ch.state is State.WAITING and t.attached(ch, P)
    assert joined(join(t, channel_id, "consumer")) is ch
    assert ch.state is State.PAIRED and t.attached(ch, C)

    frames = sealer(channel_id)
    first = t.producer_frame(ch, frames.seal_token("a"))
    assert first == Forward(C)
    # The hot path allocates nothing: one Forward per direction and pairing.
    assert t.producer_frame(ch, frames.seal_token("b")) is first
    assert t.consumer_frame(ch, b"sealed cancel or ack") == Forward(P)

    final = frames.seal_final()
    assert t.producer_frame(ch, final) is first
    (end,) = t.producer_left(ch, clean=True, too_big=False, last=final)
    assert isinstance(end, End) and end.frames == 4
    assert closes(end) == {P: Ending.STREAM_DONE, C: Ending.STREAM_DONE}
    assert end.ending.close_code == 1000
    assert ch.state is State.ENDED

    assert t.leave(ch, "producer", P, now=1.0) == ()
    assert t.leave(ch, "consumer", C, now=1.0) == (Forget(channel_id),)
    assert ch.state is State.FORGOTTEN and t.live_channels == 0


def test_a_consumer_may_come_first() -> None:
    t, channel_id = table(), new_channel_id()
    ch = joined(join(t, channel_id, "consumer"))
    assert ch.state is State.WAITING
    # Nothing to send a consumer's frame to yet.
    assert t.consumer_frame(ch, b"early ack") is DROPPED
    joined(join(t, channel_id, "producer"))
    assert t.producer_frame(ch, sealer(channel_id).seal_token("x")) == Forward(C)


def test_frames_before_the_consumer_are_buffered_and_handed_over_in_order() -> None:
    t, channel_id = table(), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    frames = sealer(channel_id)
    sent = [frames.seal_token(str(i)) for i in range(3)]
    assert [t.producer_frame(ch, f) for f in sent] == [BUFFERED] * 3
    assert t.buffered_bytes == sum(map(len, sent))

    outcome = join(t, channel_id, "consumer")
    assert not isinstance(outcome, Refuse)
    assert outcome[1] == (Flush(C),)
    assert ch.state is State.FLUSHING and not t.attached(ch, C)
    handed = [t.next_buffered(ch), t.next_buffered(ch)]
    late = frames.seal_token("late")  # arrives while the consumer drains: still buffered
    assert t.producer_frame(ch, late) is BUFFERED
    while (frame := t.next_buffered(ch)) is not None:
        handed.append(frame)
    assert handed == [*sent, late]
    assert t.buffered_bytes == 0

    assert t.flushed(ch, C) == ()
    assert ch.state is State.PAIRED and t.attached(ch, C)
    assert t.producer_frame(ch, frames.seal_token("now")) == Forward(C)


@pytest.mark.parametrize(
    ("terminal", "ending", "code"),
    [(True, Ending.STREAM_DONE, 1000), (False, Ending.PRODUCER_GONE, 4000)],
)
def test_a_producer_that_left_before_the_consumer_came_is_reported_after_its_frames(
    terminal: bool, ending: Ending, code: int
) -> None:
    t, channel_id = table(), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    frames = sealer(channel_id)
    data = frames.seal_token("kept")
    last = frames.seal_final() if terminal else frames.seal_token("more")
    for frame in (data, last):
        assert t.producer_frame(ch, frame) is BUFFERED
    assert t.producer_left(ch, clean=True, too_big=False, last=last) == ()
    assert t.leave(ch, "producer", P, now=1.0) == ()
    assert ch.state is State.LEFT_BEHIND and t.live_channels == 1

    outcome = join(t, channel_id, "consumer", now=2.0)
    assert not isinstance(outcome, Refuse) and outcome[1] == (Flush(C),)
    assert [t.next_buffered(ch), t.next_buffered(ch), t.next_buffered(ch)] == [data, last, None]
    (end,) = t.flushed(ch, C)
    assert closes(end) == {C: ending} and ending.close_code == code
    assert not t.attached(ch, C)
    assert t.leave(ch, "consumer", C, now=2.0) == (Forget(channel_id),)


def test_a_producer_that_left_with_nothing_sent_is_reported_to_the_consumer_at_once() -> None:
    t, channel_id = table(), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    t.producer_left(ch, clean=False, too_big=False, last=b"")
    t.leave(ch, "producer", P, now=0.0)
    outcome = join(t, channel_id, "consumer")
    assert not isinstance(outcome, Refuse)
    assert closes(outcome[1]) == {C: Ending.PRODUCER_GONE}


# ---------------------------------------------------------------------------- endings


def test_a_consumer_that_leaves_ends_the_channel_for_the_producer() -> None:
    t = table()
    ch, frames = paired(t)
    assert closes(t.consumer_left(ch, too_big=False)) == {
        P: Ending.CONSUMER_GONE,
        C: Ending.CONSUMER_GONE,
    }
    assert Ending.CONSUMER_GONE.close_code == 4001
    # Frames already on their way have nowhere to go; the producer's close is under way.
    assert t.producer_frame(ch, frames.seal_token("x")) is DROPPED
    assert t.producer_left(ch, clean=False, too_big=False, last=b"") == ()


@pytest.mark.parametrize(
    ("side", "too_big", "ending"),
    [
        ("producer", True, Ending.FRAME_TOO_LARGE),
        ("producer", False, Ending.PRODUCER_GONE),
        ("consumer", True, Ending.FRAME_TOO_LARGE),
        ("consumer", False, Ending.CONSUMER_GONE),
    ],
)
def test_how_a_side_leaves_a_paired_channel_is_the_code_both_get(
    side: str, too_big: bool, ending: Ending
) -> None:
    t = table()
    ch, _ = paired(t)
    if side == "producer":
        actions = t.producer_left(ch, clean=False, too_big=too_big, last=b"")
    else:
        actions = t.consumer_left(ch, too_big=too_big)
    assert closes(actions) == {P: ending, C: ending}


def test_a_clean_close_without_a_terminal_frame_is_a_producer_gone() -> None:
    t = table()
    ch, frames = paired(t)
    last = frames.seal_token("cut here")
    t.producer_frame(ch, last)
    actions = t.producer_left(ch, clean=True, too_big=False, last=last)
    assert closes(actions) == {P: Ending.PRODUCER_GONE, C: Ending.PRODUCER_GONE}


def test_an_error_frame_is_terminal_too() -> None:
    t = table()
    ch, frames = paired(t)
    last = frames.seal_error("backend failed")
    actions = t.producer_left(ch, clean=True, too_big=False, last=last)
    assert closes(actions) == {P: Ending.STREAM_DONE, C: Ending.STREAM_DONE}


@pytest.mark.parametrize("side", ["producer", "consumer"])
def test_a_text_message_is_a_protocol_error_for_both_sides(side: str) -> None:
    t = table()
    ch, _ = paired(t)
    on_frame = t.producer_frame if side == "producer" else t.consumer_frame
    end = on_frame(ch, "text, not a sealed frame")
    assert isinstance(end, End)
    assert closes(end) == {P: Ending.PROTOCOL, C: Ending.PROTOCOL}
    assert Ending.PROTOCOL.close_code == 4002
    # The channel ended once: another bad message only stops reading its sender.
    assert on_frame(ch, "again") is STOP


def test_a_fault_ends_the_channel_for_everyone_including_the_faulty_connection() -> None:
    t, channel_id = table(), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    outcome = join(t, channel_id, "consumer")
    assert not isinstance(outcome, Refuse) and outcome[0] is ch
    # The consumer is not attached yet (say, while it is being set up) and still told.
    assert closes(t.fault(ch, "stray-conn")) == {
        P: Ending.INTERNAL,
        C: Ending.INTERNAL,
        "stray-conn": Ending.INTERNAL,
    }
    assert Ending.INTERNAL.close_code == 1011


def test_shutdown_ends_every_channel_and_refuses_every_join() -> None:
    t = table()
    first, _ = paired(t)
    lone = joined(join(t, new_channel_id(), "producer", "lone"))
    actions = t.shutdown()
    assert closes(actions) == {P: Ending.SHUTDOWN, C: Ending.SHUTDOWN, "lone": Ending.SHUTDOWN}
    assert first.state is lone.state is State.ENDED
    refusal = refused(join(t, new_channel_id(), "producer"))
    assert refusal.ending is Ending.SHUTDOWN and refusal.ending.status == 503
    assert (
        refused(
            t.check(bearer("0" * 32, "consumer"), "0" * 32, "consumer", "a", now=0.0, wall_now=WALL)
        ).ending
        is Ending.SHUTDOWN
    )


def test_a_side_that_comes_after_the_end_is_told_how_it_ended() -> None:
    t, channel_id = table(max_buffered_frames=1), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    frames = sealer(channel_id)
    t.producer_frame(ch, frames.seal_token("1"))
    end = t.producer_frame(ch, frames.seal_token("2"))
    assert closes(end) == {P: Ending.BUFFER_OVERFLOW}
    t.leave(ch, "producer", P, now=0.0)
    outcome = join(t, channel_id, "consumer", now=1.0)
    assert not isinstance(outcome, Refuse)
    assert outcome[1] == (Close(C, Ending.BUFFER_OVERFLOW),)
    assert not t.attached(ch, C)


# ---------------------------------------------------------------------------- buffer bounds


@pytest.mark.parametrize(
    ("limits", "ending"),
    [
        ({"max_buffered_frames": 2}, Ending.BUFFER_OVERFLOW),
        ({"max_buffered_bytes": 150}, Ending.BUFFER_OVERFLOW),
        ({"max_buffered_bytes_per_client": 150}, Ending.CLIENT_BUFFER),
        ({"max_buffered_bytes_total": 150}, Ending.MEMORY_FULL),
    ],
)
def test_a_frame_over_a_buffer_bound_ends_the_channel_with_4004(
    limits: dict[str, int], ending: Ending
) -> None:
    t, channel_id = table(**limits), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    frame = b"\x02\x01" + b"x" * 58  # 60 bytes: two fit under every bound above, three do not
    assert [t.producer_frame(ch, frame) for _ in range(2)] == [BUFFERED, BUFFERED]
    end = t.producer_frame(ch, frame)
    assert closes(end) == {P: ending}
    assert ending.close_code == CloseCode.BUFFER_OVERFLOW
    # Nothing is kept, and nothing more is counted.
    assert t.buffered_bytes == 0 and not ch.buffer
    assert t.producer_frame(ch, frame) is DROPPED


def test_a_full_buffer_holds_the_producer_while_the_consumer_drains_it() -> None:
    t, channel_id = table(max_buffered_frames=2), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    frames = sealer(channel_id)
    for i in range(2):
        t.producer_frame(ch, frames.seal_token(str(i)))
    outcome = join(t, channel_id, "consumer")
    assert not isinstance(outcome, Refuse) and outcome[1] == (Flush(C),)
    assert t.producer_frame(ch, frames.seal_token("full")) is WAIT  # held, not failed
    while t.next_buffered(ch) is not None:
        pass
    assert t.flushed(ch, C) == ()
    assert t.offer_again(ch) == Forward(C)


def test_a_held_frame_is_dropped_if_the_consumer_goes_while_draining() -> None:
    t, channel_id = table(max_buffered_frames=1), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    frames = sealer(channel_id)
    t.producer_frame(ch, frames.seal_token("0"))
    join(t, channel_id, "consumer")
    assert t.producer_frame(ch, frames.seal_token("1")) is WAIT
    assert closes(t.flush_failed(ch)) == {P: Ending.CONSUMER_GONE}
    assert t.offer_again(ch) is DROPPED


def test_a_producer_is_refused_up_front_where_no_buffer_room_is_left() -> None:
    t = table(max_buffered_bytes_per_client=100, max_buffered_bytes_total=150)
    ch = joined(join(t, new_channel_id(), "producer", "p1", address="10.0.0.1"))
    assert t.producer_frame(ch, b"x" * 100) is BUFFERED
    refusal = refused(join(t, new_channel_id(), "producer", "p2", address="10.0.0.1"))
    assert refusal.ending is Ending.CLIENT_BUFFER and refusal.ending.status == 429
    other = joined(join(t, new_channel_id(), "producer", "p3", address="10.0.0.2"))
    assert t.producer_frame(other, b"y" * 50) is BUFFERED
    refusal = refused(join(t, new_channel_id(), "producer", "p4", address="10.0.0.3"))
    assert refusal.ending is Ending.MEMORY_FULL and refusal.ending.status == 503
    # A consumer buffers nothing and may still come.
    joined(join(t, new_channel_id(), "consumer", "c4", address="10.0.0.3"))


# ---------------------------------------------------------------------------- admission


def test_a_request_without_a_bearer_token_is_401() -> None:
    t, channel_id = table(), new_channel_id()
    token = bearer(channel_id, "producer")[0].removeprefix("Bearer ")
    for authorization in ([], [f"Basic {token}"], ["Bearer"], ["Bearer ", "Bearer x"]):
        refusal = refused(join(t, channel_id, "producer", authorization=authorization))
        assert refusal.ending is Ending.NO_TOKEN and refusal.ending.status == 401
    assert t.live_channels == 0


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("forged", "signature"),
        ("expired", "expired"),
        ("wrong role", "role"),
        ("other channel", "another channel"),
        ("garbage", "malformed"),
    ],
)
def test_a_bad_token_is_403_and_the_reason_is_for_the_log_only(case: str, detail: str) -> None:
    t, channel_id = table(), new_channel_id()
    authorization, wall_now = bearer(channel_id, "consumer"), WALL
    if case == "forged":
        authorization = bearer(channel_id, "consumer", secret="another-secret-0123456789")
    elif case == "expired":
        wall_now = WALL + TTL_S + DEFAULT_LEEWAY_S + 1
    elif case == "wrong role":
        authorization = bearer(channel_id, "producer")
    elif case == "other channel":
        authorization = bearer(new_channel_id(), "consumer")
    else:
        authorization = ["Bearer v1.not.a-token"]
    refusal = refused(
        join(t, channel_id, "consumer", authorization=authorization, wall_now=wall_now)
    )
    assert refusal.ending is Ending.BAD_TOKEN and refusal.ending.status == 403
    assert detail in refusal.detail
    assert refusal.ending.value == "token refused"  # all the peer learns
    assert t.live_channels == 0


def test_a_token_just_within_the_clock_leeway_is_accepted() -> None:
    t, channel_id = table(), new_channel_id()
    joined(join(t, channel_id, "producer", wall_now=WALL + TTL_S + DEFAULT_LEEWAY_S))


def test_a_role_joins_a_channel_once() -> None:
    t, channel_id = table(), new_channel_id()
    joined(join(t, channel_id, "producer"))
    refusal = refused(join(t, channel_id, "producer", "second"))
    assert refusal.ending is Ending.ROLE_TAKEN
    assert (refusal.ending.status, refusal.ending.close_code) == (409, 4007)
    assert refusal.token_id is not None  # the log names the token, never holds it


def test_tokens_and_channel_ids_are_single_use_until_their_tokens_expire() -> None:
    t, channel_id = table(), new_channel_id()
    ch = joined(join(t, channel_id, "producer", now=0.0))
    t.producer_left(ch, clean=False, too_big=False, last=b"")
    assert t.leave(ch, "producer", P, now=1.0) == ()
    actions = t.tick(1.0 + 10.0)  # unattended: forgotten
    assert actions[0] == Forget(channel_id, Verdict.UNATTENDED)
    for role in ("producer", "consumer"):
        refusal = refused(join(t, channel_id, role, now=20.0))
        assert refusal.ending is Ending.CHANNEL_ENDED and refusal.ending.status == 403
    # Once every token it admitted has expired, the id is no longer remembered; a token minted
    # for it now would be a new channel.
    later = TTL_S + DEFAULT_LEEWAY_S + 1
    fresh = [f"Bearer {mint_token(SECRET, channel_id, 'consumer', TTL_S, now=WALL + later)}"]
    joined(join(t, channel_id, "consumer", now=later, authorization=fresh))


def test_check_decides_like_join_and_registers_nothing() -> None:
    t, channel_id = table(max_channels=1), new_channel_id()
    authorization = bearer(channel_id, "producer")
    for _ in range(2):
        claims = t.check(authorization, channel_id, "producer", "10.0.0.1", now=0.0, wall_now=WALL)
        assert not isinstance(claims, Refuse) and claims.channel_id == channel_id
    assert t.live_channels == 0
    joined(join(t, channel_id, "producer"))
    other = new_channel_id()
    refusal = refused(
        t.check(bearer(other, "producer"), other, "producer", "10.0.0.1", now=0.0, wall_now=WALL)
    )
    assert refusal.ending is Ending.CHANNEL_LIMIT


def test_channel_limits_per_client_and_in_total() -> None:
    t = table(max_channels=3, max_channels_per_client=2)
    for conn in ("a", "b"):
        joined(join(t, new_channel_id(), "producer", conn, address="10.0.0.1"))
    refusal = refused(join(t, new_channel_id(), "producer", "c", address="10.0.0.1"))
    assert refusal.ending is Ending.CLIENT_LIMIT
    assert (refusal.ending.status, refusal.ending.close_code) == (429, 4006)
    joined(join(t, new_channel_id(), "producer", "d", address="10.0.0.2"))
    refusal = refused(join(t, new_channel_id(), "producer", "e", address="10.0.0.3"))
    assert refusal.ending is Ending.CHANNEL_LIMIT and refusal.ending.status == 503


def finish(t: Table, ch: Channel[str], frames: ChannelSealer) -> None:
    """The producer sends FINAL and closes cleanly; both sides leave."""
    final = frames.seal_final()
    assert t.producer_frame(ch, final) == Forward(C)
    t.producer_left(ch, clean=True, too_big=False, last=final)
    t.leave(ch, "producer", P, now=0.0)
    t.leave(ch, "consumer", C, now=0.0)


def test_too_many_ended_channels_remembered_refuses_new_ones() -> None:
    t = table(max_ended_channels=1)
    finish(t, *paired(t))
    refusal = refused(join(t, new_channel_id(), "producer"))
    assert refusal.ending is Ending.CHANNEL_LIMIT and refusal.ending.status == 503


def test_a_finished_stream_is_never_reopened_while_its_tokens_live() -> None:
    t = table()
    ch, frames = paired(t)
    finish(t, ch, frames)
    assert ch.ending is Ending.STREAM_DONE and ch.state is State.FORGOTTEN
    for role in ("producer", "consumer"):
        refusal = refused(join(t, ch.id, role, now=5.0))
        assert refusal.ending is Ending.CHANNEL_ENDED and refusal.ending.status == 403


def test_a_finished_stream_whose_consumer_left_first_is_never_reopened() -> None:
    # With failover the consumer closes on FINAL, before the producer's last ACK arrives.
    t = table()
    ch, frames = paired(t)
    final = frames.seal_final()
    assert t.producer_frame(ch, final) == Forward(C)
    t.consumer_left(ch, too_big=False)
    t.producer_left(ch, clean=False, too_big=False, last=final)
    assert ch.ending is Ending.CONSUMER_GONE
    t.leave(ch, "consumer", C, now=0.0)
    t.leave(ch, "producer", P, now=0.0)
    refusal = refused(join(t, ch.id, "consumer", now=5.0))
    assert refusal.ending is Ending.CHANNEL_ENDED


@pytest.mark.parametrize("vanished", ["consumer", "producer"])
def test_a_channel_whose_sides_vanished_may_come_back_after_a_failover(vanished: str) -> None:
    # Both connections dropped without an end (a relay stalled or cut off): the clients moved
    # the channel to the next relay, and a later failover may bring it back here.
    t = table()
    ch, _ = paired(t)
    if vanished == "consumer":
        t.consumer_left(ch, too_big=False)
    else:
        t.producer_left(ch, clean=False, too_big=False, last=b"")
    assert ch.ending in (Ending.CONSUMER_GONE, Ending.PRODUCER_GONE)
    assert t.leave(ch, "producer", P, now=1.0) + t.leave(ch, "consumer", C, now=1.0) == (
        Forget(ch.id),
    )
    again = joined(join(t, ch.id, "producer", "producer-2", now=2.0))
    assert again is not ch and again.state is State.WAITING
    assert joined(join(t, ch.id, "consumer", "consumer-2", now=2.0)) is again
    assert again.state is State.PAIRED
    # While it is held, each role still joins once (a duplicate producer would reuse nonces).
    assert refused(join(t, ch.id, "producer", "producer-3", now=3.0)).ending is Ending.ROLE_TAKEN


# ---------------------------------------------------------------------------- timeouts


def test_a_channel_whose_other_side_never_comes_ends_at_the_pairing_timeout() -> None:
    t, channel_id = table(pairing_timeout_s=60.0), new_channel_id()
    ch = joined(join(t, channel_id, "consumer", now=0.0))
    assert t.tick(59.9) == ()
    forget, end = t.tick(60.0)
    assert forget == Forget(channel_id, Verdict.PAIRING_TIMEOUT)
    assert closes(end) == {C: Ending.PAIRING}
    assert Ending.PAIRING.close_code == 4005
    assert ch.state is State.FORGOTTEN and t.live_channels == 0
    assert t.tick(120.0) == ()  # retired once


def test_a_channel_left_unattended_is_forgotten_with_its_buffer() -> None:
    t, channel_id = table(unattended_timeout_s=10.0), new_channel_id()
    ch = joined(join(t, channel_id, "producer", now=0.0))
    t.producer_frame(ch, b"\x02\x01buffered")
    t.producer_left(ch, clean=True, too_big=False, last=b"\x02\x01buffered")
    t.leave(ch, "producer", P, now=5.0)
    assert t.buffered_bytes > 0
    assert t.tick(14.9) == ()
    forget, end = t.tick(15.0)
    assert forget == Forget(channel_id, Verdict.UNATTENDED)
    assert isinstance(end, End) and end.closes == ()  # nobody is attached to tell
    assert t.buffered_bytes == 0 and t.live_channels == 0


def test_a_paired_channel_that_passes_no_frame_ends_at_the_idle_timeout() -> None:
    t = table(idle_timeout_s=120.0)
    ch, frames = paired(t)
    assert t.tick(1.0) == ()  # the clock starts counting from the last frame it saw
    t.producer_frame(ch, frames.seal_token("alive"))
    assert t.tick(100.0) == ()  # a frame since the last tick: counting starts again
    assert t.tick(219.9) == ()
    forget, end = t.tick(220.0)
    assert forget == Forget(ch.id, Ending.IDLE)
    assert closes(end) == {P: Ending.IDLE, C: Ending.IDLE}
    assert Ending.IDLE.close_code == 4005
    # The retired channel's connections leave later; that changes nothing.
    assert t.leave(ch, "producer", P, now=221.0) == ()
    assert t.leave(ch, "consumer", C, now=221.0) == ()


def test_timeouts_that_are_off_never_fire() -> None:
    t = table(idle_timeout_s=None, pairing_timeout_s=None, unattended_timeout_s=None)
    ch = joined(join(t, new_channel_id(), "producer"))
    t.leave(ch, "producer", P, now=0.0)
    assert t.tick(1e9) == ()
    assert t.live_channels == 1


def test_an_oversized_frame_before_the_consumer_came_ends_the_channel_at_once() -> None:
    t, channel_id = table(), new_channel_id()
    ch = joined(join(t, channel_id, "producer"))
    assert t.producer_frame(ch, b"\x02\x01kept") is BUFFERED
    assert closes(t.producer_left(ch, clean=False, too_big=True, last=b"")) == {
        P: Ending.FRAME_TOO_LARGE
    }
    assert t.buffered_bytes == 0
    t.leave(ch, "producer", P, now=0.0)
    outcome = join(t, channel_id, "consumer")
    assert not isinstance(outcome, Refuse)
    assert outcome[1] == (Close(C, Ending.FRAME_TOO_LARGE),)
    assert Ending.FRAME_TOO_LARGE.close_code == 4003
