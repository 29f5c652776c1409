"""The judge contract: ``Complexity``, ``Judgment`` and the ``ComplexityJudge`` protocol.

A judge reads the current query (and, for follow-ups, a little context) and returns a class of
``shared/judge-rubric``: LOW → local, MEDIUM → HPC, HIGH → cloud. It runs locally and never
touches the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class Complexity(StrEnum):
    """Depth of reasoning a good answer needs (see the labeling rubric)."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class Judgment(BaseModel):
    """What a judge decided about one query."""

    model_config = ConfigDict(frozen=True)

    complexity: Complexity
    """The class chosen."""
    scores: dict[Complexity, float] = Field(default_factory=dict)
    """Per-class scores (probabilities for judges that have them), summing to about 1."""
    latency_ms: float = 0.0
    """Wall time the judgment took."""
    judge: str = ""
    """Name of the judge that produced it."""


@runtime_checkable
class ComplexityJudge(Protocol):
    """Anything that sorts a query into LOW / MEDIUM / HIGH, locally and quickly."""

    name: str

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        """Judge ``query``; ``context`` holds the previous turns' text, most recent last."""
        ...


def is_quick(judge: ComplexityJudge) -> bool:
    """Whether ``judge`` says it judges in microseconds (a class attribute ``quick = True``).

    An async router runs a quick judge on the event loop; any other judge (a model, a user's own
    code) runs on the judge pool, since handing work to a thread costs more than a quick
    judgment and a slow one would stall every other request on the loop.
    """
    return getattr(judge, "quick", False) is True
