"""OpenAI parameters the server does not serve get a 400 naming them, through the official
client; the defaults of those parameters are accepted."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.integration_tests.server.conftest import KEY

QUESTION = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=KEY, max_retries=0)


@pytest.mark.parametrize(
    ("arguments", "param", "code"),
    [
        ({"logprobs": True}, "logprobs", "unsupported_parameter"),
        ({"logprobs": True, "top_logprobs": 3}, "logprobs", "unsupported_parameter"),
        ({"top_logprobs": 3}, "top_logprobs", "unsupported_parameter"),
        ({"n": 2}, "n", "unsupported_parameter"),
        ({"logit_bias": {"1234": 5}}, "logit_bias", "unsupported_parameter"),
        ({"stream": True, "logprobs": True}, "logprobs", "unsupported_parameter"),
        ({"extra_body": {"temprature": 0.1}}, "temprature", "unknown_parameter"),
    ],
)
def test_refused_by_name(
    client: openai.OpenAI, arguments: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="stream-auto",
            messages=QUESTION,
            max_tokens=4,
            **arguments,  # type: ignore[arg-type]
        )
    assert caught.value.status_code == 400
    assert (caught.value.param, caught.value.code) == (param, code)
    assert param in caught.value.message


def test_the_defaults_are_accepted(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="stream-auto",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=4,
        logprobs=False,
        n=1,
        store=False,
    )
    assert answer.choices[0].message.content is not None
