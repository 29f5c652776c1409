"""Property-based requests from the app's own OpenAPI schema: never a server error.

Schemathesis generates valid and invalid requests for every route of the schema (bounded: a
few examples each, plus its coverage cases) and sends them to the real server on loopback.
Chat requests name a served model and ask for short answers, so the run stays quick.
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extra")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from langchain_stream.chat_model import StreamChatModel  # noqa: E402
from langchain_stream.config import Settings  # noqa: E402
from langchain_stream.server import KeyStore, create_app  # noqa: E402
from tests.integration_tests.server.conftest import KEY  # noqa: E402

# The schema of the app as served (langserve's routes have schemas of their own).
SCHEMA = schemathesis.openapi.from_dict(
    create_app(
        StreamChatModel(), settings=Settings(), keys=KeyStore.of(KEY), langserve=False
    ).openapi()
)


def _answerable(body: Any) -> Any:
    """A served model (unknown ids are tested elsewhere) and a short answer."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "max_completion_tokens"}
        body["max_tokens"] = 4
        if isinstance(body.get("model"), str):
            body["model"] = "stream-local"
    return body


@SCHEMA.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: Any, server_url: str) -> None:
    case.body = _answerable(case.body)
    response = case.call(base_url=server_url, headers={"Authorization": f"Bearer {KEY}"})
    case.validate_response(response, checks=[not_a_server_error])
