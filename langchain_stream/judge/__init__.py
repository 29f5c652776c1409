"""Complexity judges: the contract, the built-in judges, and resolving one by name."""

from __future__ import annotations

import importlib
from functools import lru_cache

from langchain_stream.errors import ConfigurationError
from langchain_stream.judge.base import Complexity, ComplexityJudge, Judgment
from langchain_stream.judge.heuristic import KeywordJudge

# Built-in judges by name; values are "module:attribute" so heavy ones load only when chosen.
BUILTIN_JUDGES: dict[str, str] = {
    "keyword": "langchain_stream.judge.heuristic:KeywordJudge",
}


@lru_cache(maxsize=8)
def resolve_judge(name: str) -> ComplexityJudge:
    """The judge called ``name`` (built in) or found at ``"module:attribute"``.

    Raises:
        ConfigurationError: the name is unknown or does not give a judge.
    """
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
    return judge


__all__ = ["Complexity", "ComplexityJudge", "Judgment", "KeywordJudge", "resolve_judge"]
