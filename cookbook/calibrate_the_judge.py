"""Calibrating the judge on your own queries, so each tier gets the share of traffic you want.

The judge sorts queries LOW / MEDIUM / HIGH (local / HPC / cloud). Its figures come from the
project's corpus; your traffic is different, and your HPC allocation and cloud budget set how
much of it each tier should take. Calibration judges a file of your queries (no labels needed)
and fits one offset per class, added to the judge's log-scores, so that the target shares come
out; the offsets are saved in the config file and every router built afterwards applies them.

This example, for a small lab's thirty queries:

1. writes them to ``traffic.jsonl`` (``{"text": ...}`` a line) and, with the lab's own labels,
   to ``labeled.jsonl`` (``{"text": ..., "ground_truth": ...}``);
2. scores the judge on the labeled file with ``stream judge --eval``, and routes the traffic
   through ``StreamChatModel``, whose ``routing_shares()`` reports the shares per class;
3. calibrates to a 60 / 25 / 15 target with the Python API (``calibrate_file``; the shell
   equivalent is ``stream judge calibrate traffic.jsonl --target 60,25,15``) and shows where
   the offsets were written: a temporary config file named by ``STREAM_CONFIG``, never yours;
4. routes the same traffic through a new router, which now reports shares at the target and
   their drift, and scores the calibrated judge again: calibration moves traffic between
   tiers, so against labels that do not follow the target, accuracy is the price.

Run it: ``python cookbook/calibrate_the_judge.py`` (about 20 s on two cores). You will see the
shares before and after, the offsets and the file they were saved to, and the judge's accuracy
and macro-F1 before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.judge.calibrate import calibrate_file

# A lab's own queries, with the class the lab would give each one.
QUERIES: list[tuple[str, str]] = [
    ("What does FASTQ stand for?", "LOW"),
    ("Convert 37 degrees Celsius to Fahrenheit.", "LOW"),
    ("What is the default port of PostgreSQL?", "LOW"),
    ("Which command lists the jobs I have queued on Slurm?", "LOW"),
    ("Spell out the abbreviation PCR.", "LOW"),
    ("What year was the Human Genome Project completed?", "LOW"),
    ("How many base pairs are in the human mitochondrial genome, roughly?", "LOW"),
    ("Give me a synonym for 'robust' for a grant proposal.", "LOW"),
    ("What is the file extension of a compressed BAM index?", "LOW"),
    ("Translate 'sample preparation' into German.", "LOW"),
    ("Rename the column 'gene_id' to 'gene' in a pandas DataFrame.", "LOW"),
    ("Fix the typo: 'Teh samples were centrifuged at 4C.'", "LOW"),
    ("Summarize what a p-value means in two sentences.", "MEDIUM"),
    ("Explain how a Slurm job array works, with an example script.", "MEDIUM"),
    ("Write a Python function that reads a FASTA file into a dict.", "MEDIUM"),
    ("Explain the difference between RNA-seq and microarrays.", "MEDIUM"),
    ("How do I choose the number of clusters for k-means?", "MEDIUM"),
    ("Write a SQL query that returns the ten samples with the highest read counts.", "MEDIUM"),
    ("Explain what a false discovery rate correction does.", "MEDIUM"),
    ("Describe how to set up a conda environment for a reproducible analysis.", "MEDIUM"),
    ("What are the pros and cons of storing our results in Parquet instead of CSV?", "MEDIUM"),
    ("Explain how a hash map works.", "MEDIUM"),
    ("Draft a polite e-mail asking a collaborator for the raw data of their figure 3.", "MEDIUM"),
    ("Compare Snakemake and Nextflow for a small lab's pipelines.", "MEDIUM"),
    (
        "Design a statistical analysis plan for a longitudinal study with missing visits, "
        "justify the mixed model, and discuss the sensitivity analyses.",
        "HIGH",
    ),
    (
        "Our variant caller reports 30% more indels after upgrading; reason through the "
        "possible causes and design experiments to tell them apart.",
        "HIGH",
    ),
    ("Prove that the sample mean is an unbiased and consistent estimator.", "HIGH"),
    (
        "Derive the maximum likelihood estimator of a negative binomial dispersion parameter "
        "and discuss its bias in small samples.",
        "HIGH",
    ),
    (
        "Critique this study design: 12 mice, two arms, outcome measured by the same "
        "unblinded technician. What would you change and why?",
        "HIGH",
    ),
    (
        "Plan the migration of a 200 TB sequencing archive to a new storage system with no "
        "downtime, weighing cost, integrity checks and rollback.",
        "HIGH",
    ),
]
TARGET = "60,25,15"


def evaluate(labeled: Path) -> dict[str, Any]:
    """``stream judge --eval FILE --json``: the judge's figures on a labeled file."""
    done = subprocess.run(
        [sys.executable, "-m", "langchain_stream.cli", "judge", "--eval", str(labeled), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    predicted = {
        c: sum(row[c] for row in report["confusion"].values()) / report["n"]
        for c in ("LOW", "MEDIUM", "HIGH")
    }
    print(
        f"    $ stream judge --eval {labeled.name}: accuracy {report['accuracy']:.2f}, "
        f"macro-F1 {report['macro_f1']:.2f}, predicted "
        + " / ".join(f"{c} {100 * v:.0f}%" for c, v in predicted.items())
    )
    return report


def route_traffic(local: ChatLocal) -> StreamChatModel:
    """Send every query through a new router (one-token answers: the route is what matters)."""
    router = StreamChatModel(local=local, max_tokens=1)
    for text, _ in QUERIES:
        router.invoke(text)
    print(f"    router: {router.routing_shares().summary()}")
    return router


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="stream-calibrate-", ignore_cleanup_errors=True) as tmp:
        run(Path(tmp))


def run(workdir: Path) -> None:
    config = workdir / "stream.toml"
    config.write_text("# the lab's settings\nmax_tokens = 256\n")
    for name in [n for n in os.environ if n.startswith("STREAM_")]:
        del os.environ[name]  # STREAM_JUDGE_OFFSETS and the like would override the file
    os.environ["STREAM_CONFIG"] = str(config)  # settings are read from, and written to, here
    os.environ["STREAM_DATABASE_URL"] = f"sqlite:///{workdir / 'stream.db'}"

    traffic, labeled = workdir / "traffic.jsonl", workdir / "labeled.jsonl"
    traffic.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in QUERIES))
    labeled.write_text(
        "".join(json.dumps({"text": t, "ground_truth": label}) + "\n" for t, label in QUERIES)
    )
    print(f"{len(QUERIES)} queries in {traffic} (and labeled in {labeled.name})")

    local = ChatLocal(temperature=0.0)
    print("\nbefore calibration:")
    before = evaluate(labeled)
    route_traffic(local)

    fitted = calibrate_file(traffic, target=TARGET)  # the configured judge ("trained")
    print(f"\ncalibrated to {TARGET}:")
    print("\n".join("    " + line for line in fitted.format().splitlines()))
    print(f"    {config} now reads:")
    print("\n".join("      " + line for line in config.read_text().splitlines()))

    print("\nafter calibration:")
    after = evaluate(labeled)
    router = route_traffic(local)
    shares = router.routing_shares()
    judge = router.complexity_judge()
    offsets = [round(float(v), 3) for v in getattr(judge, "offsets", ())]
    print(f"    the router's judge: {type(judge).__name__}, offsets {offsets} (from the file)")
    drift = max(abs(v) for v in (shares.drift or {}).values())
    print(
        f"[calibrated] LOW share {100 * shares.classes['LOW']:.0f}% (target 60%), "
        f"largest drift {100 * drift:.0f} points; accuracy on the lab's labels "
        f"{before['accuracy']:.2f} -> {after['accuracy']:.2f}"
    )


if __name__ == "__main__":
    main()
