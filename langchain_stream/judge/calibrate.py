"""Calibration: per-class offsets that send a target share of traffic to each tier.

A judge that exposes per-class scores is calibrated by adding an offset to the log-score of
each class before taking the best one: ``argmax(log p + b)``. :func:`fit_offsets` fits the
offsets on a set of queries (no labels needed) so that the shares of LOW / MEDIUM / HIGH come
as close as the scores allow to a target such as 60 / 25 / 15; ``stream judge calibrate``
saves them in the config file (``judge_offsets``, per judge) and :func:`resolve_judge
<langchain_stream.judge.resolve_judge>` wraps the judge in a :class:`CalibratedJudge`.

The fit is the dual of sending each query to one class under class-size constraints: the
offsets are the prices that balance the classes. It runs Sinkhorn scaling on softened
assignments at decreasing temperatures and keeps the offsets whose hard assignment is closest
to the target.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from langchain_stream.judge.base import Complexity, ComplexityJudge, Judgment, is_quick
from langchain_stream.judge.trained import scored_judgment, softmax

CLASSES: tuple[Complexity, ...] = (Complexity.LOW, Complexity.MEDIUM, Complexity.HIGH)
# Scores of 0 are floored before the log so an offset can still move such a query.
_MIN_SCORE = 1e-9
_TEMPERATURES = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005)
_SINKHORN_STEPS = 300
_SINKHORN_TOLERANCE = 1e-5


def parse_target(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Target shares of LOW, MEDIUM, HIGH from ``"60,25,15"`` (percent or fractions).

    Raises:
        ValueError: not three positive numbers.
    """
    parts = [p for p in re.split(r"[,/ ]+", text.strip()) if p] if isinstance(text, str) else text
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--target must be three numbers such as 60,25,15, not {text!r}") from exc
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(
            "--target must be three positive shares for LOW,MEDIUM,HIGH such as 60,25,15 "
            "(to keep traffic off a tier, use a pin or the privacy setting)"
        )
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def log_scores(judgment: Judgment) -> np.ndarray:
    """The judgment's scores as log-probabilities in class order (LOW, MEDIUM, HIGH).

    Raises:
        ValueError: the judge gave no per-class scores.
    """
    if not judgment.scores:
        raise ValueError(f"judge {judgment.judge!r} exposes no scores; it cannot be calibrated")
    raw = np.array([max(float(judgment.scores.get(c, 0.0)), _MIN_SCORE) for c in CLASSES])
    return np.log(raw / raw.sum())


def hard_shares(scores: np.ndarray, offsets: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Share of rows whose best class is LOW, MEDIUM, HIGH once ``offsets`` are added."""
    if len(scores) == 0:
        return np.zeros(len(CLASSES))
    best = np.argmax(np.asarray(scores) + np.asarray(offsets), axis=1)
    return np.bincount(best, minlength=len(CLASSES)) / len(scores)


def fit_offsets(scores: np.ndarray, target: Sequence[float]) -> np.ndarray:
    """Offsets (LOW fixed at 0) that bring the shares of ``argmax(scores + b)`` to ``target``.

    Args:
        scores: log-scores, one row per query, columns LOW, MEDIUM, HIGH.
        target: the wanted shares, summing to 1.

    Returns:
        The offsets; when ties in the scores make the target unreachable, the closest found.
    """
    scores = np.asarray(scores, dtype=np.float64)
    goal = np.asarray(target, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(CLASSES) or len(scores) == 0:
        raise ValueError("scores must be a non-empty (n, 3) array")
    log_goal = np.log(goal)
    offsets = np.zeros(len(CLASSES))
    best, best_error = offsets.copy(), np.abs(hard_shares(scores) - goal).sum()
    for tau in _TEMPERATURES:
        for _ in range(_SINKHORN_STEPS):
            z = (scores + offsets) / tau
            z -= z.max(axis=1, keepdims=True)
            soft = np.exp(z)
            soft /= soft.sum(axis=1, keepdims=True)
            shares = soft.mean(axis=0)
            # Sinkhorn column scaling: raise a class's price where it gets too little.
            offsets = offsets + tau * (log_goal - np.log(np.maximum(shares, 1e-300)))
            offsets -= offsets[0]
            if np.abs(shares - goal).max() < _SINKHORN_TOLERANCE:
                break
        error = np.abs(hard_shares(scores, offsets) - goal).sum()
        if error < best_error:
            best, best_error = offsets.copy(), error
    return best


def offsets_from_mapping(mapping: Mapping[str, float]) -> tuple[float, float, float]:
    """Offsets in class order from ``{"LOW": 0.0, "MEDIUM": 0.3, ...}`` (missing ones are 0).

    Raises:
        ValueError: an unknown class or a value that is not a finite number.
    """
    values = dict.fromkeys(CLASSES, 0.0)
    for key, value in mapping.items():
        try:
            values[Complexity(str(key).upper())] = float(value)
        except ValueError as exc:
            raise ValueError(f"judge offset {key!r}={value!r}: expected LOW/MEDIUM/HIGH") from exc
    if not all(np.isfinite(v) for v in values.values()):
        raise ValueError(f"judge offsets must be finite numbers: {dict(mapping)}")
    return (values[Complexity.LOW], values[Complexity.MEDIUM], values[Complexity.HIGH])


class CalibratedJudge:
    """Any judge with per-class scores, its classes shifted by fitted offsets.

    Args:
        judge: the judge to calibrate; judgments without scores pass through unchanged.
        offsets: added to the log-score of LOW, MEDIUM and HIGH.
    """

    def __init__(self, judge: ComplexityJudge, offsets: Sequence[float]) -> None:
        self.inner = judge
        self.offsets = np.asarray(offsets, dtype=np.float64)
        self.name = judge.name
        self.quick = is_quick(judge)  # the offsets add microseconds

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        """The inner judgment with the offsets applied to its scores and class."""
        started = time.perf_counter()
        judgment = self.inner.judge(query, context)
        if not judgment.scores:
            return judgment
        probs = softmax(log_scores(judgment) + self.offsets)
        return scored_judgment(probs, started=started, judge=judgment.judge)


@dataclass(frozen=True)
class QueryLine:
    """One query of a JSON Lines file."""

    lineno: int
    text: str
    context: tuple[str, ...]
    fields: dict[str, Any]
    """The line's object (``{"text": ...}`` for a plain string), for the fields a caller reads."""


def read_query_lines(path: str | Path) -> Iterator[QueryLine]:
    """The queries of a JSON Lines file: objects with ``text`` (and optional ``context``, a
    string or a list of strings), or plain JSON strings; blank lines are skipped.

    Raises:
        ValueError: a line is not JSON or has no text; the message names the line.
    """
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if isinstance(obj, str):
                obj = {"text": obj}
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ValueError(f"{path}:{lineno}: needs a string field 'text'")
            ctx = obj.get("context") or ()
            if isinstance(ctx, str):
                ctx = (ctx,)
            context = tuple(str(c) for c in ctx) if isinstance(ctx, list | tuple) else ()
            yield QueryLine(lineno, obj["text"], context, obj)


def load_queries(path: str | Path) -> list[tuple[str, tuple[str, ...]]]:
    """Queries from a JSON Lines file (see :func:`read_query_lines`). Labels, if present, are
    ignored.

    Raises:
        ValueError: a line is not JSON or has no text, or the file has no query.
    """
    queries = [(query.text, query.context) for query in read_query_lines(path)]
    if not queries:
        raise ValueError(f"{path}: no queries")
    return queries


class EnvironmentOverrideWarning(UserWarning):
    """The environment sets what calibration saved (``STREAM_JUDGE_OFFSETS``,
    ``STREAM_JUDGE_TARGET``) and takes precedence over the config file."""


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration and what it does on the queries it was fitted on."""

    judge: str
    n: int
    target: tuple[float, float, float]
    offsets: tuple[float, float, float]
    shares_before: tuple[float, float, float]
    shares_after: tuple[float, float, float]
    saved_to: str | None = None
    """The config file the offsets were written to, if any."""
    env_overrides: dict[str, Any] = field(default_factory=dict)
    """Environment variables that override what was saved, and what they set for this judge
    (``{"STREAM_JUDGE_OFFSETS": {"MEDIUM": -0.4}}``)."""

    @property
    def override_warning(self) -> str | None:
        """Why the saved calibration will not (fully) apply, or ``None`` when it will."""
        if not self.env_overrides:
            return None
        where = self.saved_to or "the config file"
        parts = []
        for variable, value in self.env_overrides.items():
            if variable.endswith("OFFSETS"):
                parts.append(
                    f"{variable} sets the offsets of judge {self.judge!r} ({json.dumps(value)}), "
                    f"overriding those saved to {where}, so routing does not follow this "
                    "calibration until it is unset"
                )
            else:
                parts.append(
                    f"{variable} sets the target ({json.dumps(value)}), overriding the one "
                    f"saved to {where}"
                )
        return "; ".join(parts)

    def format(self) -> str:
        """A human-readable summary."""

        def pct(values: Sequence[float]) -> str:
            return " / ".join(f"{100 * v:.1f}%" for v in values)

        lines = [
            f"judge {self.judge}, {self.n} queries (LOW / MEDIUM / HIGH):",
            f"  shares before  {pct(self.shares_before)}",
            f"  target         {pct(self.target)}",
            f"  shares after   {pct(self.shares_after)}",
            "  offsets        " + " / ".join(f"{v:+.3f}" for v in self.offsets),
        ]
        if self.saved_to:
            lines.append(f"  saved to {self.saved_to} (judge_offsets.{self.judge}, judge_target)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-friendly form, classes as keys."""

        def named(values: Sequence[float]) -> dict[str, float]:
            return {c.value: round(float(v), 6) for c, v in zip(CLASSES, values, strict=True)}

        return {
            "judge": self.judge,
            "n": self.n,
            "target": named(self.target),
            "offsets": named(self.offsets),
            "shares_before": named(self.shares_before),
            "shares_after": named(self.shares_after),
            "saved_to": self.saved_to,
            "env_overrides": self.env_overrides,
        }


def calibrate(
    judge: ComplexityJudge,
    queries: Sequence[tuple[str, Sequence[str]]],
    target: Sequence[float],
) -> Calibration:
    """Judge every query with the *uncalibrated* ``judge`` and fit offsets to ``target``.

    Raises:
        ValueError: no queries, or the judge exposes no scores.
    """
    if not queries:
        raise ValueError("no queries to calibrate on")
    scores = np.stack([log_scores(judge.judge(text, context)) for text, context in queries])
    goal = np.asarray(target, dtype=np.float64) / float(np.sum(target))
    offsets = fit_offsets(scores, goal)

    def triple(values: np.ndarray) -> tuple[float, float, float]:
        return (float(values[0]), float(values[1]), float(values[2]))

    return Calibration(
        judge=judge.name,
        n=len(queries),
        target=triple(goal),
        offsets=triple(offsets),
        shares_before=triple(hard_shares(scores)),
        shares_after=triple(hard_shares(scores, offsets)),
    )


def calibrate_file(
    path: Path,
    *,
    judge: str | None = None,
    target: str | Sequence[float] = "60,25,15",
    config_path: Path | None = None,
    save: bool = True,
) -> Calibration:
    """``stream judge calibrate``: fit the judge's offsets on the queries of ``path`` and save
    them, with the target, in the config file.

    Args:
        path: JSON Lines queries (see :func:`load_queries`).
        judge: the judge's name; ``None`` means the configured one (``judge``).
        target: shares of LOW, MEDIUM, HIGH (see :func:`parse_target`).
        config_path: the TOML file to write; ``None`` means
            :func:`~langchain_stream.config.writable_config_path`.
        save: write the file (``False`` only reports the fit).

    Warns:
        EnvironmentOverrideWarning: the environment sets this judge's offsets (or the target),
            which take precedence over the saved ones; ``env_overrides`` names them.

    Raises:
        ValueError: bad target, bad file, or a judge without scores.
        ConfigurationError: the judge cannot be loaded, or the environment's offsets are invalid.
    """
    from langchain_stream.config import get_settings, writable_config_path
    from langchain_stream.judge import resolve_judge

    goal = parse_target(target)
    queries = load_queries(path)
    name = judge or get_settings().judge
    # Read before fitting and writing: invalid offsets in the environment fail the command first.
    overrides = environment_overrides(name) if save else {}
    # Fit on the raw scores: offsets already in the settings must not compound.
    fitted = calibrate(resolve_judge(name, calibrated=False), queries, goal)
    fitted = replace(fitted, judge=name)
    if save:
        destination = config_path or writable_config_path()
        save_calibration(destination, fitted)
        get_settings.cache_clear()  # the next resolution in this process reads the new offsets
        fitted = replace(fitted, saved_to=str(destination), env_overrides=overrides)
        if fitted.override_warning:
            warnings.warn(fitted.override_warning, EnvironmentOverrideWarning, stacklevel=2)
    return fitted


def environment_overrides(judge: str) -> dict[str, Any]:
    """What the environment sets, over the config file, of what calibrating ``judge`` saves:
    its offsets in ``STREAM_JUDGE_OFFSETS`` and the target ``STREAM_JUDGE_TARGET``, by variable.

    Raises:
        ConfigurationError: one of the variables is set but is not valid JSON.
    """
    from langchain_stream.config import environment_values, environment_variable

    values = environment_values("judge_offsets", "judge_target")
    found: dict[str, Any] = {}
    offsets = values.get("judge_offsets")
    # Settings merge the environment into the file per judge and class, so only this judge's
    # entry overrides what is saved for it.
    if isinstance(offsets, Mapping) and offsets.get(judge):
        found[environment_variable("judge_offsets")] = offsets[judge]
    if values.get("judge_target"):
        found[environment_variable("judge_target")] = values["judge_target"]
    return found


# --- saving in the config file -----------------------------------------------------------------

_OWNED_KEYS = ("judge_offsets", "judge_target")


def _toml_inline(value: object) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_inline(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, float):
        return repr(round(value, 6))
    return json.dumps(value)


def _toml_key(key: object) -> str:
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text)


def save_calibration(path: Path, calibration: Calibration) -> None:
    """Write the offsets (under the judge's name) and the target into the TOML file ``path``.

    Other keys, comments and the offsets of other judges are kept. The two keys are written as
    top-level inline tables, replacing earlier ones.

    Raises:
        ValueError: the existing file is not valid TOML.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        current = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    offsets = dict(current.get("judge_offsets") or {})
    offsets[calibration.judge] = calibration.to_dict()["offsets"]
    values = {"judge_offsets": offsets, "judge_target": calibration.to_dict()["target"]}

    kept: list[str] = []
    in_table = in_owned_table = False
    for line in text.splitlines():
        header = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]+", line)
        if header:
            in_table = True
            in_owned_table = header.group(1).split(".")[0].strip("\"' ") in _OWNED_KEYS
        key = re.match(r"^\s*([A-Za-z0-9_-]+)\s*[.=]", line)
        if in_owned_table or (not in_table and key and key.group(1) in _OWNED_KEYS):
            continue
        kept.append(line)
    # Top-level keys must come before the first table header.
    first_table = next((i for i, line in enumerate(kept) if re.match(r"^\s*\[", line)), len(kept))
    ours = [f"{k} = {_toml_inline(v)}" for k, v in values.items()]
    head, tables = kept[:first_table], kept[first_table:]
    while head and not head[-1].strip():
        head.pop()
    lines = [*head, *ours, *([""] if tables else []), *tables]
    new_text = "\n".join(lines).strip("\n") + "\n"
    # Never leave a file the settings cannot read, or one that says something else.
    try:
        written = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"could not update {path} ({exc}): edit it by hand") from exc
    expected = tomllib.loads("\n".join(ours))
    if any(written.get(k) != expected[k] for k in _OWNED_KEYS):
        raise ValueError(f"could not update {path}: edit it by hand")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new_text, encoding="utf-8")


__all__ = [
    "CalibratedJudge",
    "Calibration",
    "EnvironmentOverrideWarning",
    "calibrate",
    "calibrate_file",
    "environment_overrides",
    "fit_offsets",
    "hard_shares",
    "load_queries",
    "log_scores",
    "offsets_from_mapping",
    "parse_target",
    "save_calibration",
]
