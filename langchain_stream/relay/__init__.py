"""The HPC tier's data plane: an end-to-end encrypted WebSocket relay.

- :mod:`~langchain_stream.relay.protocol` — frames, AES-256-GCM sealing, channel state machines
  (pure; no I/O).
- :mod:`~langchain_stream.relay.tokens` — per-channel, per-role, single-use capability tokens.
- :mod:`~langchain_stream.relay.limits` — :class:`RelayLimits`, every bound of the relay.
- :mod:`~langchain_stream.relay.ledger` — the relay's admission and accounting rules (pure).
- :mod:`~langchain_stream.relay.channels` — the channel life cycle as a state machine (pure):
  events in, actions out; the server carries the actions out.
- :mod:`~langchain_stream.relay.server` — :class:`RelayServer` and :func:`run_relay`.
- :mod:`~langchain_stream.relay.ended` — the record of ended channels a relay set may share
  (in memory, or in SQL with :mod:`~langchain_stream.relay.ended_sql`).
- :mod:`~langchain_stream.relay.client` — :class:`ConsumerClient`, :class:`ProducerClient`,
  :class:`AsyncProducerClient` and :func:`pick_relays`.

The wire protocol and threat model are in ``docs/relay-protocol.md``.
"""

from langchain_stream.relay.client import (
    AsyncProducerClient,
    ConsumerClient,
    ProducerClient,
    channel_url,
    pick_relays,
)
from langchain_stream.relay.limits import RelayLimits
from langchain_stream.relay.protocol import (
    CancelEvent,
    ChannelOpener,
    ChannelSealer,
    CloseCode,
    Direction,
    ErrorEvent,
    FinalEvent,
    TokensEvent,
    new_channel_key,
)
from langchain_stream.relay.server import RelayServer, run_relay
from langchain_stream.relay.tokens import (
    ChannelTokens,
    TokenClaims,
    mint_channel_tokens,
    mint_token,
    new_channel_id,
    verify_token,
)

__all__ = [
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
