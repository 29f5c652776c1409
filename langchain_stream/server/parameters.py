"""OpenAI request parameters this server does not serve: refused by name, never ignored.

A client that asks for log probabilities, several choices or audio and gets a plain answer
back would read it as what it asked for. So a request that sets one of
:data:`UNSUPPORTED` to a value that asks for something gets a 400 naming the parameter, and a
parameter OpenAI does not know either gets the 400 OpenAI itself sends ("unrecognized request
argument"). :data:`NO_EFFECT` lists the OpenAI parameters accepted because they cannot change
the answer (bookkeeping for OpenAI's own platform); docs/serving.md lists all three sets.
"""

from __future__ import annotations

from typing import Any

from langchain_stream.server import openai_schema as oa
from langchain_stream.server.errors import ApiError

UNSUPPORTED: dict[str, str] = {
    "logprobs": "log probabilities are not returned by every tier",
    "top_logprobs": "log probabilities are not returned by every tier",
    "logit_bias": "token biases do not carry across the tiers' different vocabularies",
    "n": "one choice per request is served",
    "audio": "audio output is not served",
    "modalities": "only text output is served",
    "prediction": "predicted outputs are not served",
    "functions": "use tools (functions is OpenAI's deprecated form)",
    "function_call": "use tool_choice (function_call is OpenAI's deprecated form)",
    "web_search_options": "web search is not served",
    "reasoning_effort": "reasoning effort cannot be set on every tier",
    "verbosity": "verbosity cannot be set on every tier",
}
"""OpenAI parameters that would change the answer, and why each is not served."""

NO_EFFECT: frozenset[str] = frozenset(
    {"metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"}
)
"""OpenAI parameters accepted although they have no effect here: none changes the answer."""


def _asks_for_something(name: str, value: Any) -> bool:
    """Whether a value of an unsupported parameter asks for what is not served (a client
    that sends the default, such as ``logprobs: false`` or ``n: 1``, asks for nothing)."""
    if value is None or value is False or value == [] or value == {}:
        return False
    if name == "n":
        return value != 1
    if name == "modalities":
        return value != ["text"]
    return True


def check_parameters(request: oa.ChatCompletionRequest) -> None:
    """Refuse a request that asks for what this server does not serve.

    Raises:
        ApiError: 400 ``unsupported_parameter`` or ``unknown_parameter``, naming the parameter.
    """
    given = {name: getattr(request, name) for name in ("n",)}
    given.update(request.model_extra or {})
    for name, value in given.items():
        if name in UNSUPPORTED:
            if _asks_for_something(name, value):
                raise ApiError(
                    400,
                    f"{name} is not supported: {UNSUPPORTED[name]}",
                    code="unsupported_parameter",
                    param=name,
                )
        elif name not in NO_EFFECT:
            raise ApiError(
                400,
                f"unrecognized request argument supplied: {name[:80]}",
                code="unknown_parameter",
                param=name[:80],
            )
