"""The ledger, audit log and conversation state, on a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
import time

from langchain_stream.policies.store import AnswerEntry, PolicyStore


def entry(**overrides) -> AnswerEntry:
    values = {
        "user": "alice",
        "conversation": "c1",
        "privacy": "standard",
        "sensitive": [],
        "complexity": "HIGH",
        "tier": "cloud",
        "reason": "judge",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 500,
        "cost_usd": 0.25,
        "cloud_equivalent_usd": 0.25,
        "policies": [],
        "tiers_tried": [{"tier": "cloud", "error": None}],
    }
    return AnswerEntry(**{**values, **overrides})


def test_spend_is_summed_per_user_day_and_month(tmp_path) -> None:
    store = PolicyStore(f"sqlite:///{tmp_path / 'a.db'}")
    now = time.time()
    store.record_answer(entry(), now=now)
    store.record_answer(entry(cost_usd=0.5), now=now)
    store.record_answer(entry(user="bob", cost_usd=9.0), now=now)
    store.record_answer(entry(cost_usd=3.0), now=now - 40 * 86400)  # an earlier month
    today, month = store.spent_usd("alice", now=now)
    assert today == 0.75
    assert month == 0.75


def test_ledger_survives_a_restart_in_another_process(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    PolicyStore(url).record_answer(entry(cost_usd=1.25))
    code = (
        "from langchain_stream.policies.store import PolicyStore;"
        f"print(PolicyStore({url!r}).spent_usd('alice')[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == 1.25


def test_conversation_floor_only_rises_and_privacy_sticks(tmp_path) -> None:
    store = PolicyStore(f"sqlite:///{tmp_path / 'c.db'}")
    store.record_answer(entry(tier="hpc"))
    store.record_answer(entry(tier="local", sensitive=["email"]))
    state = store.conversation("c1")
    assert (state.floor_tier, state.private) == ("hpc", True)
    store.record_answer(entry(tier="cloud"))
    assert store.conversation("c1").floor_tier == "cloud"
    store.reset_conversation("c1")
    assert store.conversation("c1").floor_tier is None


def test_audit_log_keeps_kinds_never_text(tmp_path) -> None:
    store = PolicyStore(f"sqlite:///{tmp_path / 'd.db'}")
    store.record_answer(entry(tier="local", sensitive=["email", "phone"], reason="privacy"))
    store.record_failure(entry(tiers_tried=[{"tier": "local", "error": "down"}]))
    rows = store.audit_entries()
    assert [(r["outcome"], r["tier"], r["sensitive"]) for r in rows] == [
        ("answered", "local", ["email", "phone"]),
        ("failed", None, []),
    ]
    report = store.spend_by_day_and_tier()
    assert report[0]["tier"] == "local"
    assert report[0]["requests"] == 1
