"""The figures table of a ``stream bench all`` report, and the README block that shows it.

:func:`figure_rows` turns a report into one row per figure of docs/design.md#figures (and the
compression figures): what was measured, the target, whether it was met, and the command that
reproduces it. :func:`update_readme` writes them between ``<!-- bench-figures -->`` and
``<!-- /bench-figures -->``; everything outside the markers is left as it is, and the same
report always gives the same block.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_stream.bench.plots import PLOTS, NoData, machine_line, relay_levels, result
from langchain_stream.bench.suite import RELAY_HEADLINE_STREAMS

OPEN = "<!-- bench-figures -->"
CLOSE = "<!-- /bench-figures -->"

PLOT_TITLES = {
    "ttft_per_tier": "TTFT per tier",
    "hpc_relay_vs_batch": "HPC relay vs batch",
    "relay_hop_vs_streams": "relay hop vs streams",
    "judge_confusion": "judge confusion matrix",
    "judge_tradeoff": "judge retention vs HIGH recall",
    "judge_latency": "judge latency",
    "tier_shares": "tier shares",
    "compression_retention": "compression retention",
    "serve_added_ttft": "gateway added TTFT",
}


def _num(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _pct(shares: dict[str, float]) -> str:
    return " / ".join(f"{100 * shares[c]:.0f}" for c in ("LOW", "MEDIUM", "HIGH")) + " %"


# Each figure: (bench key, target, reader). A reader takes the bench's result and returns
# (figure label, measured text, met: True / False / None for a figure without a verdict).
Reader = Callable[[dict[str, Any]], tuple[str, str, bool | None]]


def _judge_quality(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    cross = r.get("cross_author")
    if not cross:  # a judge without a training record: its figure on the file, as measured
        base = r["keyword_baseline"]["macro_f1"]
        return (
            f"judge macro-F1 on {r['eval_file']} ({r['n']} queries)",
            f"{r['macro_f1']:.3f} (keyword baseline {base:.3f})",
            r["macro_f1"] >= 0.70,
        )
    figures = cross["calibrated"]
    pooled = figures["pooled"]
    return (
        f"judge macro-F1 across authors (each author left out in turn, "
        f"{len(figures['per_author'])} authors)",
        f"{figures['macro_f1_mean']:.3f} ± {figures['macro_f1_std']:.3f} "
        f"(min {figures['macro_f1_min']:.3f}); free-tier retention "
        f"{pooled['free_tier_retention']:.3f}, HIGH recall {pooled['recall']['HIGH']:.3f}",
        figures["macro_f1_mean"] >= 0.70
        and pooled["free_tier_retention"] >= 0.85
        and pooled["recall"]["HIGH"] >= 0.70,
    )


def _judge_latency(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    p50, p99 = r["latency_ms"]["p50"], r["latency_ms"]["p99"]
    return (
        "judge latency per query, p50 / p99",
        f"{_num(p50)} / {_num(p99)} ms",
        (p50 <= 5 and p99 <= 20),
    )


def _tier_shares(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    mix, tiers = r["shares"]["target_mix"], r["shares"]["tiers"]
    routed = " / ".join(tiers[c] for c in ("LOW", "MEDIUM", "HIGH"))
    return (
        f"share judged LOW / MEDIUM / HIGH (→ {routed}) on a workload in the target's mix "
        f"({mix['n']} corpus queries)",
        f"{_pct(mix['judged'])} (corpus as is: {_pct(r['shares']['held_out']['judged'])})",
        None,
    )


def _local(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    ratio = r["throughput_ratio"]
    rate, ttft = r["tokens_per_s"], r["ttft_ms"]
    return (
        "local tier tokens/s vs raw llama-cpp-python",
        f"{100 * ratio:.0f} % ({_num(rate['langchain_stream']['p50'])} vs "
        f"{_num(rate['llama_cpp_python']['p50'])} tokens/s p50; TTFT "
        f"{_num(ttft['langchain_stream']['p50'])} vs {_num(ttft['llama_cpp_python']['p50'])} ms)",
        ratio is not None and ratio >= 0.95,
    )


def _p50_within(
    key: str, title: str, limit_ms: float
) -> Callable[[dict[str, Any]], tuple[str, str, bool | None]]:
    """A row of the latency ``key`` (p50 and p95, in ms), whose p50 must stay within
    ``limit_ms``."""

    def row(r: dict[str, Any]) -> tuple[str, str, bool | None]:
        ms = r[key]
        return (title, f"{_num(ms['p50'])} ms (p95 {_num(ms['p95'])} ms)", ms["p50"] <= limit_ms)

    return row


_router_overhead = _p50_within("overhead_ms", "router TTFT overhead (judge excluded), p50", 2)


def _overhead(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    """The router's overhead, beside LangGraph's own floor for the router's graph."""
    title, measured, met = _router_overhead(r)
    floor = r.get("langgraph_floor_ms")
    if floor:
        measured = f"{measured}; LangGraph's own floor for this graph: {_num(floor['p50'])} ms"
    return title, measured, met


_hpc_added = _p50_within(
    "relay_added_ms", "what the relay adds to the HPC tier's first token, p50", 5
)


def _relay_peer(r: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> str:
    peer = r.get("streamrelay", {})
    if "error" in peer:
        return f"streamrelay not measured: {peer['error']}"
    return f"streamrelay {text(peer)}"


def _beside_streamrelay(
    title: str,
    figure: Callable[[dict[str, Any]], str],
    unit: str,
    ok: Callable[[dict[str, Any]], bool],
) -> Callable[[dict[str, Any]], tuple[str, str, bool | None]]:
    """A row of the relay's paced phase: our ``figure`` beside streamrelay's. ``title`` may
    name ``{paced}``, the phase's streams and rate."""

    def row(r: dict[str, Any]) -> tuple[str, str, bool | None]:
        paced = f"{r['streams']} streams × {r['conditions']['rate']:g} tokens/s"
        return (
            title.format(paced=paced),
            f"{figure(r)}{unit} ({_relay_peer(r, figure)})",
            ok(r),
        )

    return row


_relay_hop = _beside_streamrelay(
    "relay hop, {paced}, p50 / p99",
    lambda x: f"{_num(x['hop_ms']['p50'])} / {_num(x['hop_ms']['p99'])}",
    " ms",
    lambda r: r["hop_ms"]["p50"] <= 2 and r["hop_ms"]["p99"] <= 10,
)
_relay_loss = _beside_streamrelay(
    "{paced}: tokens lost / reordered",
    lambda x: f"{x['lost']} / {x['reordered']}",
    "",
    lambda r: r["lost"] == 0 and r["reordered"] == 0,
)


def _relay_cpu(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    ours = r["relay_cpu_us_per_token"]
    ratio = r.get("cpu_per_token_vs_streamrelay")
    peer = r.get("streamrelay", {})
    per_message = r["saturation"]["tokens_per_message"]
    if ratio is None:
        measured = f"{_num(ours)} µs ({_relay_peer(r, str)})"
    else:
        measured = (
            f"{_num(ours)} µs vs {_num(peer['relay_cpu_us_per_token'])} µs "
            f"({ratio:.2f}×; {per_message:g} tokens per message)"
        )
    return (
        f"relay CPU per token at saturation ({r['saturation']['streams']} streams)",
        measured,
        None if ratio is None else ratio <= 1 / 3,
    )


def _relay_paced_cpu(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    paced = r["paced"]
    peer = r.get("streamrelay", {}).get("paced", {})
    ours = paced["relay_cpu_us_per_token"]
    ratio = ours / peer["relay_cpu_us_per_token"] if peer.get("relay_cpu_us_per_token") else None
    if ratio is None:
        measured = f"{_num(ours)} µs (streamrelay not measured)"
    else:
        measured = f"{_num(ours)} µs vs {_num(peer['relay_cpu_us_per_token'])} µs ({ratio:.2f}×)"
    return (
        f"relay CPU per token at a real answer's pace ({paced['streams']} streams × "
        f"{paced['rate_per_stream']:g} tokens/s, one token per message)",
        measured,
        None if ratio is None else ratio <= 1 / 3,
    )


def _hpc_speedup(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    return (
        f"HPC TTFT, relay vs batch, {r['max_tokens']}-token answers (p50)",
        f"{_num(r['ttft_relay_ms'])} vs {_num(r['ttft_batch_ms'])} ms ({r['speedup']:g}×)",
        r["speedup"] >= 20,
    )


def _probe_turns(r: dict[str, Any]) -> str:
    turns = sorted({p["turn"] for p in r["per_probe"]})
    if len(turns) > 1:
        return f"turns {turns[0]}–{turns[-1]}"
    return f"turn {turns[0]}" if turns else "no turn"


def _compression_local(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    return (
        f"simple probes at {_probe_turns(r)} of {r['turns']}-turn conversations answered "
        f"by the local tier ({r['local_n_ctx']}-token window)",
        f"{r['stayed_local']} / {r['probes']} ({r['probes_over_local_budget']} with a history "
        "over the local budget)",
        r["probes"] > 0 and r["stayed_local"] == r["probes"],
    )


def _compression_recall(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    return (
        "planted facts present in the context the local tier received",
        f"{r['fact_recall']:.2f} (in the answers: {r['fact_recall_answer']:.2f})",
        r["fact_recall"] >= 0.8,
    )


def _with_ci(gateway: dict[str, Any]) -> str:
    ci = gateway.get("added_ttft_ms_p50_ci95")
    interval = f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
    return f"+{_num(gateway['added_ttft_ms_p50'])}{interval}"


def _serve_added(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    gateways = r["gateways"]
    ours = r["stream_added_ttft_ms_p50"]
    peers = [f"{n} {_with_ci(g)}" for n, g in gateways.items() if n != "stream serve"]
    peers += [f"{n} not measured: {why}" for n, why in (r.get("skipped") or {}).items()]
    beside = f" ({'; '.join(peers)})" if peers else ""
    measured_peers = len(gateways) > 1
    mine = _with_ci(gateways["stream serve"]) if "stream serve" in gateways else f"+{_num(ours)}"
    return (
        "`stream serve` added TTFT over the backend called directly, p50 [95% CI]",
        f"{mine} ms{beside}",
        ours <= 3 and (r["lowest_overhead"] or not measured_peers),
    )


def _serve_rate(r: dict[str, Any]) -> tuple[str, str, bool | None]:
    levels = [str(c) for c in r["concurrency"]]

    def rates(block: dict[str, Any]) -> str:
        return " / ".join(_num(block["requests_per_s"].get(c, 0.0)) for c in levels)

    others = [f"{n} {rates(g)}" for n, g in r["gateways"].items() if n != "stream serve"]
    failures = {n: g["failures"] for n, g in r["gateways"].items() if g.get("failures")} | (
        {"direct": r["direct"]["failures"]} if r["direct"].get("failures") else {}
    )
    tail = "failures: " + json.dumps(failures) if failures else "no failures"
    ours = r["gateways"].get("stream serve")
    return (
        f"requests/s at {' / '.join(levels)} clients, {r['throughput_max_tokens']}-token answers "
        f"(backend alone: {rates(r['direct'])})",
        (f"{rates(ours)}" if ours else "—")
        + (f" ({'; '.join(others)})" if others else "")
        + f", {tail}",
        None,
    )


def _headline_relay(report: dict[str, Any]) -> str:
    levels = [n for n, _ in relay_levels(report)]
    if not levels or RELAY_HEADLINE_STREAMS in levels:
        return f"relay-{RELAY_HEADLINE_STREAMS}"
    return f"relay-{min(levels, key=lambda n: abs(n - RELAY_HEADLINE_STREAMS))}"


def _largest_relay(report: dict[str, Any]) -> str:
    keys = [k for k, e in report.get("benches", {}).items() if e.get("bench") == "relay"]
    streams = [int(k.rpartition("-")[2]) for k in keys if k.rpartition("-")[2].isdigit()]
    return f"relay-{max(streams)}" if streams else "relay"


def _figures(report: dict[str, Any]) -> list[tuple[str, str, str, Reader]]:
    """(bench key, fallback label, target, reader) for every row, in table order."""
    headline, largest = _headline_relay(report), _largest_relay(report)
    return [
        ("judge", "judge macro-F1 across authors", "≥ 0.70", _judge_quality),
        ("judge", "judge latency per query, p50 / p99", "≤ 5 / ≤ 20 ms", _judge_latency),
        ("judge", "share judged LOW / MEDIUM / HIGH", "60 / 25 / 15 % (calibration)", _tier_shares),
        ("overhead", "router TTFT overhead (judge excluded), p50", "≤ 2 ms", _overhead),
        ("local", "local tier tokens/s vs raw llama-cpp-python", "≥ 95 %", _local),
        (headline, "relay hop, p50 / p99", "≤ 2 / ≤ 10 ms", _relay_hop),
        (headline, "relay CPU per token at saturation", "≤ 1/3 of streamrelay's", _relay_cpu),
        (headline, "relay CPU per token, paced", "≤ 1/3 of streamrelay's", _relay_paced_cpu),
        (largest, "relay: tokens lost / reordered", "0 / 0", _relay_loss),
        ("hpc", "HPC TTFT, relay vs batch", "≥ 20×", _hpc_speedup),
        ("hpc", "what the relay adds to the first token, p50", "≤ 5 ms", _hpc_added),
        ("compression", "simple probes answered by the local tier", "all", _compression_local),
        ("compression", "planted facts in the local tier's context", "≥ 0.8", _compression_recall),
        (
            "serve",
            "`stream serve` added TTFT, p50",
            "≤ 3 ms, below hpc-as-api and LiteLLM",
            _serve_added,
        ),
        ("serve", "requests/s per concurrency level", "—", _serve_rate),
    ]


def figure_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: ``figure``, ``measured``, ``target``, ``met``, ``command``, ``bench``.

    A figure whose bench failed or did not run says so in ``measured`` (``met`` is ``None``).
    """
    rows = []
    for key, fallback, target, read in _figures(report):
        entry = report.get("benches", {}).get(key, {})
        command = entry.get("command", "")
        try:
            label, measured, met = read(result(report, key))
        except NoData as exc:
            label, measured, met = fallback, f"not measured: {exc}", None
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            label, measured, met = fallback, f"not measured: {type(exc).__name__}: {exc}", None
        rows.append(
            {
                "figure": label,
                "measured": measured,
                "target": target,
                "met": met,
                "command": command,
                "bench": key,
            }
        )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _link(path: Path, base: Path) -> str | None:
    """``path`` relative to ``base`` when it lies inside it (so it can be committed)."""
    path, base = path.resolve(), base.resolve()
    return os.path.relpath(path, base).replace(os.sep, "/") if path.is_relative_to(base) else None


def render_block(report: dict[str, Any], report_path: Path, readme_dir: Path) -> str:
    """The markdown between the markers: the provenance line, the table, the plots."""
    load = report.get("load_average") or {}
    start, end = load.get("start"), load.get("end")
    load_text = f", load average {start[0]:g} → {end[0]:g}" if start and end else ""
    minutes = report.get("duration_s", 0.0) / 60.0
    report_link = _link(report_path, readme_dir)
    source = f"[`{report_link}`]({report_link})" if report_link else f"`{report_path.name}`"
    lines = [
        "<!-- generated by `stream bench readme` from the report: edit that, not this -->",
        f"Measured on a {machine_line(report)}{load_text}, version {report.get('version')}, "
        f"by `{report.get('command', 'stream bench all')}` in {minutes:.1f} min "
        f"(report: {source}).",
        "",
        "| figure | measured | target | command |",
        "|---|---|---|---|",
    ]
    for row in figure_rows(report):
        measured = row["measured"] if row["met"] is not False else f"**not met**: {row['measured']}"
        command = f"`{row['command']}`" if row["command"] else "—"
        lines.append(
            f"| {_cell(row['figure'])} | {_cell(measured)} | {_cell(row['target'])} | {command} |"
        )
    links = []
    for name in PLOTS:
        file = report.get("plots", {}).get(name)
        link = _link(report_path.parent / file, readme_dir) if file else None
        if link:
            links.append(f"[{PLOT_TITLES.get(name, name)}]({link})")
    if links:
        lines += ["", "Plots: " + " · ".join(links)]
    missing = [
        f"{key} ({peer}: {why})"
        for key, entry in report.get("benches", {}).items()
        for peer, why in (entry.get("missing") or {}).items()
    ]
    failed = [
        f"{key}: {entry.get('error', '')}"
        for key, entry in report.get("benches", {}).items()
        if entry.get("status") != "ok"
    ]
    if missing:
        lines += ["", "Peers not measured: " + _cell("; ".join(missing)) + "."]
    if failed:
        lines += ["", "Benchmarks that failed: " + _cell("; ".join(failed)) + "."]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with the markers' content replaced by ``block`` (closing marker added if absent).

    Raises:
        ValueError: ``text`` has no opening marker.
    """
    start = text.find(OPEN)
    if start < 0:
        raise ValueError(f"no {OPEN} marker: add one where the figures belong")
    head_end = start + len(OPEN)
    close = text.find(CLOSE, head_end)
    tail = text[close + len(CLOSE) :] if close >= 0 else text[head_end:]
    return f"{text[:head_end]}\n{block}\n{CLOSE}{tail}"


def update_readme(readme: Path, report_path: Path) -> bool:
    """Write the figures of ``report_path`` into ``readme``; return whether it changed."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    text = readme.read_text(encoding="utf-8")
    updated = replace_block(text, render_block(report, report_path, readme.parent))
    if updated == text:
        return False
    readme.write_text(updated, encoding="utf-8")
    return True


__all__ = ["CLOSE", "OPEN", "figure_rows", "render_block", "replace_block", "update_readme"]
