"""Capability tokens: role, channel, expiry, forgery, garbage."""

from __future__ import annotations

import base64
import json

import pytest

from langchain_stream.errors import ConfigurationError, RelayAuthError
from langchain_stream.relay.tokens import (
    MIN_SECRET_BYTES,
    TokenClaims,
    mint_channel_tokens,
    mint_token,
    new_channel_id,
    verify_token,
)

SECRET = b"relay-secret-for-tests-0123456789"
NOW = 1_800_000_000.0


def test_new_channel_ids_are_random_hex() -> None:
    ids = {new_channel_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_round_trip_both_roles() -> None:
    cid = new_channel_id()
    tokens = mint_channel_tokens(SECRET, cid, ttl_s=60)
    assert tokens.producer != tokens.consumer
    producer = verify_token(SECRET, tokens.producer, channel_id=cid, role="producer")
    consumer = verify_token(SECRET, tokens.consumer, channel_id=cid, role="consumer")
    assert producer.role == "producer"
    assert consumer.role == "consumer"
    assert isinstance(producer, TokenClaims)
    assert producer.channel_id == cid


def test_str_secret_is_accepted() -> None:
    cid = new_channel_id()
    token = mint_token(SECRET.decode(), cid, "consumer")
    assert verify_token(SECRET, token, channel_id=cid, role="consumer").channel_id == cid


def test_producer_token_cannot_consume() -> None:
    cid = new_channel_id()
    tokens = mint_channel_tokens(SECRET, cid)
    with pytest.raises(RelayAuthError, match="for role 'producer', not 'consumer'"):
        verify_token(SECRET, tokens.producer, channel_id=cid, role="consumer")
    with pytest.raises(RelayAuthError, match="for role 'consumer', not 'producer'"):
        verify_token(SECRET, tokens.consumer, channel_id=cid, role="producer")


def test_token_for_channel_a_does_not_open_channel_b() -> None:
    a, b = new_channel_id(), new_channel_id()
    token = mint_token(SECRET, a, "consumer")
    with pytest.raises(RelayAuthError, match="another channel") as info:
        verify_token(SECRET, token, channel_id=b, role="consumer")
    assert info.value.channel_id == b


def test_expired_token() -> None:
    cid = new_channel_id()
    token = mint_token(SECRET, cid, "consumer", ttl_s=10, now=NOW)
    assert verify_token(SECRET, token, channel_id=cid, role="consumer", now=NOW + 9)
    # Within the leeway it still passes; past it, it does not.
    assert verify_token(SECRET, token, channel_id=cid, role="consumer", now=NOW + 12)
    with pytest.raises(RelayAuthError, match="expired"):
        verify_token(SECRET, token, channel_id=cid, role="consumer", now=NOW + 16)
    with pytest.raises(RelayAuthError, match="expired"):
        verify_token(SECRET, token, channel_id=cid, role="consumer", now=NOW + 11, leeway_s=0)


def test_other_secret_is_a_forgery() -> None:
    cid = new_channel_id()
    token = mint_token(b"another-relay-secret-0123456789!", cid, "consumer")
    with pytest.raises(RelayAuthError, match="signature is invalid"):
        verify_token(SECRET, token, channel_id=cid, role="consumer")


def test_edited_payload_is_a_forgery() -> None:
    """Turning a producer token into a consumer token by editing the payload fails."""
    cid = new_channel_id()
    version, payload, signature = mint_token(SECRET, cid, "producer").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["r"] = "consumer"
    claims["e"] += 10**6
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(RelayAuthError, match="signature is invalid"):
        verify_token(SECRET, f"{version}.{edited}.{signature}", channel_id=cid, role="consumer")


def test_truncated_signature_is_refused() -> None:
    cid = new_channel_id()
    token = mint_token(SECRET, cid, "consumer")
    with pytest.raises(RelayAuthError, match="malformed token"):
        verify_token(SECRET, token[:-4], channel_id=cid, role="consumer")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "Bearer",
        "v1",
        "v1..",
        "v2.e30.AAAA",
        "v1.e30.%%%%",
        "v1.a.b.c",
        "x" * 600,
        "v1.\u00e9\u00e9.AAAA",
    ],
)
def test_garbage_tokens(garbage: str) -> None:
    with pytest.raises(RelayAuthError):
        verify_token(SECRET, garbage, channel_id=new_channel_id(), role="consumer")


def test_non_string_token() -> None:
    with pytest.raises(RelayAuthError, match="malformed"):
        verify_token(SECRET, None, channel_id=new_channel_id(), role="consumer")  # type: ignore[arg-type]


def test_minting_checks_its_inputs() -> None:
    cid = new_channel_id()
    with pytest.raises(ConfigurationError, match="at least"):
        mint_token(b"x" * (MIN_SECRET_BYTES - 1), cid, "producer")
    with pytest.raises(ConfigurationError, match="channel id"):
        mint_token(SECRET, "not-a-channel", "producer")
    with pytest.raises(ConfigurationError, match="role"):
        mint_token(SECRET, cid, "admin")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="TTL"):
        mint_token(SECRET, cid, "producer", ttl_s=0)


# ---------------------------------------------------------------------------- strict parsing


@pytest.mark.parametrize("junk", ["!", "=", "==", "%", "*", "~", "$$$", "A", "AAAA", "\x00"])
def test_junk_appended_to_the_signature_is_refused(junk: str) -> None:
    cid = new_channel_id()
    token = mint_token(SECRET, cid, "consumer")
    with pytest.raises(RelayAuthError, match="malformed token"):
        verify_token(SECRET, token + junk, channel_id=cid, role="consumer")


def test_a_second_spelling_of_the_signature_is_refused() -> None:
    """43 base64 characters carry 258 bits; the last 2 must be zero, not ignored."""
    cid = new_channel_id()
    token = mint_token(SECRET, cid, "consumer")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    respelled = token[:-1] + alphabet[last | 1]
    assert respelled != token
    with pytest.raises(RelayAuthError, match="malformed token"):
        verify_token(SECRET, respelled, channel_id=cid, role="consumer")


def _signed(claims: dict[str, object]) -> str:
    """A token with these exact claims, correctly signed."""
    from langchain_stream.relay.tokens import _b64encode, _sign

    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return f"v1.{payload}.{_b64encode(_sign(SECRET, payload))}"


@pytest.mark.parametrize(
    "change",
    [
        {"x": 1},  # an extra claim
        {"i": None},  # a missing or bad token id
        {"i": "short"},
        {"e": True},  # a boolean is not a time
    ],
)
def test_payload_must_hold_exactly_the_known_claims(change: dict[str, object]) -> None:
    cid = new_channel_id()
    claims: dict[str, object] = {"c": cid, "r": "consumer", "e": NOW + 60, "i": "A" * 22}
    assert verify_token(SECRET, _signed(claims), channel_id=cid, role="consumer", now=NOW)
    claims.update(change)
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(RelayAuthError, match="malformed token payload"):
        verify_token(SECRET, _signed(claims), channel_id=cid, role="consumer", now=NOW)


def test_every_token_carries_a_unique_id() -> None:
    cid = new_channel_id()
    ids = set()
    for _ in range(50):
        tokens = mint_channel_tokens(SECRET, cid)
        ids.add(verify_token(SECRET, tokens.producer, channel_id=cid, role="producer").token_id)
        ids.add(verify_token(SECRET, tokens.consumer, channel_id=cid, role="consumer").token_id)
    assert len(ids) == 100
    assert all(len(i) == 22 for i in ids)
