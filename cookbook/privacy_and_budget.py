"""Privacy and budget policies: what never reaches the cloud, and what stops when a user's
daily cloud budget is spent.

The router is configured as a user configures it, through ``STREAM_*`` settings: a cloud tier
(any OpenAI-compatible API; here ``python -m llama_cpp.server`` on the embedded model, on a free
127.0.0.1 port, stands in for OpenAI, OpenRouter or vLLM), prices pinned for that cloud model,
a per-user daily cap, and a policy database (ledger and audit log) in a temporary directory, so
nothing of yours is read or written. Then, with the default judge:

1. a hard question is judged HIGH and answered by the cloud, priced from its usage;
2. the same question with an e-mail address, a question carrying an API key, and a follow-up in
   a conversation that once held a phone number stay local: the sensitive-data detector removes
   the cloud, and the routing record says why (``reason``, ``sensitive``, ``policies``);
3. ``privacy="institutional"`` keeps a request off the cloud, even one pinned to it;
4. alice asks hard questions until her daily cap is spent; the next one degrades to the local
   tier (with an HPC tier configured it would go to HPC first) with ``reason: budget``, while
   bob, under his own cap, still gets the cloud;
5. the audit log (kinds of sensitive data, never the data) and ``stream costs``; the stand-in
   cloud's own access log confirms how many requests reached it.

Run it: ``python cookbook/privacy_and_budget.py`` (about 10 s on two cores). You will see one
line per request (tier, reason, complexity, cost), the policies that changed a route, the audit
rows, the ``stream costs`` table, and the count of requests the cloud received.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_stream import StreamChatModel
from langchain_stream.tiers.embedded import embedded_model_path

CLOUD_MODEL = "lab-cloud-large"
PRICES = {CLOUD_MODEL: {"input_per_mtok": 30.0, "output_per_mtok": 120.0}}  # USD per 1M tokens
DAILY_CAP_USD = 0.01
HARD = "Prove that there are infinitely many prime numbers."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def stand_in_cloud(log: Path) -> Iterator[str]:
    """``python -m llama_cpp.server`` on the embedded model; yields its OpenAI base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "langchain_stream.llama.server",
                "--model",
                str(embedded_model_path()),
                "--model_alias",
                CLOUD_MODEL,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/models", timeout=2):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the stand-in cloud did not start:\n{log.read_text()}"
                        ) from None
                    time.sleep(0.3)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def show(label: str, record: dict[str, Any]) -> None:
    cost = record.get("cost_usd") or 0.0
    print(
        f"[{label}] tier={record['tier']} reason={record['reason']} "
        f"complexity={record.get('complexity')} cost=${cost:.6f}"
        + (f" sensitive={record['sensitive']}" if record.get("sensitive") else "")
    )
    for policy in record.get("policies", []):
        print(f"    policy: {policy}")


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="stream-policies-", ignore_cleanup_errors=True) as tmp,
        stand_in_cloud(Path(tmp) / "cloud-access.log") as cloud_url,
    ):
        workdir = Path(tmp)
        config = workdir / "stream.toml"
        config.write_text("")  # an empty config file of our own: none of yours is read
        for name in [n for n in os.environ if n.startswith("STREAM_")]:
            del os.environ[name]  # only the settings below apply, not your STREAM_* variables
        os.environ.update(
            {
                "STREAM_CONFIG": str(config),
                "STREAM_DATABASE_URL": f"sqlite:///{workdir / 'stream.db'}",
                "STREAM_CLOUD_MODEL": CLOUD_MODEL,
                "STREAM_CLOUD_BASE_URL": cloud_url,
                "STREAM_CLOUD_API_KEY": "not-needed-on-loopback",
                "STREAM_CLOUD_PRICES": json.dumps(PRICES),
                "STREAM_BUDGET_DAILY_USD": str(DAILY_CAP_USD),
                "STREAM_PRIVACY": "standard",
                "STREAM_MAX_TOKENS": "24",
                "STREAM_TEMPERATURE": "0",
            }
        )

        llm = StreamChatModel(user="alice")  # tiers, judge and policies from the settings
        print(f"tiers: {', '.join(llm.tier_models())}; cloud = {CLOUD_MODEL} at {cloud_url}")
        print(f"price: {PRICES[CLOUD_MODEL]}; daily cap per user: ${DAILY_CAP_USD}\n")

        def ask(label: str, text: str, **kwargs: Any) -> dict[str, Any]:
            record = llm.invoke(text, **kwargs).response_metadata["routing"]
            show(label, record)
            return record

        first = llm.invoke(HARD)
        show("hard question", first.response_metadata["routing"])
        print(f"    answer: {first.text[:70]!r}...")
        ask("with an e-mail", f"{HARD} Then e-mail the proof to jane.doe@uni.edu.")
        ask(
            "with an API key",
            "Our deploys fail with HTTP 401 using the key sk-live-4f9a8b7c6d5e4f3a2b1c. "
            "Diagnose the failure and design a safer way to rotate keys.",
        )
        ask(
            "conversation, turn 1",
            "My phone is +1 617-555-0134, remember it.",
            conversation_id="c1",
        )
        ask("conversation, turn 2", HARD, conversation_id="c1")
        ask("institutional", HARD, privacy="institutional")
        ask("institutional, pinned", HARD, privacy="institutional", model="stream-cloud")

        print(f"\nalice asks hard questions until her ${DAILY_CAP_USD} daily cap is spent:")
        store = llm.policy_engine().store
        assert store is not None
        for _ in range(10):
            record = ask("alice", HARD)
            print(f"    alice has spent ${store.spent_usd('alice')[0]:.6f} today")
            if record["reason"] == "budget":
                break
        ask("bob", HARD, user="bob")

        audit = store.audit_entries()
        print("\naudit log (kinds of sensitive data, never the data):")
        for row in audit:
            print(
                f"  {row['user']:<5} {row['privacy']:<13} {row['complexity'] or '-':<6} "
                f"-> {row['tier']:<5} reason={row['reason']:<7} sensitive={row['sensitive']}"
            )
        leaked = [r for r in audit if r["tier"] == "cloud" and r["sensitive"]]
        assert "jane" not in json.dumps(audit)  # the audit log never holds the matched text
        print(f"[audit] requests with sensitive data that reached the cloud: {len(leaked)}")

        print("\n$ stream costs")
        costs = subprocess.run(
            [sys.executable, "-m", "langchain_stream.cli", "costs"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        print(costs.stdout.strip())

        received = (workdir / "cloud-access.log").read_text().count("POST /v1/chat/completions")
        answered = sum(r["tier"] == "cloud" for r in audit)
        print(
            f"\n[cloud] chat requests the stand-in cloud received: {received}; "
            f"cloud answers in the audit log: {answered}"
        )
        if received != answered:
            raise SystemExit("the cloud's access log and the audit log disagree")


if __name__ == "__main__":
    main()
