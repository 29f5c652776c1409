"""The ``stream`` command: chat through the router, check the tiers, run the benchmarks."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from langchain_stream.config import TIERS, get_settings
from langchain_stream.errors import StreamError

app = typer.Typer(
    name="stream",
    help="Route chat requests to local llama.cpp, HPC or cloud, and stream the answers.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks; each prints a JSON object as its last line.")
app.add_typer(bench_app, name="bench")

console = Console(stderr=True)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=1)


@app.command()
def chat(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    tier: Annotated[
        str | None, typer.Option(help="Pin a tier (local, hpc, cloud) instead of judging.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Maximum answer tokens.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with the routing record as one JSON line.")
    ] = False,
) -> None:
    """Answer QUESTION through the router, streaming tokens, then show where it went."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from langchain_stream.chat_model import StreamChatModel

    if tier is not None and tier not in TIERS:
        raise _fail(ValueError(f"--tier must be one of {', '.join(TIERS)}"))
    try:
        model = StreamChatModel(tier=tier, max_tokens=max_tokens, temperature=temperature)  # type: ignore[arg-type]
        with console.status("Loading the local model…"):
            local = model.tier_models()["local"]
            load = getattr(local, "load", None)
            if load is not None:
                load()
        messages = [SystemMessage(system)] if system else []
        messages.append(HumanMessage(question))
        started = time.perf_counter()
        text: list[str] = []
        merged: Any = None
        for chunk in model.stream(messages):
            if chunk.text:
                text.append(chunk.text)
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
            merged = chunk if merged is None else merged + chunk
        sys.stdout.write("\n")
    except StreamError as exc:
        raise _fail(exc) from exc
    record = dict(merged.response_metadata.get("routing", {})) if merged is not None else {}
    summary = {
        "tier": record.get("tier"),
        "model": record.get("model"),
        "complexity": record.get("complexity"),
        "reason": record.get("reason"),
        "judge_ms": record.get("judge_ms"),
        "ttft_ms": record.get("ttft_ms"),
        "tokens_per_s": record.get("tokens_per_s"),
        "total_ms": round((time.perf_counter() - started) * 1000.0, 1),
        "usage": record.get("usage"),
        "tiers_tried": record.get("tiers_tried"),
        "text": "".join(text),
    }
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        return
    table = Table(title="routing", show_header=False, title_justify="left")
    for key in ("tier", "model", "complexity", "reason", "judge_ms", "ttft_ms", "tokens_per_s"):
        table.add_row(key, str(summary[key]))
    console.print(table)


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Which tiers are configured, reachable and healthy, and why not."""
    from langchain_stream.doctor import check_all

    try:
        report = check_all(get_settings())
    except StreamError as exc:
        raise _fail(exc) from exc
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump() for r in report]) + "\n")
    else:
        table = Table(title="langchain-stream doctor", title_justify="left")
        for column in ("part", "configured", "healthy", "detail"):
            table.add_column(column)
        for row in report:
            table.add_row(
                row.part,
                "yes" if row.configured else "no",
                "[green]yes[/]" if row.healthy else ("[red]no[/]" if row.configured else "-"),
                row.detail,
            )
        Console().print(table)
    if not all(r.healthy for r in report if r.configured):
        raise typer.Exit(code=1)


@app.command()
def relay(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 serves others).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    idle_timeout_s: Annotated[float, typer.Option(help="Close idle channels after this.")] = 120.0,
    max_frame_bytes: Annotated[int, typer.Option(help="Largest frame accepted.")] = 65536,
) -> None:
    """Run the WebSocket relay of the HPC tier's data plane (secret: STREAM_RELAY_SECRET)."""
    from langchain_stream.relay.server import run_relay

    secret = get_settings().relay_secret
    if secret is None:
        raise _fail(
            ValueError("set STREAM_RELAY_SECRET (32 random bytes, e.g. `openssl rand -hex 32`)")
        )
    console.print(f"relay listening on ws://{host}:{port} (health: http://{host}:{port}/healthz)")
    try:
        run_relay(
            host,
            port,
            secret.get_secret_value(),
            idle_timeout_s=idle_timeout_s,
            max_frame_bytes=max_frame_bytes,
        )
    except StreamError as exc:
        raise _fail(exc) from exc


@bench_app.command("local")
def bench_local(
    runs: Annotated[int, typer.Option(help="Measured requests per contender.")] = 8,
    max_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """Local tier vs raw llama-cpp-python: TTFT and tokens/s on the same prompts and model."""
    from langchain_stream.bench.local import run_local_bench

    _report(run_local_bench(runs=runs, max_tokens=max_tokens, progress=not as_json), as_json)


@bench_app.command("overhead")
def bench_overhead(
    runs: Annotated[int, typer.Option(help="Measured request pairs.")] = 40,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """StreamChatModel TTFT minus the tier model's own TTFT, judge time excluded."""
    from langchain_stream.bench.overhead import run_overhead_bench

    _report(run_overhead_bench(runs=runs, progress=not as_json), as_json)


def _report(result: dict[str, Any], as_json: bool) -> None:
    if not as_json:
        table = Table(show_header=False)
        for key, value in result.items():
            table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
        console.print(table)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":  # pragma: no cover
    app()
