"""The relay's admission and accounting rules: a pure state machine, no sockets, no clock.

:class:`RelayLedger` decides whether a connection may join a channel and whether a frame may be
buffered, and it keeps the books that make those decisions fair [RP §6, §12]:

- a channel counts against every client address that joined it, and its buffered bytes against
  its producer's address, until the channel is *forgotten* — not just while a socket is open —
  so what a client leaves behind stays on its own account;
- buffered bytes are bounded per channel, per address and in total (the memory ceiling);
- a channel whose sides never both arrive, or that nobody is attached to any more, becomes
  overdue after a short timeout;
- a forgotten channel's id is remembered until its tokens expire, so it never opens again.

Every method takes ``now`` (monotonic seconds) from the caller, so the rules can be tested with a
fake clock; the asyncio server is a thin layer that consults this object.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from langchain_stream.relay.limits import RelayLimits

_ROLES = frozenset({"producer", "consumer"})


class Verdict(Enum):
    """Why the ledger refuses a connection, refuses a frame, or retires a channel."""

    ROLE_TAKEN = "role taken"
    CHANNEL_ENDED = "channel already ended"
    CHANNEL_LIMIT = "too many channels"
    ENDED_MEMORY_FULL = "too many ended channels remembered"
    CLIENT_CHANNELS = "too many channels for this client"
    CLIENT_BYTES = "too many bytes buffered for this client"
    MEMORY_FULL = "relay buffer memory full"
    CHANNEL_BUFFER = "buffer overflow"
    PAIRING_TIMEOUT = "pairing timeout"
    UNATTENDED = "left unattended"


@dataclass(eq=False)
class _Account:
    """What one channel holds, and on whose account."""

    created_at: float
    remember_until: float
    addresses: set[str] = field(default_factory=set)
    joined: set[str] = field(default_factory=set)
    attached: set[str] = field(default_factory=set)
    detached_at: float | None = None
    producer_address: str | None = None
    frames: int = 0
    bytes: int = 0


class RelayLedger:
    """Admission and accounting for one relay.

    Args:
        limits: The bounds to enforce.
    """

    def __init__(self, limits: RelayLimits) -> None:
        self._limits = limits
        self._accounts: dict[str, _Account] = {}
        self._channels_held: Counter[str] = Counter()
        self._bytes_held: Counter[str] = Counter()
        self._bytes_total = 0
        self._ended: dict[str, float] = {}
        self._ended_by_expiry: list[tuple[float, str]] = []

    # ------------------------------------------------------------------ figures

    @property
    def channels(self) -> int:
        """Channels held (open or left behind)."""
        return len(self._accounts)

    @property
    def buffered_bytes(self) -> int:
        """Bytes buffered for absent consumers, over all channels."""
        return self._bytes_total

    @property
    def ended_channels(self) -> int:
        """Ended channel ids remembered (expired ones are pruned on admission)."""
        return len(self._ended)

    def channels_held_by(self, address: str) -> int:
        """Channels that count against ``address``."""
        return self._channels_held[address]

    def bytes_held_by(self, address: str) -> int:
        """Buffered bytes that count against ``address``."""
        return self._bytes_held[address]

    # ------------------------------------------------------------------ connections

    def check(self, channel_id: str, role: str, address: str, *, now: float) -> Verdict | None:
        """Whether ``role`` from ``address`` may join ``channel_id`` now; registers nothing.

        For the opening handshake, which can still fail after it; :meth:`admit` decides again.
        """
        if role not in _ROLES:
            raise ValueError(f"unknown role {role!r}")
        limits = self._limits
        account = self._accounts.get(channel_id)
        if account is not None:
            if role in account.joined:
                # A role connects once per channel: a second producer could only be a duplicate
                # or a retried worker, whose frames would reuse nonces under the same key.
                return Verdict.ROLE_TAKEN
        else:
            self._prune_ended(now)
            if channel_id in self._ended:
                return Verdict.CHANNEL_ENDED
            if limits.max_channels is not None and len(self._accounts) >= limits.max_channels:
                return Verdict.CHANNEL_LIMIT
            if len(self._ended) >= limits.max_ended_channels:
                return Verdict.ENDED_MEMORY_FULL
        if (
            (account is None or address not in account.addresses)
            and limits.max_channels_per_client is not None
            and self._channels_held[address] >= limits.max_channels_per_client
        ):
            return Verdict.CLIENT_CHANNELS
        if role == "producer":
            # A producer may buffer; refuse it up front where there is no room left for that.
            per_client = limits.max_buffered_bytes_per_client
            if per_client is not None and self._bytes_held[address] >= per_client:
                return Verdict.CLIENT_BYTES
            total = limits.max_buffered_bytes_total
            if total is not None and self._bytes_total >= total:
                return Verdict.MEMORY_FULL
        return None

    def admit(
        self, channel_id: str, role: str, address: str, *, expires_in_s: float, now: float
    ) -> Verdict | None:
        """Decide whether ``role`` from ``address`` may join ``channel_id``; register it if so.

        Args:
            channel_id: The channel asked for.
            role: ``"producer"`` or ``"consumer"``.
            address: The client address the connection counts against.
            expires_in_s: Seconds until the presented token expires (plus clock leeway): the
                channel id is remembered at least that long after the channel ends.
            now: Monotonic time.

        Returns:
            ``None`` when admitted (and registered), else why not; a refusal changes nothing.
        """
        verdict = self.check(channel_id, role, address, now=now)
        if verdict is not None:
            return verdict
        account = self._accounts.get(channel_id)
        joins_anew = account is None or address not in account.addresses
        if account is None:
            account = self._accounts[channel_id] = _Account(
                created_at=now, remember_until=now + expires_in_s
            )
        account.remember_until = max(account.remember_until, now + expires_in_s)
        if joins_anew:
            account.addresses.add(address)
            self._channels_held[address] += 1
        account.joined.add(role)
        account.attached.add(role)
        account.detached_at = None
        if role == "producer":
            account.producer_address = address
        return None

    def detach(self, channel_id: str, role: str, *, now: float) -> None:
        """``role``'s connection to ``channel_id`` ended (the channel may live on)."""
        account = self._accounts.get(channel_id)
        if account is None:
            return
        account.attached.discard(role)
        if not account.attached:
            account.detached_at = now

    def forget(self, channel_id: str, *, remember: bool = True) -> None:
        """The relay dropped ``channel_id``: free everything it held, and (``remember``) refuse
        the id until its tokens expire."""
        account = self._accounts.pop(channel_id, None)
        if account is None:
            return
        self._drop_buffer(account)
        for address in account.addresses:
            self._channels_held[address] -= 1
            if self._channels_held[address] <= 0:
                del self._channels_held[address]
        if not remember:
            return
        self._ended[channel_id] = account.remember_until
        heapq.heappush(self._ended_by_expiry, (account.remember_until, channel_id))

    # ------------------------------------------------------------------ buffered frames

    def hold(self, channel_id: str, nbytes: int) -> Verdict | None:
        """Charge one frame of ``nbytes`` buffered on ``channel_id`` to its producer's address.

        Returns:
            ``None`` when charged, else the bound it would pass; a refusal charges nothing.
        """
        account = self._accounts.get(channel_id)
        if account is None or account.producer_address is None:
            raise KeyError(f"no producer on channel {channel_id[:8]}")
        limits = self._limits
        address = account.producer_address
        if (
            limits.max_buffered_frames is not None
            and account.frames + 1 > limits.max_buffered_frames
        ) or (
            limits.max_buffered_bytes is not None
            and account.bytes + nbytes > limits.max_buffered_bytes
        ):
            return Verdict.CHANNEL_BUFFER
        per_client = limits.max_buffered_bytes_per_client
        if per_client is not None and self._bytes_held[address] + nbytes > per_client:
            return Verdict.CLIENT_BYTES
        total = limits.max_buffered_bytes_total
        if total is not None and self._bytes_total + nbytes > total:
            return Verdict.MEMORY_FULL
        account.frames += 1
        account.bytes += nbytes
        self._bytes_held[address] += nbytes
        self._bytes_total += nbytes
        return None

    def release(self, channel_id: str, nbytes: int) -> None:
        """One buffered frame of ``nbytes`` left the buffer (delivered to the consumer)."""
        account = self._accounts.get(channel_id)
        if account is None or account.producer_address is None:
            return
        nbytes = min(nbytes, account.bytes)
        account.frames = max(account.frames - 1, 0)
        account.bytes -= nbytes
        self._uncharge(account.producer_address, nbytes)

    def release_all(self, channel_id: str) -> None:
        """Everything buffered on ``channel_id`` was discarded."""
        account = self._accounts.get(channel_id)
        if account is not None:
            self._drop_buffer(account)

    # ------------------------------------------------------------------ timeouts

    def overdue(self, now: float) -> list[tuple[str, Verdict]]:
        """Channels past the pairing or the unattended timeout, with which one.

        Pairing: both sides have not joined ``pairing_timeout_s`` after the first did. Unattended:
        no connection has been attached for ``unattended_timeout_s`` (what a departed side left).
        """
        pairing, unattended = self._limits.pairing_timeout_s, self._limits.unattended_timeout_s
        due: list[tuple[str, Verdict]] = []
        for channel_id, account in self._accounts.items():
            if (
                unattended is not None
                and account.detached_at is not None
                and now - account.detached_at >= unattended
            ):
                due.append((channel_id, Verdict.UNATTENDED))
            elif (
                pairing is not None
                and account.joined != _ROLES
                and now - account.created_at >= pairing
            ):
                due.append((channel_id, Verdict.PAIRING_TIMEOUT))
        return due

    # ------------------------------------------------------------------ internals

    def _drop_buffer(self, account: _Account) -> None:
        if account.producer_address is not None:
            self._uncharge(account.producer_address, account.bytes)
        account.frames = account.bytes = 0

    def _uncharge(self, address: str, nbytes: int) -> None:
        self._bytes_total -= nbytes
        self._bytes_held[address] -= nbytes
        if self._bytes_held[address] <= 0:
            del self._bytes_held[address]

    def _prune_ended(self, now: float) -> None:
        heap = self._ended_by_expiry
        while heap and heap[0][0] <= now:
            until, channel_id = heapq.heappop(heap)
            if self._ended.get(channel_id) == until:
                del self._ended[channel_id]


__all__ = ["RelayLedger", "Verdict"]
