"""Complexity judges: the contract, the built-in judges, and resolving one by name."""

from __future__ import annotations

import importlib
from functools import lru_cache

from langchain_stream.errors import ConfigurationError
from langchain_stream.judge.base import Complexity, ComplexityJudge, Judgment
from langchain_stream.judge.heuristic import KeywordJudge

# Built-in judges by name; values are "module:attribute" so heavy ones load only when chosen.
BUILTIN_JUDGES: dict[str, str] = {
    "trained": "langchain_stream.judge.trained:TrainedJudge",
    "keyword": "langchain_stream.judge.heuristic:KeywordJudge",
    "llm": "langchain_stream.judge.llm:LLMJudge",
}


def resolve_judge(name: str, *, calibrated: bool = True) -> ComplexityJudge:
    """The judge called ``name`` (built in) or found at ``"module:attribute"``.

    Judges are loaded and warmed up once per process. With ``calibrated``, a judge that has
    offsets in the settings (``judge_offsets[name]``, written by ``stream judge calibrate``)
    comes wrapped in a :class:`~langchain_stream.judge.calibrate.CalibratedJudge`.

    Raises:
        ConfigurationError: the name is unknown, does not give a judge, or its offsets are
            invalid.
    """
    judge = _load_judge(name)
    if not calibrated:
        return judge
    from langchain_stream.config import get_settings

    offsets = get_settings().judge_offsets.get(name)
    if not offsets:
        return judge
    return _calibrated_judge(name, tuple(sorted(offsets.items())))


@lru_cache(maxsize=8)
def _load_judge(name: str) -> ComplexityJudge:
    target = BUILTIN_JUDGES.get(name, name)
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ConfigurationError(
            f"unknown judge {name!r}: use one of {sorted(BUILTIN_JUDGES)} or 'module:attribute'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load judge {name!r} from {target!r}: {exc}") from exc
    judge = factory() if isinstance(factory, type) or callable(factory) else factory
    if not isinstance(judge, ComplexityJudge):
        raise ConfigurationError(f"{target!r} is not a ComplexityJudge")
    judge.judge("warm up")  # load artifacts now: the first routed query must be fast too
    return judge


@lru_cache(maxsize=8)
def _calibrated_judge(name: str, offsets: tuple[tuple[str, float], ...]) -> ComplexityJudge:
    from langchain_stream.judge.calibrate import CalibratedJudge, offsets_from_mapping

    try:
        values = offsets_from_mapping(dict(offsets))
    except ValueError as exc:
        raise ConfigurationError(f"invalid judge_offsets for {name!r}: {exc}") from exc
    return CalibratedJudge(_load_judge(name), values)


__all__ = [
    "BUILTIN_JUDGES",
    "Complexity",
    "ComplexityJudge",
    "Judgment",
    "KeywordJudge",
    "resolve_judge",
]
