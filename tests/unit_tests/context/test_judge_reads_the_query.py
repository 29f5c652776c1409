"""The judge reads the current query (and a little context), not the history.

See docs/design.md#context.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_stream.bench.conversations import FILLER
from langchain_stream.graph import JUDGE_CONTEXT_TURNS, _query_and_context
from langchain_stream.judge import Complexity, resolve_judge

LONG_HISTORY = [SystemMessage("You are helpful.")]
for question, answer in FILLER:
    LONG_HISTORY += [HumanMessage(question), AIMessage(answer)]


def test_the_judge_sees_the_query_and_two_turns_whatever_the_history() -> None:
    query = HumanMessage("What is 2 + 2?")
    text, earlier = _query_and_context([*LONG_HISTORY, query])
    assert text == "What is 2 + 2?"
    assert earlier == [m.text for m in LONG_HISTORY[-JUDGE_CONTEXT_TURNS:]]
    assert _query_and_context([query]) == ("What is 2 + 2?", [])


def test_a_simple_query_is_low_after_a_long_history_and_a_hard_one_is_not() -> None:
    judge = resolve_judge("keyword")
    for history in ([], LONG_HISTORY):
        simple = _query_and_context([*history, HumanMessage("What is 2 + 2?")])
        assert judge.judge(*simple).complexity is Complexity.LOW
    hard = _query_and_context(
        [
            *LONG_HISTORY,
            HumanMessage(
                "Derive the convergence rate of stochastic gradient descent for strongly "
                "convex functions and prove it is optimal."
            ),
        ]
    )
    assert judge.judge(*hard).complexity is not Complexity.LOW
