"""Build the complexity corpus: parse ``src/*.txt`` and write ``train/dev/test.jsonl``.

Source format, one query per line (``#`` lines are comments)::

    CLASS style: text [## context turn ## context turn ...]
    CLASS style@domain: text ...

``CLASS`` is ``L``/``M``/``H``; the domain is the file's ``# field:`` header unless
``style@domain`` overrides it. ``\\n`` in the text stands for a newline (pasted code, traces).

The split is stratified by (class, domain) and seeded, so running this again gives the same files:
70 % train, 10 % dev, 20 % test. The test split is held out: never used for training or tuning.

Usage::

    python data/complexity/build_corpus.py [--seed 20250101]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLASSES = {"L": "LOW", "M": "MEDIUM", "H": "HIGH"}
STYLES = {
    "plain": "plain",
    "terse": "terse",
    "chatty": "chatty",
    "exam": "exam",
    "error": "error_trace",
    "code": "code",
    "followup": "followup",
    "jargon": "jargon_lookup",
    "deep": "short_deep",
    "nonen": "non_english",
}
LINE = re.compile(r"^([LMH]) ([a-z]+)(?:@([a-z_]+))?: (.+)$")
DEFAULT_SEED = 20250101
SPLITS = (("test", 0.20), ("dev", 0.10))  # the rest is train


def _decode(text: str) -> str:
    return text.replace("\\n", "\n").strip()


def parse_file(path: Path) -> list[dict]:
    """Parse one source file into corpus records."""
    field = None
    rows: list[dict] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*field:\s*([a-z_]+)", line)
            if m and field is None:
                field = m.group(1)
            continue
        m = LINE.match(line)
        if not m:
            raise ValueError(f"{path.name}:{lineno}: cannot parse {line[:60]!r}")
        cls, style, domain, body = m.groups()
        if style not in STYLES:
            raise ValueError(f"{path.name}:{lineno}: unknown style {style!r}")
        parts = [_decode(p) for p in body.split(" ## ")]
        row = {
            "text": parts[0],
            "ground_truth": CLASSES[cls],
            "domain": domain or field,
            "style": STYLES[style],
        }
        if row["domain"] in (None, "mixed"):
            raise ValueError(f"{path.name}:{lineno}: no domain")
        if len(parts) > 1:
            row["context"] = parts[1:]
        elif style == "followup":
            raise ValueError(f"{path.name}:{lineno}: follow-up without context")
        rows.append(row)
    return rows


def _key(row: dict) -> str:
    # Follow-ups like "why?" repeat; they are distinct queries when their context differs.
    full = " ## ".join([row["text"], *row.get("context", [])])
    return " ".join(full.lower().split())


def load_sources(src: Path) -> list[dict]:
    """Parse every source file and drop exact duplicates (first one wins)."""
    seen: set[str] = set()
    rows: list[dict] = []
    for path in sorted(src.glob("*.txt")):
        for row in parse_file(path):
            k = _key(row)
            if k in seen:
                print(f"duplicate dropped: {row['text'][:70]!r}", file=sys.stderr)
                continue
            seen.add(k)
            rows.append(row)
    return rows


def split(rows: list[dict], seed: int) -> dict[str, list[dict]]:
    """Stratified split by (class, domain) with a fixed seed."""
    strata: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        strata[(row["ground_truth"], row["domain"])].append(row)
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for key in sorted(strata):
        group = strata[key][:]
        rng.shuffle(group)
        start = 0
        for name, share in SPLITS:
            n = round(share * len(group))
            out[name].extend(group[start : start + n])
            start += n
        out["train"].extend(group[start:])
    for name in out:
        rng.shuffle(out[name])
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def counts_table(rows: list[dict]) -> str:
    """Markdown table of class × domain counts."""
    c = Counter((r["domain"], r["ground_truth"]) for r in rows)
    domains = sorted({r["domain"] for r in rows})
    lines = ["| domain | LOW | MEDIUM | HIGH | total |", "|---|---:|---:|---:|---:|"]
    for d in domains:
        vals = [c[(d, k)] for k in ("LOW", "MEDIUM", "HIGH")]
        lines.append(f"| {d} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    tot = [sum(c[(d, k)] for d in domains) for k in ("LOW", "MEDIUM", "HIGH")]
    lines.append("| **total** | " + " | ".join(map(str, tot)) + f" | {sum(tot)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    rows = load_sources(HERE / "src")
    parts = split(rows, args.seed)
    for name, part in parts.items():
        write_jsonl(args.out / f"{name}.jsonl", part)
    print(f"{len(rows)} queries: " + ", ".join(f"{k}={len(v)}" for k, v in parts.items()))
    print(counts_table(rows))
    print()
    print("styles:", dict(Counter(r["style"] for r in rows).most_common()))


if __name__ == "__main__":
    main()
