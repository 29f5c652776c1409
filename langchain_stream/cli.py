"""The ``stream`` command: chat through the router, check the tiers, run the benchmarks."""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.exceptions import TyperException

from langchain_stream.config import get_settings
from langchain_stream.errors import ConfigurationError, StreamError

app = typer.Typer(
    name="stream",
    help="Route chat requests to local llama.cpp, HPC or cloud, and stream the answers.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks; each prints a JSON object as its last line.")
app.add_typer(bench_app, name="bench")

console = Console(stderr=True)
_debug = False


def _show_version(value: bool) -> None:
    if value:
        from langchain_stream import __version__

        sys.stdout.write(f"langchain-stream {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="Logging level on stderr: debug, info, warning, error.")
    ] = "warning",
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, not one line.")
    ] = False,
) -> None:
    """Route chat requests to local llama.cpp, HPC or cloud, and stream the answers."""
    global _debug
    _debug = debug
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise typer.BadParameter(f"unknown log level {log_level!r}", param_hint="--log-level")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """The ``stream`` command: any error ends it with one line on stderr and exit status 1
    (2 for a bad option, argument or command; ``--debug`` shows the traceback instead)."""
    try:
        # Outside standalone mode click returns an Exit's code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, click.exceptions.Abort):
        console.print("[bold red]aborted[/]")
        sys.exit(130)
    except (click.ClickException, TyperException) as exc:  # a bad option, argument or command
        if _debug:
            raise
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        console.print(f"[bold red]error:[/] {escape(message)} (see --help)", soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if _debug:
            raise
        console.print(f"[bold red]error:[/] {escape(_one_line(exc))}", soft_wrap=True)
        sys.exit(1)


def _fail(exc: Exception) -> typer.Exit:
    if _debug:
        traceback.print_exception(exc)
    console.print(f"[bold red]error:[/] {escape(_one_line(exc))}", soft_wrap=True)
    return typer.Exit(code=1)


def _one_line(exc: BaseException) -> str:
    """An error as a person reads it: a missing file as ``PATH: no such file or directory``
    rather than Python's ``[Errno 2] ...``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    return " ".join(str(exc).split()) or type(exc).__name__


@app.command()
def chat(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    tier: Annotated[
        str | None, typer.Option(help="Pin a configured tier (by name) instead of judging.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Maximum answer tokens.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    image: Annotated[
        list[Path] | None,
        typer.Option(
            "--image",
            help="An image file to ask about (PNG, JPEG, GIF, WebP); repeat for several.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print only the answer and its routing record, as one JSON line."
        ),
    ] = False,
) -> None:
    """Answer QUESTION through the router, streaming tokens, then show where it went.

    With --image, the question is about those images: it goes only to a tier that reads
    images, as the privacy settings allow (docs/tiers.md#images).
    """
    from langchain_core.messages import HumanMessage, SystemMessage

    from langchain_stream.chat_model import StreamChatModel
    from langchain_stream.images import image_block_from_file
    from langchain_stream.limits import ImageLimits
    from langchain_stream.tiers.local import ChatLocal

    try:
        limits = ImageLimits.from_settings(get_settings())
        images = [image_block_from_file(path, limits) for path in image or []]
        names = get_settings().configured_tiers
        if tier is not None and tier not in names:
            raise _fail(
                ValueError(f"the tier {tier!r} is not configured (configured: {', '.join(names)})")
            )
        model = StreamChatModel(tier=tier, max_tokens=max_tokens, temperature=temperature)
        with console.status("Loading the local model…"):
            for tier_model in model.tier_models().values():
                if isinstance(tier_model, ChatLocal):  # in process: load before timing
                    tier_model.load()
        messages = [SystemMessage(system)] if system else []
        if images:
            messages.append(HumanMessage([{"type": "text", "text": question}, *images]))
        else:
            messages.append(HumanMessage(question))
        started = time.perf_counter()
        text: list[str] = []
        merged: Any = None
        # With --json stdout carries only the JSON line; the streamed text goes to stderr.
        out = sys.stderr if as_json else sys.stdout
        for chunk in model.stream(messages):
            if chunk.text:
                text.append(chunk.text)
                out.write(chunk.text)
                out.flush()
            merged = chunk if merged is None else merged + chunk
        out.write("\n")
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
        "images": record.get("images"),
        "text": "".join(text),
        "routing": record,
    }
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        return
    table = Table(title="routing", show_header=False, title_justify="left")
    for key in ("tier", "model", "complexity", "reason", "judge_ms", "ttft_ms", "tokens_per_s"):
        table.add_row(key, str(summary[key]))
    console.print(table)


@app.command()
def tiers(
    as_json: Annotated[bool, typer.Option("--json", help="Print the tiers as JSON.")] = False,
) -> None:
    """The configured tiers, their level, privacy class and capabilities, and whether each is
    reachable now."""
    from langchain_stream.doctor import tier_statuses

    try:
        statuses = tier_statuses(get_settings())
    except StreamError as exc:
        raise _fail(exc) from exc
    if as_json:
        payload = {"tiers": [s.model_dump() for s in statuses]}
        sys.stdout.write(json.dumps(payload) + "\n")
        return
    table = Table(title="langchain-stream tiers", title_justify="left")
    for column in ("name", "kind", "level", "privacy", "capabilities", "reachable", "detail"):
        table.add_column(column)
    for status in statuses:
        capabilities = status.capabilities
        table.add_row(
            status.name,
            status.kind,
            status.level,
            status.privacy,
            "not declared" if capabilities is None else ", ".join(capabilities) or "none",
            "[green]yes[/]" if status.reachable else "[red]no[/]",
            escape(status.detail),
        )
    Console().print(table)


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
def judge(
    query: Annotated[
        list[str] | None,
        typer.Argument(
            help="A query to judge; `train` to rebuild the trained judge; or `calibrate FILE` "
            "to fit the judge's offsets to --target on the queries of FILE (JSON Lines)."
        ),
    ] = None,
    eval_file: Annotated[
        Path | None, typer.Option("--eval", help="Evaluate on a JSON Lines file of the rubric.")
    ] = None,
    name: Annotated[str | None, typer.Option("--judge", help="Judge to use.")] = None,
    seed: Annotated[int, typer.Option(help="Seed (random baseline, training).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
    target: Annotated[
        str, typer.Option(help="calibrate: shares of LOW,MEDIUM,HIGH, in percent.")
    ] = "60,25,15",
    config: Annotated[
        Path | None,
        typer.Option(
            help="calibrate: TOML file to save to (default: $STREAM_CONFIG or ./stream.toml)."
        ),
    ] = None,
) -> None:
    """Judge a query, evaluate a judge on a labeled file, `train` or `calibrate FILE`."""
    from langchain_stream.judge import resolve_judge

    words = query or []
    try:
        if words == ["train"]:
            from langchain_stream.judge.train import train

            with console.status("Training the judge on data/complexity…"):
                result = train(seed=seed)
            sys.stdout.write(json.dumps(result, default=str) + "\n")
            return
        if len(words) == 2 and words[0] == "calibrate":
            import warnings

            from langchain_stream.judge.calibrate import EnvironmentOverrideWarning, calibrate_file

            with console.status(f"Judging the queries of {words[1]}…"), warnings.catch_warnings():
                # Said below, once and in plain words, rather than as a Python warning.
                warnings.simplefilter("ignore", EnvironmentOverrideWarning)
                fitted = calibrate_file(
                    Path(words[1]), judge=name, target=target, config_path=config
                )
            if not as_json:
                console.print(fitted.format())
            if fitted.override_warning:
                console.print(f"[bold yellow]warning:[/] {escape(fitted.override_warning)}")
            sys.stdout.write(json.dumps(fitted.to_dict()) + "\n")
            return
        chosen = resolve_judge(name or get_settings().judge)
        if eval_file is not None:
            from langchain_stream.judge.evaluate import (
                evaluate_with_baselines,
                format_comparison,
                load_jsonl,
            )

            report = evaluate_with_baselines(chosen, load_jsonl(eval_file), seed=seed)
            if not as_json:
                Console().print(format_comparison(report))
            sys.stdout.write(report.to_json() + "\n")
            return
        if not words:
            raise ValueError("give a query, --eval FILE, or `train`")
        judgment = chosen.judge(" ".join(words))
    except (StreamError, ValueError, OSError, ImportError) as exc:
        raise _fail(exc) from exc
    result = {
        "complexity": judgment.complexity.value,
        "scores": {k.value: round(v, 4) for k, v in judgment.scores.items()},
        "latency_ms": round(judgment.latency_ms, 3),
        "judge": judgment.judge,
    }
    if not as_json:
        console.print(
            f"[bold]{result['complexity']}[/] {result['scores']} "
            f"in {result['latency_ms']} ms ({result['judge']})"
        )
    sys.stdout.write(json.dumps(result) + "\n")


@app.command()
def costs(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the report, as one JSON object.")
    ] = False,
) -> None:
    """Spend by tier and day from the ledger, and the savings against an all-cloud policy."""
    from langchain_stream.policies.engine import PolicyEngine

    try:
        store = PolicyEngine(get_settings()).store
    except StreamError as exc:
        raise _fail(exc) from exc
    if store is None:
        raise _fail(ValueError("the ledger is disabled (STREAM_DATABASE_URL=none)"))
    rows = store.spend_by_day_and_tier()
    total = sum(r["cost_usd"] or 0.0 for r in rows)
    # The external tiers' answers cost what they cost; the others, the cloud equivalent.
    external = {s.name for s in get_settings().tier_specs if s.privacy == "external"} | {"cloud"}
    all_cloud = sum(
        (r["cost_usd"] or 0.0) if r["tier"] in external else (r["cloud_equivalent_usd"] or 0.0)
        for r in rows
    )
    report = {
        "by_day_and_tier": rows,
        "total_cost_usd": round(total, 6),
        "all_cloud_cost_usd": round(all_cloud, 6),
        "savings_usd": round(all_cloud - total, 6),
        "cloud_model": get_settings().cloud_model,
    }
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    # The table and its summary are the output, so both go to stdout and survive a pipe.
    out = Console()
    table = Table(title="spend by day and tier", title_justify="left")
    for column in ("day", "tier", "requests", "tokens", "cost $", "cloud-equivalent $"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["day"],
            r["tier"],
            str(r["requests"]),
            str(r["tokens"]),
            f"{r['cost_usd'] or 0:.6f}",
            f"{r['cloud_equivalent_usd'] or 0:.6f}",
        )
    out.print(table)
    out.print(
        f"total ${total:.6f}; all on {report['cloud_model'] or 'the cloud'}: "
        f"${all_cloud:.6f}; saved ${all_cloud - total:.6f}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def relay(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 serves others).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    idle_timeout_s: Annotated[float, typer.Option(help="Close idle channels after this.")] = 120.0,
    max_frame_bytes: Annotated[int, typer.Option(help="Largest frame accepted.")] = 65536,
    state_url: Annotated[
        str | None,
        typer.Option(
            help="Record of ended channels shared by the relay set (SQLAlchemy URL; default "
            "STREAM_RELAY_STATE_URL, unset: this relay's memory only)."
        ),
    ] = None,
) -> None:
    """Run the WebSocket relay of the HPC tier's data plane (secret: STREAM_RELAY_SECRET)."""
    from langchain_stream.relay.limits import RelayLimits
    from langchain_stream.relay.server import run_relay

    settings = get_settings()
    secret = settings.relay_secret
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
            limits=RelayLimits(idle_timeout_s=idle_timeout_s, max_frame_bytes=max_frame_bytes),
            state_url=state_url if state_url is not None else settings.relay_state_url,
        )
    except StreamError as exc:
        raise _fail(exc) from exc


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default STREAM_SERVER_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default STREAM_SERVER_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default STREAM_SERVER_WORKERS).")
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
    ] = True,
) -> None:
    """Serve the router as an OpenAI-compatible API (keys: STREAM_API_KEYS / _FILE)."""
    from langchain_stream.server.serve import run_server

    console.print("Starting the server; the local model loads before it accepts requests…")
    try:
        run_server(get_settings(), host=host, port=port, workers=workers, access_log=access_log)
    except StreamError as exc:
        raise _fail(exc) from exc


@bench_app.command("local")
def bench_local(
    runs: Annotated[int, typer.Option(min=1, help="Measured requests per contender.")] = 8,
    max_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """Local tier vs raw llama-cpp-python: TTFT and tokens/s on the same prompts and model."""
    from langchain_stream.bench.local import run_local_bench

    _report(run_local_bench(runs=runs, max_tokens=max_tokens, progress=not as_json), as_json)


@bench_app.command("overhead")
def bench_overhead(
    runs: Annotated[int, typer.Option(min=1, help="Measured request pairs.")] = 40,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """StreamChatModel TTFT minus the tier model's own TTFT, judge time excluded."""
    from langchain_stream.bench.overhead import run_overhead_bench

    _report(run_overhead_bench(runs=runs, progress=not as_json), as_json)


@bench_app.command("relay")
def bench_relay(
    streams: Annotated[int, typer.Option(help="Streams in the paced phase.")] = 50,
    rate: Annotated[float, typer.Option(help="Tokens per second of each paced stream.")] = 20.0,
    tokens: Annotated[
        int | None,
        typer.Option(help="Tokens per paced stream (default 60; with --kill-every, 500)."),
    ] = None,
    saturation_streams: Annotated[int, typer.Option(help="Streams in the saturation phase.")] = 50,
    saturation_tokens: Annotated[
        int, typer.Option(help="Tokens per stream in the saturation phase.")
    ] = 400,
    generators: Annotated[int, typer.Option(help="Load-generator processes.")] = 2,
    relays: Annotated[
        int, typer.Option(help="With --kill-every: relay processes (2-3), one address each.")
    ] = 3,
    kill_every: Annotated[
        float | None,
        typer.Option(
            help="Failover bench: SIGKILL (and restart) a relay every S seconds, then "
            "partition one, while the streams run."
        ),
    ] = None,
    kills: Annotated[int, typer.Option(help="With --kill-every: relays killed.")] = 3,
    partition_s: Annotated[
        float, typer.Option(help="With --kill-every: how long the partition lasts.")
    ] = 2.0,
    failover: Annotated[
        bool, typer.Option(help="With --kill-every: mid-stream failover on or off.")
    ] = True,
    plot: Annotated[
        Path | None, typer.Option(help="With --kill-every: draw tokens/s over time to this PNG.")
    ] = None,
    isolation: Annotated[
        str,
        typer.Option(
            help="With --kill-every: netns (each relay in its own network namespace, the "
            "partition drops its packets; Linux, root), loopback (127.0.0.2-4, the partition "
            "a SIGSTOP), or auto (netns when it can be set up)."
        ),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """The relay against streamrelay: hop latency, loss, order, and relay CPU per token.

    With --kill-every: answers streaming through a relay set whose relays die (failover bench).
    """
    if kill_every is not None:
        from langchain_stream.bench.relay_failover import run_failover_bench

        if kill_every <= 0 or relays not in (2, 3) or kills < 0 or partition_s <= 0:
            raise typer.BadParameter(
                "--kill-every and --partition-s must be positive, --relays 2 or 3"
            )
        try:
            outcome = run_failover_bench(
                streams=streams,
                tokens=tokens or 500,
                rate=rate,
                relays=relays,
                kill_every_s=kill_every,
                kills=kills,
                partition_s=partition_s,
                failover=failover,
                generators=generators,
                isolation=isolation,
            )
        except ConfigurationError as exc:
            raise typer.BadParameter(str(exc)) from None
        if outcome["isolation_note"]:
            typer.echo(f"isolation: {outcome['isolation_note']}", err=True)
        if plot is not None:
            from langchain_stream.bench.relay_failover import plot_failover

            plot_failover(outcome, str(plot))
        _report(outcome, as_json)
        return
    from langchain_stream.bench.relay import run_relay_bench

    result = run_relay_bench(
        streams=streams,
        rate=rate,
        tokens=tokens or 60,
        saturation_streams=saturation_streams,
        saturation_tokens=saturation_tokens,
        generators=generators,
        progress=not as_json,
    )
    _report(result, as_json)


@bench_app.command("hpc")
def bench_hpc(
    runs: Annotated[int, typer.Option(min=1, help="Measured requests per mode.")] = 6,
    max_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """HPC tier TTFT through the relay vs batch mode, on a local endpoint."""
    from langchain_stream.bench.hpc import run_hpc_bench

    _report(run_hpc_bench(runs=runs, max_tokens=max_tokens, progress=not as_json), as_json)


@bench_app.command("compression")
def bench_compression(
    conversations: Annotated[int, typer.Option(help="40-turn conversations to run.")] = 2,
    turns: Annotated[int, typer.Option(help="Turns per conversation.")] = 40,
    n_ctx: Annotated[int, typer.Option(help="The local model's window, in tokens.")] = 2048,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """Long conversations: do simple probes stay local, and do early facts survive?"""
    from langchain_stream.bench.compression import run_compression_bench

    result = run_compression_bench(
        conversations=conversations, turns=turns, n_ctx=n_ctx, progress=not as_json
    )
    _report(result, as_json)


@bench_app.command("serve")
def bench_serve(
    runs: Annotated[int, typer.Option(min=1, help="Measured TTFT requests per gateway.")] = 120,
    requests: Annotated[
        int, typer.Option(help="Requests per gateway and concurrency level for requests/s.")
    ] = 64,
    concurrency: Annotated[
        str, typer.Option(help="Concurrent clients, comma-separated.")
    ] = "1,16,64",
    max_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 32,
    peers: Annotated[
        bool, typer.Option("--peers/--no-peers", help="Also measure hpc-as-api and LiteLLM.")
    ] = True,
    backend: Annotated[
        str,
        typer.Option(
            help="llama: llama.cpp's server on the embedded model; instant: a backend that "
            "answers at once, so only the gateways' own time varies."
        ),
    ] = "llama",
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """Gateway overhead: `stream serve` vs hpc-as-api vs LiteLLM, same loopback backend."""
    from langchain_stream.bench.serve import run_serve_bench

    try:
        levels = [int(c) for c in concurrency.split(",") if c.strip()]
    except ValueError:
        raise _fail(
            ValueError(f"--concurrency takes numbers separated by commas, not {concurrency!r}")
        ) from None
    if not levels or min(levels) < 1:
        raise _fail(ValueError("--concurrency needs at least one level of 1 or more"))
    try:
        result = run_serve_bench(
            runs=runs,
            requests=requests,
            concurrency=levels,
            max_tokens=max_tokens,
            peers=peers,
            progress=not as_json,
            backend=backend,
        )
    except StreamError as exc:
        raise _fail(exc) from exc
    _report(result, as_json)


@bench_app.command("judge")
def bench_judge(
    eval_file: Annotated[
        Path | None,
        typer.Option("--eval", help="Labeled JSON Lines (default: data/complexity/corpus.jsonl)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--judge", help="Judge to use (default: the configured one).")
    ] = None,
    target: Annotated[
        str, typer.Option(help="Class shares LOW,MEDIUM,HIGH to compare with, in percent.")
    ] = "60,25,15",
    seed: Annotated[int, typer.Option(help="Seed of the target-mix sample.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """The judge across authors (as trained), then live on a labeled file: latency per query
    and the share per tier."""
    from langchain_stream.bench.judge import run_judge_bench

    try:
        result = run_judge_bench(
            eval_file=eval_file, judge=name, target=target, seed=seed, progress=not as_json
        )
    except (StreamError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    _report(result, as_json)


@bench_app.command("privacy")
def bench_privacy(
    variants: Annotated[
        Path | None,
        typer.Option(help="Labeled variant set (default: the one shipped in the package)."),
    ] = None,
    ordinary: Annotated[
        Path | None,
        typer.Option(help="Directory of ordinary queries, *.jsonl (default: data/complexity)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line.")] = False,
) -> None:
    """The privacy check: recall per kind of sensitive data, false positives on ordinary
    queries."""
    from langchain_stream.bench.privacy import run_privacy_bench

    try:
        result = run_privacy_bench(variants_file=variants, ordinary_dir=ordinary)
    except (ValueError, OSError) as exc:
        raise _fail(exc) from exc
    _report(result, as_json)


@bench_app.command(
    "all",
    help="Every benchmark in turn, one JSON report (OUT/report.json) and PNG plots; exits 1 if "
    "any benchmark failed.\n\nAt the default sizes (each `stream bench` command's defaults, the "
    "relay at 1, 10, 50, 200 and 500 streams) this takes about 15 minutes on two idle cores; "
    "--quick takes about a minute. The last line printed is a JSON summary.",
)
def bench_all(
    out: Annotated[
        Path, typer.Option(help="Directory for report.json and the plots (docs/figures to commit).")
    ] = Path("bench-results"),
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes: checks that everything runs and draws.")
    ] = False,
    update_readme: Annotated[
        bool, typer.Option("--update-readme", help="Then write the figures table into --readme.")
    ] = False,
    readme: Annotated[Path, typer.Option(help="README to update.")] = Path("README.md"),
) -> None:
    """Every benchmark in turn, one JSON report and PNG plots (help: the decorator's)."""
    import shlex

    try:  # fail before the benchmarks run, not after them
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise _fail(
            ImportError("the plots need matplotlib: pip install 'langchain-stream[bench]'")
        ) from exc
    from langchain_stream.bench.suite import REPORT_NAME, run_all

    command = ["stream", "bench", "all", *(["--quick"] if quick else []), "--out", str(out)]
    report = run_all(out, quick=quick, command=shlex.join(command))
    report_path = out / REPORT_NAME
    table = Table(title=f"stream bench all ({report['duration_s']:.0f} s)", title_justify="left")
    for column in ("figure", "measured", "target"):
        table.add_column(column, overflow="fold")
    for row in report["figures"]:
        style = {True: "green", False: "red"}.get(row["met"], "")
        table.add_row(
            row["figure"],
            f"[{style}]{row['measured']}[/]" if style else row["measured"],
            row["target"],
        )
    console.print(table)
    for key in report["failed"]:
        name = key.removeprefix("plot:")
        error = report.get("plot_errors", {}).get(name) if name != key else None
        error = error or report["benches"].get(key, {}).get("error")
        console.print(f"[bold red]failed:[/] {key}: {error}")
    if update_readme:
        from langchain_stream.bench.readme import update_readme as write_readme

        try:
            write_readme(readme, report_path)
        except (ValueError, OSError) as exc:
            raise _fail(exc) from exc
    summary = {
        "report": str(report_path),
        "plots": sorted(report["plots"].values()),
        "failed": report["failed"],
        "duration_s": report["duration_s"],
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    if report["failed"]:
        raise typer.Exit(code=1)


@bench_app.command("peers")
def bench_peers() -> None:
    """Install the peers that cannot share this package's environment (LiteLLM's proxy) into
    an environment of their own, where `stream bench serve` finds them."""
    from langchain_stream.bench.serve import LITELLM_REQUIREMENT, install_litellm

    console.print(f"Installing {LITELLM_REQUIREMENT} into its own environment…")
    try:
        command = install_litellm()
    except StreamError as exc:
        raise _fail(exc) from exc
    sys.stdout.write(json.dumps({"litellm": str(command)}) + "\n")


@bench_app.command("readme")
def bench_readme(
    report: Annotated[Path, typer.Argument(help="A report.json written by `stream bench all`.")],
    readme: Annotated[Path, typer.Option(help="README to update.")] = Path("README.md"),
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 if the README is not current.")
    ] = False,
) -> None:
    """Write the report's figures table between the README's bench-figures markers."""
    from langchain_stream.bench.readme import render_block, replace_block, update_readme

    try:
        if check:
            data = json.loads(report.read_text(encoding="utf-8"))
            text = readme.read_text(encoding="utf-8")
            current = replace_block(text, render_block(data, report, readme.parent)) == text
            console.print("up to date" if current else f"{readme} differs from {report}")
            if not current:
                raise typer.Exit(code=1)
            return
        changed = update_readme(readme, report)
    except (ValueError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"{readme}: {'updated' if changed else 'already up to date'}")


def _report(result: dict[str, Any], as_json: bool) -> None:
    if not as_json:
        table = Table(show_header=False)
        for key, value in result.items():
            table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
        console.print(table)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":  # pragma: no cover
    main()
