"""Capability tokens: who may produce into, or consume from, one relay channel [RP §8].

A token names one channel, one role and an expiry time, and is signed with HMAC-SHA256 under
the relay's secret. Whoever holds the secret (the relay, and the application that opens
channels on it) mints a producer token and a consumer token per channel; the relay verifies
them in constant time. A producer token cannot consume, a token for one channel opens no other,
and an expired token opens nothing. Each token carries a unique id, so the relay's log can name
the token it refused or admitted without holding the token itself.

Format: ``v1.<payload>.<signature>``, both parts base64url without padding; the payload is the
compact JSON ``{"c": channel_id, "r": role, "e": expires_at_unix_s, "i": token_id}``. Parsing is
strict: only the base64url alphabet, a signature of exactly 43 characters in canonical form, and
a payload of exactly those four claims — anything appended or altered is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from typing import Literal, NamedTuple, get_args

from langchain_stream.errors import ConfigurationError, RelayAuthError
from langchain_stream.relay.protocol import CHANNEL_ID_PATTERN

Role = Literal["producer", "consumer"]
"""The two roles on a channel."""

ROLES: tuple[Role, ...] = get_args(Role)

DEFAULT_TOKEN_TTL_S = 3600.0
"""Default token lifetime: long enough for an HPC queue wait plus the answer."""

DEFAULT_LEEWAY_S = 5.0
"""Clock skew tolerated between the machine that mints and the relay that verifies."""

MIN_SECRET_BYTES = 16
"""Shortest relay secret accepted; 32 random bytes or more is recommended."""

MAX_TOKEN_CHARS = 512
"""Longer strings are refused before any parsing."""

_VERSION = "v1"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes of HMAC-SHA256, unpadded
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # 16 random bytes, unpadded
_CLAIMS = frozenset({"c", "r", "e", "i"})
# Domain separation: the secret signs nothing else with this prefix.
_CONTEXT = b"langchain-stream relay token v1\x00"


class TokenClaims(NamedTuple):
    """What a verified token grants."""

    channel_id: str
    role: Role
    expires_at: float
    """Unix time after which the token is refused."""
    token_id: str
    """The token's unique id (22 base64url characters); safe to log."""


class ChannelTokens(NamedTuple):
    """The producer and consumer tokens of one channel."""

    producer: str
    consumer: str


def _secret_bytes(secret: str | bytes) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"relay secret must be at least {MIN_SECRET_BYTES} bytes")
    return raw


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode unpadded base64url strictly: any character outside the alphabet, or trailing bits
    that are not zero (a second spelling of the same bytes), is a ``ValueError``."""
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


def new_token_id() -> str:
    """Return a fresh random token id: 16 random bytes as 22 base64url characters."""
    return _b64encode(secrets.token_bytes(16))


def _sign(secret: bytes, payload_b64: str) -> bytes:
    return hmac.new(secret, _CONTEXT + payload_b64.encode("ascii"), hashlib.sha256).digest()


class RedactTokensFilter(logging.Filter):
    """Blank the ``Authorization`` header in the handshake lines websockets logs at DEBUG.

    The relay and the clients hand websockets a logger carrying this filter, so no token reaches
    a log at any level [RP §9].
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[0], str)
            and args[0].lower() == "authorization"
        ):
            record.args = (args[0], "[redacted]")
        return True


def wire_logger(name: str) -> logging.Logger:
    """Return the logger named ``name`` with :class:`RedactTokensFilter` attached (once)."""
    log = logging.getLogger(name)
    if not any(isinstance(f, RedactTokensFilter) for f in log.filters):
        log.addFilter(RedactTokensFilter())
    return log


def new_channel_id() -> str:
    """Return a fresh random channel id: 16 random bytes as 32 lowercase hex characters."""
    return secrets.token_hex(16)


def mint_token(
    secret: str | bytes,
    channel_id: str,
    role: Role,
    ttl_s: float = DEFAULT_TOKEN_TTL_S,
    *,
    now: float | None = None,
) -> str:
    """Mint a capability token for one channel and role.

    Args:
        secret: The relay's signing secret (at least :data:`MIN_SECRET_BYTES`).
        channel_id: The channel id (see :func:`new_channel_id`).
        role: ``"producer"`` or ``"consumer"``.
        ttl_s: Seconds until the token expires.
        now: Unix time to count from; defaults to the current time.

    Returns:
        The token string, to be presented as ``Authorization: Bearer <token>``.

    Raises:
        ConfigurationError: Short secret, malformed channel id, unknown role or non-positive TTL.
    """
    key = _secret_bytes(secret)
    if not isinstance(channel_id, str) or not CHANNEL_ID_PATTERN.fullmatch(channel_id):
        raise ConfigurationError("channel id must be 32 lowercase hex characters")
    if role not in ROLES:
        raise ConfigurationError(f"role must be one of {ROLES}, not {role!r}")
    if not ttl_s > 0:
        raise ConfigurationError("token TTL must be positive")
    expires_at = int((time.time() if now is None else now) + ttl_s)
    claims = {"c": channel_id, "r": role, "e": expires_at, "i": new_token_id()}
    payload = json.dumps(claims, separators=(",", ":"))
    payload_b64 = _b64encode(payload.encode("ascii"))
    return f"{_VERSION}.{payload_b64}.{_b64encode(_sign(key, payload_b64))}"


def mint_channel_tokens(
    secret: str | bytes, channel_id: str, ttl_s: float = DEFAULT_TOKEN_TTL_S
) -> ChannelTokens:
    """Mint the producer and the consumer token of a new channel.

    Args:
        secret: The relay's signing secret.
        channel_id: The channel id (see :func:`new_channel_id`).
        ttl_s: Seconds until both tokens expire.
    """
    now = time.time()
    return ChannelTokens(
        producer=mint_token(secret, channel_id, "producer", ttl_s, now=now),
        consumer=mint_token(secret, channel_id, "consumer", ttl_s, now=now),
    )


def verify_token(
    secret: str | bytes,
    token: str,
    *,
    channel_id: str,
    role: Role,
    now: float | None = None,
    leeway_s: float = DEFAULT_LEEWAY_S,
) -> TokenClaims:
    """Check that ``token`` grants ``role`` on ``channel_id`` now.

    The signature is checked first, with :func:`hmac.compare_digest`, so nothing in an unsigned
    payload is ever parsed.

    Args:
        secret: The relay's signing secret.
        token: The presented token.
        channel_id: The channel the connection asks for.
        role: The role the connection asks for.
        now: Unix time to check expiry against; defaults to the current time.
        leeway_s: Clock skew tolerated past the expiry time.

    Returns:
        The token's claims.

    Raises:
        RelayAuthError: Malformed, forged, expired, or for another channel or role. The message
            says which, for the relay's log; the peer is only told that it was refused.
    """
    key = _secret_bytes(secret)
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise RelayAuthError("malformed token", channel_id=channel_id)
    parts = token.split(".")
    if (
        len(parts) != 3
        or parts[0] != _VERSION
        or not _BASE64URL.fullmatch(parts[1])
        or not _SIGNATURE.fullmatch(parts[2])
    ):
        raise RelayAuthError("malformed token", channel_id=channel_id)
    _, payload_b64, signature_b64 = parts
    try:
        signature = _b64decode(signature_b64)
        expected = _sign(key, payload_b64)
    except (binascii.Error, ValueError):
        raise RelayAuthError("malformed token", channel_id=channel_id) from None
    if not hmac.compare_digest(signature, expected):
        raise RelayAuthError("token signature is invalid", channel_id=channel_id)
    try:
        claims = json.loads(_b64decode(payload_b64))
        if not isinstance(claims, dict) or claims.keys() != _CLAIMS:
            raise ValueError("unexpected claims")
        granted_channel, granted_role = claims["c"], claims["r"]
        expires_at, token_id = claims["e"], claims["i"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        # Signed by the secret yet unreadable: minted by an incompatible version.
        raise RelayAuthError("malformed token payload", channel_id=channel_id) from None
    if not isinstance(token_id, str) or not _TOKEN_ID.fullmatch(token_id):
        raise RelayAuthError("malformed token payload", channel_id=channel_id)
    if granted_channel != channel_id:
        raise RelayAuthError("token is for another channel", channel_id=channel_id)
    if granted_role != role:
        raise RelayAuthError(
            f"token is for role {granted_role!r}, not {role!r}", channel_id=channel_id
        )
    if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
        raise RelayAuthError("malformed token payload", channel_id=channel_id)
    if (time.time() if now is None else now) > expires_at + leeway_s:
        raise RelayAuthError("token expired", channel_id=channel_id)
    return TokenClaims(
        channel_id=granted_channel,
        role=granted_role,
        expires_at=float(expires_at),
        token_id=token_id,
    )


__all__ = [
    "DEFAULT_LEEWAY_S",
    "DEFAULT_TOKEN_TTL_S",
    "MIN_SECRET_BYTES",
    "ROLES",
    "ChannelTokens",
    "RedactTokensFilter",
    "Role",
    "TokenClaims",
    "mint_channel_tokens",
    "mint_token",
    "new_channel_id",
    "new_token_id",
    "verify_token",
    "wire_logger",
]
