"""Unsupported and unknown OpenAI parameters: refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_stream.server import openai_schema as oa
from langchain_stream.server.errors import ApiError
from langchain_stream.server.parameters import NO_EFFECT, check_parameters

MESSAGES = [{"role": "user", "content": "hi"}]


def request(**fields: Any) -> oa.ChatCompletionRequest:
    return oa.ChatCompletionRequest.model_validate(
        {"model": "stream-auto", "messages": MESSAGES, **fields}
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"n": 2}, "n"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
    ],
)
def test_an_unsupported_parameter_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_parameters(request(**fields))
    assert caught.value.status == 400
    assert caught.value.body.param == param
    assert caught.value.body.code == "unsupported_parameter"
    assert caught.value.body.message.startswith(f"{param} is not supported")


@pytest.mark.parametrize(
    "fields",
    [
        {"logprobs": False},
        {"n": 1},
        {"logit_bias": {}},
        {"modalities": ["text"]},
        {"top_logprobs": None},
        {name: "x" for name in NO_EFFECT},
    ],
)
def test_defaults_and_bookkeeping_are_accepted(fields: dict[str, Any]) -> None:
    check_parameters(request(**fields))


def test_an_unknown_parameter_is_refused_as_openai_does() -> None:
    with pytest.raises(ApiError) as caught:
        check_parameters(request(temprature=0.5))
    assert (caught.value.body.param, caught.value.body.code) == ("temprature", "unknown_parameter")
    assert "unrecognized request argument supplied: temprature" in caught.value.body.message
