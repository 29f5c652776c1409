"""Every failure maps to one OpenAI error object and status, in one place."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from langchain_stream.errors import (
    ConfigurationError,
    InvalidRequestError,
    MidStreamError,
    ModelLoadError,
    NoTierAvailableError,
    RelayUnavailableError,
    TierUnavailableError,
)
from langchain_stream.server.errors import ApiError, from_exception, from_validation_error
from langchain_stream.server.openai_schema import ChatCompletionRequest


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (ApiError(404, "no such model", code="model_not_found"), 404, "model_not_found"),
        (InvalidRequestError("empty"), 400, "invalid_request"),
        (
            NoTierAvailableError("none", attempts=[{"tier": "local", "error": "X: y"}]),
            503,
            "no_tier_available",
        ),
        (TierUnavailableError("down", tier="hpc"), 503, "no_tier_available"),
        (MidStreamError("broke", tier="local", partial_text="Hel"), 502, "mid_stream_error"),
        (RelayUnavailableError("no relay"), 502, "relay_error"),
        (ConfigurationError("bad"), 500, "configuration_error"),
        (RuntimeError("secret detail"), 500, "internal_error"),
    ],
)
def test_status_and_code_of_each_failure(exc: Exception, status: int, code: str) -> None:
    got_status, body = from_exception(exc)
    assert (got_status, body.code) == (status, code)
    assert body.type == ("invalid_request_error" if status < 500 else "server_error")


def test_unexpected_and_configuration_details_do_not_reach_the_client() -> None:
    assert "secret" not in from_exception(RuntimeError("secret detail"))[1].message
    leaked = from_exception(ModelLoadError("missing /home/me/model.gguf", path="/home/me"))[1]
    assert "/home/me" not in leaked.message


def test_a_request_every_tier_rejected_is_the_callers_fault() -> None:
    exc = NoTierAvailableError(
        "no tier could answer",
        attempts=[{"tier": "local", "error": "InvalidRequestError: an image block"}],
    )
    status, body = from_exception(exc)
    assert status == 400 and body.type == "invalid_request_error"
    # In the tiers' words, without the exception's type name.
    assert body.message == "the request cannot be served: local: an image block"


def _validation_error(body: object) -> RequestValidationError:
    try:
        ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        return RequestValidationError(errors)
    raise AssertionError("the body was valid")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model", "missing"),
        ({"model": "m", "messages": []}, "messages", "too_short"),
        (
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "string_type",
        ),
        (
            {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0]",
            "union_tag_invalid",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
            "temperature",
            "float_type",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 2},
            "top_p",
            "less_than_equal",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "maybe"},
            "tool_choice",
            "literal_error",
        ),
    ],
)
def test_validation_errors_name_the_field_as_a_client_wrote_it(
    body: object, param: str, code: str
) -> None:
    error = from_validation_error(_validation_error(body))
    assert (error.param, error.code, error.type) == (param, code, "invalid_request_error")
    assert error.message.startswith(param)


def test_malformed_json_says_so() -> None:
    exc = RequestValidationError([{"type": "json_invalid", "loc": ("body", 3), "msg": "x"}])
    error = from_validation_error(exc)
    assert error.code == "json_invalid" and "not valid JSON" in error.message
