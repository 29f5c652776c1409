"""API keys (kept only as SHA-256 hashes) and per-key rate limits.

Keys come from ``STREAM_API_KEYS`` (comma-separated) and from ``STREAM_API_KEYS_FILE``, one a
line::

    # name and requests-per-minute are optional
    sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  name=lab  rpm=600
    sk-a-key-written-in-clear                                                 name=ci

A line holds the key's hash (``printf %s "$KEY" | sha256sum``) or, less safely, the key
itself; either way only the hash is kept in memory, and a presented key is compared with
every stored hash in constant time. SHA-256 without salt suffices for random keys of 128 bits
or more; it is no protection for guessable passwords, so use random keys
(``openssl rand -hex 32``).

Rate limits are counted by the ``limits`` library, per key, in a sliding window of one
minute, in the storage ``STREAM_RATE_LIMIT_STORAGE`` names (per process by default).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from limits import RateLimitItemPerMinute
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from langchain_stream.config import Settings
from langchain_stream.errors import ConfigurationError

HASH_PREFIX = "sha256:"


def hash_key(key: str) -> str:
    """The stored form of an API key: ``sha256:<hex digest>``."""
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One accepted key: its name, its hash, and its own rate limit if it has one."""

    name: str
    digest: bytes
    """SHA-256 of the key."""
    rpm: int | None = None
    """Requests per minute for this key; ``None`` uses the server's default."""


def _digest(stored: str) -> bytes:
    if stored.startswith(HASH_PREFIX):
        hex_digest = stored.removeprefix(HASH_PREFIX)
        if len(hex_digest) != 64:
            raise ValueError("a sha256: hash has 64 hexadecimal digits")
        return bytes.fromhex(hex_digest)
    return hashlib.sha256(stored.encode("utf-8")).digest()


def _default_name(digest: bytes) -> str:
    return f"key-{digest.hex()[:8]}"  # names a key in logs without revealing it


def parse_keys_file(path: Path) -> list[ApiKey]:
    """The keys listed in ``path`` (format in the module docstring).

    Raises:
        ConfigurationError: the file is unreadable or a line is malformed (the error names
            the line number, never its content).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the API keys file {path}: {exc}") from exc
    keys: list[ApiKey] = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            digest = _digest(fields[0])
            options = dict(field.split("=", 1) for field in fields[1:])
            unknown = set(options) - {"name", "rpm"}
            if unknown:
                raise ValueError(f"unknown option(s) {sorted(unknown)}")
            rpm = int(options["rpm"]) if "rpm" in options else None
            if rpm is not None and rpm < 0:
                raise ValueError("rpm must be ≥ 0")
        except ValueError as exc:
            raise ConfigurationError(f"{path}, line {number}: {exc}") from None
        keys.append(
            ApiKey(name=options.get("name") or _default_name(digest), digest=digest, rpm=rpm)
        )
    return keys


class KeyStore:
    """The accepted API keys, by hash. An empty store means authentication is off."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys = list(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyStore:
        """Keys from ``STREAM_API_KEYS`` and ``STREAM_API_KEYS_FILE``."""
        keys = []
        for secret in settings.api_keys:
            digest = _digest(secret.get_secret_value())
            keys.append(ApiKey(name=_default_name(digest), digest=digest))
        if settings.api_keys_file is not None:
            keys.extend(parse_keys_file(settings.api_keys_file))
        return cls(keys)

    @classmethod
    def of(cls, *keys: str) -> KeyStore:
        """A store of the given keys (in clear or ``sha256:`` form), e.g. for tests."""
        return cls(ApiKey(name=_default_name(d), digest=d) for d in map(_digest, keys))

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (otherwise every request is let in)."""
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key ``presented`` matches, or ``None``.

        Every stored hash is compared, in constant time, whatever matches first: the time
        taken says nothing about which key or how much of one matched.
        """
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found: ApiKey | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest) and found is None:
                found = key
        return found


class RateLimiter:
    """Requests per minute per key, in a sliding window (``limits``)."""

    def __init__(self, rpm: int, storage_uri: str = "memory://") -> None:
        """Args:
        rpm: default requests per minute per key; 0 means no limit.
        storage_uri: a ``limits`` storage URI (``memory://``, ``redis://host:port``, ...).
        """
        self.rpm = rpm
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        try:
            self._storage = storage_from_string(uri)
        except Exception as exc:  # limits' ConfigurationError, a missing driver
            raise ConfigurationError(f"bad rate-limit storage {storage_uri!r}: {exc}") from exc
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._items: dict[int, RateLimitItemPerMinute] = {}

    def _item(self, rpm: int) -> RateLimitItemPerMinute:
        item = self._items.get(rpm)
        if item is None:
            item = self._items[rpm] = RateLimitItemPerMinute(rpm)
        return item

    async def hit(self, identity: str, rpm: int | None = None) -> float | None:
        """Count one request of ``identity``.

        Returns:
            ``None`` when the request is within the limit, else the seconds to wait before
            retrying.
        """
        limit = self.rpm if rpm is None else rpm
        if limit <= 0:
            return None
        item = self._item(limit)
        if await self._limiter.hit(item, identity):
            return None
        stats = await self._limiter.get_window_stats(item, identity)
        return max(1.0, math.ceil(stats.reset_time - time.time()))
