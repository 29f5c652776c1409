"""A keyword heuristic judge: a transparent baseline and a judge that needs no artifacts.

It looks for words that signal the depth of reasoning the rubric describes (prove, derive,
diagnose, design → HIGH; explain, compare, how to, write a function → MEDIUM) and otherwise
answers LOW. It is a baseline to beat, not the default judge.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from langchain_stream.judge.base import Complexity, Judgment

_HIGH_PATTERNS = (
    r"\bprove\b",
    r"\bproof\b",
    r"\bderive\b",
    r"\bderivation\b",
    r"\bdiagnos",
    r"\bdesign\b",
    r"\barchitect",
    r"\boptimi[sz]e\b",
    r"\btrade-?offs?\b",
    r"\bcritique\b",
    r"\bevaluate the (evidence|argument|claim)",
    r"\bdebug\b",
    r"\btraceback\b",
    r"\bsegmentation fault\b",
    r"\bwhy does (this|my)\b",
    r"\bresearch (plan|proposal|agenda)\b",
    r"\bsynthesi[sz]e\b",
    r"\bstep[- ]by[- ]step\b",
    r"\bmy (data|dataset|results|study|experiment)\b",
)
_MEDIUM_PATTERNS = (
    r"\bexplain\b",
    r"\bcompare\b",
    r"\bdifference between\b",
    r"\bhow (do|does|can|should|to)\b",
    r"\bwrite (a|an|me a) (function|script|program|query|class)\b",
    r"\bcalculate\b",
    r"\bcompute\b",
    r"\bsolve\b",
    r"\bsummari[sz]e\b",
    r"\bwhy\b",
    r"\bexample\b",
    r"\bsteps\b",
)
_HIGH_RE = re.compile("|".join(_HIGH_PATTERNS), re.IGNORECASE)
_MEDIUM_RE = re.compile("|".join(_MEDIUM_PATTERNS), re.IGNORECASE)
# Long inputs only need their start and end for keywords; this bounds latency on huge pastes.
_MAX_CHARS = 4000


class KeywordJudge:
    """Sorts a query by keyword patterns; deterministic and dependency-free."""

    name = "keyword"
    quick = True
    """A few regular expressions over at most 8,000 characters: it runs on the event loop."""

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        """Judge ``query``; a very short query inherits the keywords of the last context turn."""
        start = time.perf_counter()
        text = query if len(query) <= _MAX_CHARS else query[:_MAX_CHARS] + query[-_MAX_CHARS:]
        if context and len(text.split()) <= 4:
            text = f"{context[-1][-_MAX_CHARS:]} {text}"
        high = len(_HIGH_RE.findall(text))
        medium = len(_MEDIUM_RE.findall(text))
        if high:
            complexity = Complexity.HIGH
        elif medium or len(text) > 400:
            complexity = Complexity.MEDIUM
        else:
            complexity = Complexity.LOW
        raw = {
            Complexity.LOW: 1.0,
            Complexity.MEDIUM: 1.0 + 2.0 * medium,
            Complexity.HIGH: 1.0 + 4.0 * high,
        }
        raw[complexity] += 2.0
        total = sum(raw.values())
        return Judgment(
            complexity=complexity,
            scores={k: v / total for k, v in raw.items()},
            latency_ms=(time.perf_counter() - start) * 1000.0,
            judge=self.name,
        )
