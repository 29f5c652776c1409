"""API keys kept as hashes, the keys file, and per-key rate limits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr

from langchain_stream.config import Settings
from langchain_stream.errors import ConfigurationError
from langchain_stream.server.auth import KeyStore, RateLimiter, hash_key, parse_keys_file

KEY = "sk-" + "7" * 40


def test_hash_key_is_the_sha256_form() -> None:
    assert hash_key(KEY) == "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()


def test_keys_from_the_environment_match_and_are_kept_only_hashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAM_API_KEYS", f"{KEY}, sk-other")
    store = KeyStore.from_settings(Settings())
    assert len(store) == 2 and store.enabled
    key = store.authenticate(KEY)
    assert key is not None and key.name.startswith("key-")
    assert KEY not in repr(store.__dict__) and KEY not in key.name
    assert store.authenticate("sk-wrong") is None
    assert store.authenticate("") is None


def test_keys_file_takes_hashes_or_clear_keys_with_names_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(
        f"# lab keys\n{hash_key(KEY)}  name=lab  rpm=600\n\nsk-clear-key name=ci   # a comment\n"
    )
    store = KeyStore(parse_keys_file(path))
    lab = store.authenticate(KEY)
    assert lab is not None and (lab.name, lab.rpm) == ("lab", 600)
    ci = store.authenticate("sk-clear-key")
    assert ci is not None and (ci.name, ci.rpm) == ("ci", None)


def test_settings_combine_the_environment_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(hash_key("sk-from-file") + "\n")
    store = KeyStore.from_settings(Settings(api_keys=[SecretStr(KEY)], api_keys_file=path))
    assert store.authenticate(KEY) and store.authenticate("sk-from-file")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("sha256:abcd", "64 hexadecimal digits"),
        ("sha256:" + "z" * 64, "non-hexadecimal"),
        (f"{KEY} colour=blue", "unknown option"),
        (f"{KEY} rpm=fast", "invalid literal"),
        (f"{KEY} rpm=-1", "rpm must be"),
        (f"{KEY} name", "dictionary update"),
    ],
)
def test_a_malformed_keys_file_line_is_named_by_number_not_content(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{hash_key('sk-fine')}\n{line}\n")
    with pytest.raises(ConfigurationError, match="line 2") as caught:
        parse_keys_file(path)
    assert problem in str(caught.value)
    assert KEY not in str(caught.value)


def test_a_missing_keys_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        parse_keys_file(tmp_path / "absent")


def test_no_keys_means_authentication_is_off() -> None:
    assert not KeyStore().enabled


async def test_rate_limiter_counts_per_identity_and_says_when_to_retry() -> None:
    limiter = RateLimiter(rpm=2)
    assert await limiter.hit("a") is None
    assert await limiter.hit("a") is None
    retry = await limiter.hit("a")
    assert retry is not None and 1 <= retry <= 60
    assert await limiter.hit("b") is None  # another key has its own window
    assert await limiter.hit("c", rpm=1) is None  # a per-key limit
    assert await limiter.hit("c", rpm=1) is not None


async def test_rate_limit_zero_is_off() -> None:
    limiter = RateLimiter(rpm=0)
    for _ in range(50):
        assert await limiter.hit("a") is None


def test_an_unknown_rate_limit_storage_fails_clearly() -> None:
    with pytest.raises(ConfigurationError, match="rate-limit storage"):
        RateLimiter(rpm=5, storage_uri="nosuch://x")
