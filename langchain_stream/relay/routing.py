"""Where a channel meets: relay choice by rendezvous hashing, dialing with failover, and the
mapping of the relay's close codes and HTTP refusals to errors — in one place [RP §7, §10].

Both sides of a channel order the configured relay URLs with :func:`pick_relays` and dial them in
that order, so they meet on the same relay with no shared state. A connection failure, timeout or
5xx answer moves on to the next URL; a refusal that would be the same on every relay (bad token,
limits) is raised at once. The token is presented as ``Authorization: Bearer <token>`` in the
opening handshake [RP §8].
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from langchain_stream.errors import (
    ChannelClosedError,
    ConfigurationError,
    RelayAuthError,
    RelayError,
    RelayLimitError,
    RelayProtocolError,
    RelayUnavailableError,
)
from langchain_stream.limits import DEFAULT_TIMEOUTS
from langchain_stream.relay.protocol import CloseCode
from langchain_stream.relay.tokens import Role, wire_logger

logger = logging.getLogger("langchain_stream.relay.client")

DEFAULT_OPEN_TIMEOUT_S = DEFAULT_TIMEOUTS.open_s
"""Default bound on connecting to one relay (TCP, TLS and the WebSocket handshake)."""

DEFAULT_CLOSE_TIMEOUT_S = DEFAULT_TIMEOUTS.close_s
"""Default wait for the relay to answer a close."""


# ---------------------------------------------------------------------------- relay choice


def pick_relays(urls: str | Sequence[str], channel_id: str) -> list[str]:
    """Order relay URLs for a channel by rendezvous (highest-random-weight) hashing [RP §10].

    Every party computes the same order from the same URLs and channel id, so producer and
    consumer try the same relay first; removing one relay only moves the channels it held.

    Args:
        urls: Base URLs such as ``wss://relay.example.org``; duplicates and trailing slashes are
            ignored.
        channel_id: The channel id.

    Returns:
        The URLs, best first.
    """
    if isinstance(urls, str):
        urls = [urls]
    unique = list(dict.fromkeys(u.rstrip("/") for u in urls))

    def weight(url: str) -> bytes:
        return hashlib.blake2b(f"{url}\n{channel_id}".encode(), digest_size=8).digest()

    return sorted(unique, key=weight, reverse=True)


def failover_order(urls: str | Sequence[str], channel_id: str, lost: str | None) -> list[str]:
    """The relays to try after ``lost`` failed mid-stream: the channel's rendezvous order,
    starting just after ``lost`` and wrapping round, ``lost`` itself last [RP §13.4].

    Both sides compute it from the same URLs, channel id and lost relay, so they meet again.
    ``lost`` comes last because a killed relay may be back, restarted, when the others have
    refused (the channel ended on them earlier).
    """
    order = pick_relays(urls, channel_id)
    if lost is None or lost.rstrip("/") not in order:
        return order
    i = order.index(lost.rstrip("/"))
    return order[i + 1 :] + order[:i] + [order[i]]


def channel_url(base_url: str, channel_id: str, role: Role) -> str:
    """Return the WebSocket URL of ``role`` on ``channel_id`` at relay ``base_url``."""
    return f"{base_url.rstrip('/')}/v1/channel/{channel_id}/{role}"


# ---------------------------------------------------------------------------- errors, in one place

_CLOSED: dict[int, tuple[type[RelayError], str]] = {
    CloseCode.GOING_AWAY: (ChannelClosedError, "relay shutting down"),
    CloseCode.INTERNAL_ERROR: (ChannelClosedError, "relay internal error"),
    CloseCode.PRODUCER_GONE: (ChannelClosedError, "producer gone"),
    CloseCode.CONSUMER_GONE: (ChannelClosedError, "consumer gone"),
    CloseCode.PROTOCOL_ERROR: (RelayProtocolError, "relay reported a protocol error"),
    CloseCode.MESSAGE_TOO_BIG: (RelayLimitError, "frame exceeds the relay's size limit"),
    CloseCode.FRAME_TOO_LARGE: (RelayLimitError, "peer sent a frame over the size limit"),
    CloseCode.BUFFER_OVERFLOW: (RelayLimitError, "relay buffer overflow before the consumer came"),
    CloseCode.IDLE_TIMEOUT: (RelayLimitError, "relay closed the idle channel"),
    CloseCode.TOO_MANY_CHANNELS: (RelayLimitError, "relay channel limit reached"),
    CloseCode.ROLE_TAKEN: (RelayProtocolError, "role already taken on this channel"),
}

_REFUSED: dict[int, tuple[type[RelayError], str]] = {
    400: (RelayProtocolError, "bad request"),
    401: (RelayAuthError, "no token"),
    403: (RelayAuthError, "token refused"),
    404: (RelayProtocolError, "no such path (is this a relay?)"),
    409: (RelayProtocolError, "role already taken on this channel"),
    429: (RelayLimitError, "too many channels, buffered bytes or refused tokens from this client"),
}


# Endings after which the channel may go on through another relay [RP §13.4]: the relay went
# away or failed, the other side left it (it is failing over too), or it never came here.
_FAILOVER_CODES = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.INTERNAL_ERROR,
        CloseCode.PRODUCER_GONE,
        CloseCode.CONSUMER_GONE,
        CloseCode.IDLE_TIMEOUT,
        1006,  # abnormal closure: no close frame
    }
)


def may_fail_over(exc: ConnectionClosed) -> bool:
    """Whether a lost connection is worth resuming through another relay [RP §13.4]."""
    return exc.rcvd is None or exc.rcvd.code in _FAILOVER_CODES


def closed_error(exc: ConnectionClosed, channel_id: str) -> RelayError:
    """Map how the relay closed a connection to an error [RP §7]."""
    we_refused = exc.rcvd is None or exc.rcvd_then_sent is False
    if we_refused and exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
        return RelayLimitError(
            "relay sent a frame over this side's size limit", channel_id=channel_id
        )
    if exc.rcvd is None:
        return ChannelClosedError("connection to the relay lost", channel_id=channel_id)
    cls, text = _CLOSED.get(exc.rcvd.code, (ChannelClosedError, "relay closed the channel"))
    return cls(f"{text} (close code {exc.rcvd.code})", channel_id=channel_id)


def refused_error(status: int, channel_id: str) -> RelayError:
    """Map an HTTP refusal of the handshake to an error."""
    cls, text = _REFUSED.get(status, (RelayProtocolError, "handshake refused"))
    return cls(f"relay refused the connection: {text} (HTTP {status})", channel_id=channel_id)


async def dial(
    urls: str | Sequence[str],
    channel_id: str,
    role: Role,
    token: str,
    *,
    open_timeout_s: float | None,
    max_frame_bytes: int | None,
    ping_interval_s: float | None = 20.0,
    ping_timeout_s: float | None = 20.0,
    order: Sequence[str] | None = None,
) -> tuple[ClientConnection, str]:
    """Connect to the first relay that accepts, in rendezvous order.

    Connection failures, timeouts and 5xx answers move on to the next relay; a refusal that
    would be the same everywhere (bad token, limits) is raised at once. When resuming a channel
    (``order`` given, from :func:`failover_order`), 403 and 409 move on too: the channel already
    ended on that relay, or a connection of ours there is not gone yet [RP §13.4].

    ``ping_interval_s`` and ``ping_timeout_s`` set the WebSocket keepalive that notices a dead
    relay [RP §13.5].
    """
    failures: list[str] = []
    resuming = order is not None
    for base in order if order is not None else pick_relays(urls, channel_id):
        try:
            ws = await connect(
                channel_url(base, channel_id, role),
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=open_timeout_s,
                # An unanswered ping fails the connection with a close handshake that a dead
                # relay never completes: wait for it no longer than for the pong.
                close_timeout=min(DEFAULT_CLOSE_TIMEOUT_S, ping_timeout_s or math.inf),
                ping_interval=ping_interval_s,
                ping_timeout=ping_timeout_s,
                compression=None,
                max_size=max_frame_bytes,
                user_agent_header=None,
                logger=wire_logger("langchain_stream.relay.client.wire"),
            )
        except InvalidURI as exc:
            raise ConfigurationError(f"invalid relay URL {base!r}: {exc}") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status < 500 and not (resuming and status in (403, 409)):
                raise refused_error(status, channel_id) from None
            failures.append(f"{base}: HTTP {status}")
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            failures.append(f"{base}: {type(exc).__name__}")
        else:
            if failures:
                logger.info("channel %s: failed over to %s (%s)", channel_id[:8], base, failures)
            return ws, base
    raise RelayUnavailableError(
        f"no relay reachable for {role} of channel {channel_id[:8]}: "
        + ("; ".join(failures) or "no other relay"),
        channel_id=channel_id,
    )


async def redial(
    urls: str | Sequence[str],
    channel_id: str,
    role: Role,
    token: str,
    *,
    lost: str | None,
    within_s: float,
    open_timeout_s: float | None,
    max_frame_bytes: int | None,
    ping_interval_s: float | None,
    ping_timeout_s: float | None,
) -> tuple[ClientConnection, str]:
    """Resume a channel after ``lost`` failed: dial :func:`failover_order` again and again (a
    relay being restarted comes back) until one accepts or ``within_s`` passes [RP §13.4].

    Raises:
        RelayUnavailableError: No relay took the channel in time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    pause_s = 0.05
    while True:
        left_s = deadline - loop.time()
        try:
            return await dial(
                urls,
                channel_id,
                role,
                token,
                # A stopped relay accepts TCP and never answers: do not wait on it for long.
                open_timeout_s=min(open_timeout_s or math.inf, max(left_s, 0.05)),
                max_frame_bytes=max_frame_bytes,
                ping_interval_s=ping_interval_s,
                ping_timeout_s=ping_timeout_s,
                order=failover_order(urls, channel_id, lost),
            )
        except RelayUnavailableError:
            if loop.time() + pause_s >= deadline:
                raise
        await asyncio.sleep(pause_s)
        pause_s = min(2 * pause_s, 0.5)


__all__ = [
    "DEFAULT_CLOSE_TIMEOUT_S",
    "DEFAULT_OPEN_TIMEOUT_S",
    "channel_url",
    "closed_error",
    "dial",
    "failover_order",
    "may_fail_over",
    "pick_relays",
    "redial",
    "refused_error",
]
