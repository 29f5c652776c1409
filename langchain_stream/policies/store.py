"""Durable policy state: the cost ledger, the audit log and per-conversation routing state.

One SQL database through SQLAlchemy: SQLite by default (a file, shared safely by several
processes in WAL mode), PostgreSQL when ``STREAM_DATABASE_URL`` names one
(``postgresql+psycopg://...``). Nothing here stores message text: the audit log records kinds
of sensitive data, never the data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from langchain_stream.sql import open_engine

TIER_RANK = {"local": 0, "hpc": 1, "cloud": 2}
"""The default tiers' levels; configured tiers rank by their ``level``."""

metadata = MetaData()

ledger = Table(
    "stream_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("day", String(10), nullable=False, index=True),
    Column("month", String(7), nullable=False, index=True),
    Column("user", String(200), nullable=False, index=True),
    Column("conversation", String(200)),
    Column("tier", String(16), nullable=False),
    Column("model", String(200)),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("cloud_equivalent_usd", Float),
)

audit = Table(
    "stream_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("user", String(200), nullable=False),
    Column("conversation", String(200)),
    Column("privacy", String(32), nullable=False),
    Column("sensitive", String(400), nullable=False),
    Column("complexity", String(8)),
    Column("tier", String(16)),
    Column("reason", String(16)),
    Column("outcome", String(16), nullable=False),
    Column("policies", Text, nullable=False),
    Column("tiers_tried", Text, nullable=False),
)

conversations = Table(
    "stream_conversations",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("floor_tier", String(16)),
    Column("private", Boolean, nullable=False, default=False),
    Column("updated", Float, nullable=False),
)


@dataclass(frozen=True)
class ConversationState:
    """What earlier turns of a conversation decided."""

    floor_tier: str | None = None
    """The highest tier that answered so far: later turns never go below it."""
    private: bool = False
    """Sensitive data appeared: the conversation stays off the cloud."""


@dataclass(frozen=True)
class AnswerEntry:
    """One answered request, for the ledger and the audit log."""

    user: str
    conversation: str | None
    privacy: str
    sensitive: Sequence[str]
    complexity: str | None
    tier: str
    reason: str
    model: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cloud_equivalent_usd: float | None
    policies: Sequence[str]
    tiers_tried: Sequence[dict[str, Any]]


def _today(ts: float) -> tuple[str, str]:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m")


_SCHEMA_LOCK_KEY = 0x5354524541  # any constant shared by every process of this package
_INSERT_OR_IGNORE = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class PolicyStore:
    """The ledger, audit log and conversation state in one database."""

    def __init__(self, url: str, tier_rank: Mapping[str, int] | None = None) -> None:
        self.url = url
        self._engine = open_engine(
            url, metadata, purpose="the policy database", lock_key=_SCHEMA_LOCK_KEY
        )
        self.tier_rank: Mapping[str, int] = tier_rank if tier_rank is not None else TIER_RANK
        """Each tier's level, by which a conversation's floor tier only moves up."""

    # --- reads before routing ------------------------------------------------------------------

    def spent_usd(self, user: str, *, now: float | None = None) -> tuple[float, float]:
        """Cloud spend of ``user`` today and this month (UTC)."""
        day, month = _today(now or time.time())
        with self._engine.connect() as conn:
            today = conn.execute(
                select(func.coalesce(func.sum(ledger.c.cost_usd), 0.0)).where(
                    ledger.c.user == user, ledger.c.day == day
                )
            ).scalar_one()
            this_month = conn.execute(
                select(func.coalesce(func.sum(ledger.c.cost_usd), 0.0)).where(
                    ledger.c.user == user, ledger.c.month == month
                )
            ).scalar_one()
        return float(today), float(this_month)

    def conversation(self, conversation_id: str) -> ConversationState:
        """The routing state of a conversation (empty for a new one)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(conversations.c.floor_tier, conversations.c.private).where(
                    conversations.c.id == conversation_id
                )
            ).first()
        return ConversationState() if row is None else ConversationState(row[0], bool(row[1]))

    # --- writes after routing ------------------------------------------------------------------

    def record_answer(self, entry: AnswerEntry, *, now: float | None = None) -> None:
        """Write the ledger and audit rows and advance the conversation, in one transaction."""
        ts = now or time.time()
        day, month = _today(ts)
        with self._engine.begin() as conn:
            conn.execute(
                insert(ledger).values(
                    ts=ts,
                    day=day,
                    month=month,
                    user=entry.user,
                    conversation=entry.conversation,
                    tier=entry.tier,
                    model=entry.model,
                    input_tokens=entry.input_tokens,
                    output_tokens=entry.output_tokens,
                    cost_usd=entry.cost_usd,
                    cloud_equivalent_usd=entry.cloud_equivalent_usd,
                )
            )
            conn.execute(insert(audit).values(**self._audit_row(entry, ts, "answered")))
            if entry.conversation:
                self._advance(conn, entry.conversation, entry.tier, bool(entry.sensitive), ts)

    def _rank(self, tier: str | None) -> int:
        return self.tier_rank.get(tier or "", -1)

    def record_failure(self, entry: AnswerEntry, *, now: float | None = None) -> None:
        """Audit a request that no tier answered."""
        with self._engine.begin() as conn:
            conn.execute(
                insert(audit).values(**self._audit_row(entry, now or time.time(), "failed"))
            )

    def reset_conversation(self, conversation_id: str) -> None:
        """Forget a conversation's floor tier and privacy pin."""
        with self._engine.begin() as conn:
            conn.execute(delete(conversations).where(conversations.c.id == conversation_id))

    # --- conversations as their owner sees them ------------------------------------------------

    def conversations_of(self, user: str, *, limit: int = 200) -> list[dict[str, Any]]:
        """The conversations ``user`` started (whose first answer was theirs), the latest
        first: ``id``, ``updated`` (Unix time of the last answer) and ``answers``."""
        query = (
            select(
                ledger.c.conversation.label("id"),
                func.max(ledger.c.ts).label("updated"),
                func.count().label("answers"),
            )
            .where(ledger.c.user == user, ledger.c.conversation.in_(self._started_by(user)))
            .group_by(ledger.c.conversation)
            .order_by(func.max(ledger.c.ts).desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def conversation_owner(self, conversation_id: str) -> str | None:
        """Who started a conversation: the user of its first answer (``None``: no answer)."""
        query = (
            select(ledger.c.user)
            .where(ledger.c.conversation == conversation_id)
            .order_by(ledger.c.id)
            .limit(1)
        )
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    @staticmethod
    def _started_by(user: str) -> Any:
        first = (
            select(func.min(ledger.c.id).label("id"))
            .where(ledger.c.conversation.is_not(None))
            .group_by(ledger.c.conversation)
            .subquery()
        )
        return select(ledger.c.conversation).where(
            ledger.c.id.in_(select(first.c.id)), ledger.c.user == user
        )

    def answers_in(self, user: str, conversation_id: str) -> list[dict[str, Any]]:
        """The ledger rows of ``user``'s answers in a conversation, oldest first."""
        query = (
            select(
                ledger.c.ts,
                ledger.c.tier,
                ledger.c.model,
                ledger.c.input_tokens,
                ledger.c.output_tokens,
                ledger.c.cost_usd,
                ledger.c.cloud_equivalent_usd,
            )
            .where(ledger.c.user == user, ledger.c.conversation == conversation_id)
            .order_by(ledger.c.id)
        )
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def forget_conversation(self, conversation_id: str) -> None:
        """Unlink a conversation from the ledger and audit log (the spend stays counted) and
        forget its routing state."""
        with self._engine.begin() as conn:
            for table in (ledger, audit):
                conn.execute(
                    update(table)
                    .where(table.c.conversation == conversation_id)
                    .values(conversation=None)
                )
            conn.execute(delete(conversations).where(conversations.c.id == conversation_id))

    # --- reports -------------------------------------------------------------------------------

    def spend_by_day_and_tier(self) -> list[dict[str, Any]]:
        """Requests, tokens, spend and cloud-equivalent spend per day and tier."""
        query = (
            select(
                ledger.c.day,
                ledger.c.tier,
                func.count().label("requests"),
                func.sum(ledger.c.input_tokens + ledger.c.output_tokens).label("tokens"),
                func.sum(ledger.c.cost_usd).label("cost_usd"),
                func.sum(func.coalesce(ledger.c.cloud_equivalent_usd, 0.0)).label(
                    "cloud_equivalent_usd"
                ),
            )
            .group_by(ledger.c.day, ledger.c.tier)
            .order_by(ledger.c.day, ledger.c.tier)
        )
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def audit_entries(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The most recent audit rows, newest last."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            row["policies"] = json.loads(row["policies"])
            row["tiers_tried"] = json.loads(row["tiers_tried"])
            row["sensitive"] = [k for k in row["sensitive"].split(",") if k]
        return rows[::-1]

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _audit_row(entry: AnswerEntry, ts: float, outcome: str) -> dict[str, Any]:
        return {
            "ts": ts,
            "user": entry.user,
            "conversation": entry.conversation,
            "privacy": entry.privacy,
            "sensitive": ",".join(entry.sensitive),
            "complexity": entry.complexity,
            "tier": entry.tier if outcome == "answered" else None,
            "reason": entry.reason,
            "outcome": outcome,
            "policies": json.dumps(list(entry.policies)),
            "tiers_tried": json.dumps(list(entry.tiers_tried)),
        }

    def _advance(
        self, conn: Any, conversation_id: str, tier: str, private: bool, ts: float
    ) -> None:
        # Two processes may answer a conversation's first turns at once: create the row
        # without racing, then read-modify-write it under a row lock (PostgreSQL; SQLite
        # already holds the database's write lock here).
        insert_or_ignore = _INSERT_OR_IGNORE.get(conn.dialect.name)
        if insert_or_ignore is not None:
            conn.execute(
                insert_or_ignore(conversations)
                .values(id=conversation_id, floor_tier=None, private=False, updated=ts)
                .on_conflict_do_nothing(index_elements=[conversations.c.id])
            )
        query = select(conversations.c.floor_tier, conversations.c.private).where(
            conversations.c.id == conversation_id
        )
        row = conn.execute(query.with_for_update()).first()
        if row is None:  # another dialect: no insert-or-ignore
            conn.execute(
                insert(conversations).values(
                    id=conversation_id, floor_tier=tier, private=private, updated=ts
                )
            )
            return
        floor = row[0] if self._rank(row[0]) >= self._rank(tier) else tier
        conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(floor_tier=floor, private=bool(row[1]) or private, updated=ts)
        )
