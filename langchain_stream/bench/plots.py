"""The plots of ``stream bench all``, drawn with matplotlib's Agg canvas from a report.

Each plot reads only the report (so it can be redrawn from a saved one), is titled with its
units, and names the machine and date it was measured on. A plot whose bench did not run or
failed is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from langchain_stream.judge.evaluate import CLASS_NAMES

DPI = 110


class NoData(Exception):
    """The report lacks what a plot needs (its bench failed or did not run)."""


def machine_line(report: dict[str, Any]) -> str:
    """One line naming the machine and the date of the report."""
    m = report.get("machine", {})
    cpu = f" ({m['cpu_model']})" if m.get("cpu_model") else ""
    date = str(report.get("date", ""))[:10]
    return (
        f"{m.get('cpus', '?')}-core {m.get('machine', '?')}{cpu}, {m.get('system', '?')}, "
        f"Python {m.get('python', '?')}; {date}, {report.get('mode', 'default')} sizes"
    )


def result(report: dict[str, Any], key: str) -> dict[str, Any]:
    """The result of bench ``key``, or :class:`NoData` saying why there is none."""
    entry = report.get("benches", {}).get(key)
    if entry is None:
        raise NoData(f"{key} did not run")
    if entry.get("status") != "ok":
        raise NoData(f"{key} failed: {entry.get('error', 'unknown error')}")
    return entry["result"]


def _figure(report: dict[str, Any], title: str, panels: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(6.4 * panels if panels > 1 else 7.5, 4.8), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    figure.suptitle(f"{title}\n{machine_line(report)}", fontsize=10)
    return figure, list(axes)


def _boxes(ax: Axes, series: dict[str, Sequence[float]]) -> None:
    """Box plots with every sample drawn over them (there are few samples per box)."""
    names = list(series)
    ax.boxplot([series[n] for n in names], showfliers=False, widths=0.5)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    for position, name in enumerate(names, start=1):
        values = list(series[name])
        offsets = [position + 0.12 * ((i % 7) - 3) / 3 for i in range(len(values))]
        ax.scatter(offsets, values, s=10, alpha=0.6, zorder=3)
    ax.grid(axis="y", alpha=0.3)


def _log_if_wide(ax: Axes, values: Sequence[float]) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_yscale("log")


def ttft_per_tier(report: dict[str, Any]) -> Figure:
    """TTFT distributions per tier, from the benches that measure each tier."""
    series: dict[str, list[float]] = {}
    reasons: list[str] = []
    sources: list[tuple[str, Callable[[], list[float]]]] = [
        (
            "local\n(ChatLocal)",
            lambda: result(report, "local")["ttft_samples_ms"]["langchain_stream"],
        ),
        (
            "HPC via relay\n(ChatHPC, LocalEndpoint)",
            lambda: result(report, "hpc")["ttft_samples_ms"]["relay"],
        ),
        (
            "cloud via stream serve\n(loopback llama_cpp.server)",
            lambda: result(report, "serve")["gateways"]["stream serve"]["ttft_samples_ms"],
        ),
    ]
    for label, read in sources:
        try:
            values = read()
        except NoData as exc:
            reasons.append(str(exc))
            continue
        except KeyError:
            reasons.append(f"{label.splitlines()[0]}: no samples in the report")
            continue
        if values:
            series[label] = values
    if not series:
        raise NoData("; ".join(reasons) or "no tier measured")
    figure, (ax,) = _figure(report, "Time to first token per tier (ms, every request)")
    _boxes(ax, series)
    _log_if_wide(ax, [v for vs in series.values() for v in vs])
    ax.set_ylabel("TTFT (ms)")
    if reasons:
        ax.set_xlabel("not measured: " + "; ".join(reasons), fontsize=7)
    return figure


def hpc_relay_vs_batch(report: dict[str, Any]) -> Figure:
    """HPC TTFT through the relay against batch mode (same endpoint and backend)."""
    hpc = result(report, "hpc")
    samples = hpc["ttft_samples_ms"]
    figure, (ax,) = _figure(
        report,
        f"HPC tier TTFT, relay vs batch ({hpc['max_tokens']}-token answers; ms, log scale)",
    )
    _boxes(ax, {"relay (streamed)": samples["relay"], "batch (whole answer)": samples["batch"]})
    ax.set_yscale("log")
    ax.set_ylabel("TTFT (ms)")
    ax.set_xlabel(
        f"p50: relay {hpc['ttft_relay_ms']:.0f} ms, batch {hpc['ttft_batch_ms']:.0f} ms "
        f"({hpc['speedup']}x); the relay adds {hpc['relay_added_ms']['p50']:.1f} ms p50",
        fontsize=8,
    )
    return figure


def relay_levels(report: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """``(streams, result)`` of every relay run that succeeded, fewest streams first."""
    levels = []
    for entry in report.get("benches", {}).values():
        if entry.get("bench") == "relay" and entry.get("status") == "ok":
            levels.append((int(entry["result"]["streams"]), entry["result"]))
    return sorted(levels, key=lambda level: level[0])


def relay_hop_vs_streams(report: dict[str, Any]) -> Figure:
    """Relay hop latency p50 / p99 against the number of concurrent streams."""
    levels = relay_levels(report)
    if not levels:
        raise NoData("no relay run succeeded")
    rate = levels[0][1].get("conditions", {}).get("rate")
    pace = f"{rate:g} tokens/s each" if isinstance(rate, int | float) else "paced streams"
    figure, (ax,) = _figure(report, f"Relay hop latency vs concurrent streams ({pace}; ms)")
    streams = [n for n, _ in levels]
    for name, read, style in (
        ("langchain-stream", lambda r: r, "-"),
        ("streamrelay", lambda r: r.get("streamrelay", {}), "--"),
    ):
        for quantile, marker in (("p50", "o"), ("p99", "^")):
            points = [
                (n, read(r).get("hop_ms", {}).get(quantile))
                for n, r in levels
                if read(r).get("hop_ms", {}).get(quantile) is not None
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, marker=marker, label=f"{name} {quantile}")
    ax.axhline(2.0, color="grey", linestyle=":", linewidth=1, label="target p50 (2 ms)")
    ax.axhline(10.0, color="black", linestyle=":", linewidth=1, label="target p99 (10 ms)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(streams, [str(n) for n in streams])
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("hop: producer send → consumer receive (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return figure


def judge_confusion(report: dict[str, Any]) -> Figure:
    """The judge's confusion matrix on the labeled set, with counts."""
    judge = result(report, "judge")
    matrix = [[judge["confusion"][t][p] for p in CLASS_NAMES] for t in CLASS_NAMES]
    figure, (ax,) = _figure(
        report,
        f"Judge '{judge['judge']}' on {judge['n']} corpus queries (counts; "
        f"macro-F1 {judge['macro_f1']:.3f})",
    )
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax, label="queries")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color)
    ax.set_xticks(range(3), CLASS_NAMES)
    ax.set_yticks(range(3), CLASS_NAMES)
    ax.set_xlabel("judged")
    ax.set_ylabel("true (rubric label)")
    return figure


def judge_tradeoff(report: dict[str, Any]) -> Figure:
    """Free-tier retention against HIGH recall as the HIGH offset moves (cross-author, out of
    fold), with the shipped offset marked."""
    cross = result(report, "judge").get("cross_author")
    if not cross:
        raise NoData("judge: no cross-author training record")
    curve = cross["tradeoff_curve"]
    figure, (ax,) = _figure(
        report, "Judge: free-tier retention vs HIGH recall by HIGH offset (across authors)"
    )
    ax.plot(
        [p["free_tier_retention"] for p in curve], [p["high_recall"] for p in curve], marker="."
    )
    chosen = next(p for p in curve if p["high_offset"] == cross["high_offset"])
    ax.scatter(
        [chosen["free_tier_retention"]],
        [chosen["high_recall"]],
        color="red",
        zorder=3,
        label=f"shipped offset {chosen['high_offset']:+.1f}",
    )
    ax.axvline(0.85, color="grey", linestyle=":", label="retention goal 0.85")
    ax.axhline(0.70, color="grey", linestyle="--", label="HIGH recall goal 0.70")
    ax.set_xlabel("free-tier retention (LOW + MEDIUM kept off the cloud)")
    ax.set_ylabel("HIGH recall")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def judge_latency(report: dict[str, Any]) -> Figure:
    """Histogram of the judge's latency per query."""
    judge = result(report, "judge")
    values = [v for v in judge["latency_samples_ms"] if v > 0]
    if not values:
        raise NoData("judge: no latency samples")
    import numpy as np

    figure, (ax,) = _figure(report, f"Judge '{judge['judge']}' latency per query (ms, log scale)")
    bins = np.logspace(np.log10(min(values)), np.log10(max(max(values), 20.0)), 50)
    ax.hist(values, bins=bins, color="tab:blue", alpha=0.8)
    ax.set_xscale("log")
    p50, p99 = judge["latency_ms"]["p50"], judge["latency_ms"]["p99"]
    ax.axvline(p50, color="tab:green", label=f"p50 {p50:.2f} ms")
    ax.axvline(p99, color="tab:orange", label=f"p99 {p99:.2f} ms")
    ax.axvline(5.0, color="grey", linestyle=":", label="target p50 (5 ms)")
    ax.axvline(20.0, color="black", linestyle=":", label="target p99 (20 ms)")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("queries")
    ax.legend(fontsize=8)
    return figure


def tier_shares(report: dict[str, Any]) -> Figure:
    """Share of queries per class (so per tier): true, judged, and the target."""
    shares = result(report, "judge")["shares"]
    figure, axes = _figure(report, "Share of queries per class → tier (%)", panels=2)
    width = 0.27
    panels = (
        ("held_out", "held-out split (balanced)"),
        ("target_mix", "workload in the target's mix (seeded sample)"),
    )
    for ax, (key, caption) in zip(axes, panels, strict=True):
        part = shares[key]
        for offset, (label, values) in zip(
            (-width, 0.0, width),
            (("true", part["truth"]), ("judged", part["judged"]), ("target", shares["target"])),
            strict=True,
        ):
            heights = [100 * values[c] for c in CLASS_NAMES]
            bars = ax.bar([i + offset for i in range(3)], heights, width, label=label)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(range(3), [f"{c}\n→ {shares['tiers'][c]}" for c in CLASS_NAMES])
        ax.set_title(f"{caption}, n = {part['n']}", fontsize=9)
        ax.set_ylabel("share of queries (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    return figure


def compression_retention(report: dict[str, Any]) -> Figure:
    """Long conversations: history size against the local budget, and what was retained."""
    bench = result(report, "compression")
    probes = bench["per_probe"]
    if not probes:
        raise NoData("compression: no probes")
    figure, (sizes, kept) = _figure(
        report,
        f"Long conversations on the local tier ({bench['local_n_ctx']}-token window; "
        "tokens, and share of probes)",
        panels=2,
    )
    labels, conversation, previous = [], 1, 0
    for p in probes:
        conversation += p["turn"] <= previous  # turns restart: the next conversation
        previous = p["turn"]
        several = bench["conversations"] > 1
        labels.append(f"conv. {conversation}, turn {p['turn']}" if several else f"turn {p['turn']}")
    xs = list(range(len(probes)))
    before = [p["tokens_before"] or 0 for p in probes]
    after = [p["tokens_after"] or 0 for p in probes]
    sizes.bar([x - 0.2 for x in xs], before, 0.4, label="history")
    sizes.bar([x + 0.2 for x in xs], after, 0.4, label="sent to the tier")
    budgets = [p["budget"] for p in probes if p["budget"]]
    if budgets:
        sizes.axhline(max(budgets), color="black", linestyle=":", label="local budget")
    sizes.set_xticks(xs, labels, fontsize=7, rotation=45 if len(xs) > 6 else 0)
    sizes.set_ylabel("prompt tokens")
    sizes.set_title(f"each probe of {bench['turns']}-turn conversations", fontsize=9)
    sizes.legend(fontsize=7)
    count = len(probes)
    rates = {
        "answered locally": sum(p["stayed_local"] for p in probes) / count,
        "fact in context": sum(p["in_context"] for p in probes) / count,
        "fact in answer": sum(p["in_answer"] for p in probes) / count,
    }
    bars = kept.bar(list(rates), [100 * v for v in rates.values()], color="tab:green")
    kept.bar_label(bars, fmt="%.0f%%", fontsize=8)
    kept.set_ylim(0, 105)
    kept.set_ylabel(f"share of probes (%), n = {count}")
    kept.set_title("simple probes asking for facts planted in turns 1–8", fontsize=9)
    kept.grid(axis="y", alpha=0.3)
    return figure


def serve_added_ttft(report: dict[str, Any]) -> Figure:
    """What each gateway adds to the backend's TTFT, request by request."""
    serve = result(report, "serve")
    series = {
        name: g["added_ttft_samples_ms"]
        for name, g in serve["gateways"].items()
        if g.get("added_ttft_samples_ms")
    }
    if not series:
        raise NoData("serve: no gateway samples")
    figure, (ax,) = _figure(report, "TTFT added over the backend called directly (ms)")
    _boxes(ax, series)
    ax.axhline(3.0, color="grey", linestyle=":", label="target p50 for stream serve (3 ms)")
    ax.set_ylabel("gateway TTFT − backend TTFT, same round (ms)")
    skipped = serve.get("skipped") or {}
    if skipped:
        ax.set_xlabel(
            "not measured: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()), fontsize=7
        )
    ax.legend(fontsize=8)
    return figure


PLOTS: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "ttft_per_tier": ttft_per_tier,
    "hpc_relay_vs_batch": hpc_relay_vs_batch,
    "relay_hop_vs_streams": relay_hop_vs_streams,
    "judge_confusion": judge_confusion,
    "judge_tradeoff": judge_tradeoff,
    "judge_latency": judge_latency,
    "tier_shares": tier_shares,
    "compression_retention": compression_retention,
    "serve_added_ttft": serve_added_ttft,
}


def draw_all(
    report: dict[str, Any], out_dir: Path
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Draw every plot into ``out_dir`` as PNG.

    Returns:
        The files drawn (name → file name), the plots skipped for want of data (name →
        reason), and the plots that failed (name → error).
    """
    drawn: dict[str, str] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name, draw in PLOTS.items():
        try:
            figure = draw(report)
            figure.tight_layout()
            figure.savefig(out_dir / f"{name}.png")
        except NoData as exc:
            skipped[name] = str(exc)
        except Exception as exc:  # a broken plot must not cost the report
            failed[name] = f"{type(exc).__name__}: {exc}"
        else:
            drawn[name] = f"{name}.png"
    return drawn, skipped, failed


__all__ = ["PLOTS", "NoData", "draw_all", "machine_line"]
