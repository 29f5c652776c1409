"""``GET /readyz``: each tier's readiness, 503 when no tier can answer; no key needed."""

from __future__ import annotations

import httpx

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import Settings
from langchain_stream.server import KeyStore, create_app
from tests.integration_tests.cloud_server import free_port
from tests.integration_tests.server.conftest import serving


def test_ready_tiers_and_an_unreachable_cloud(local_model: ChatLocal) -> None:
    closed = free_port()  # nothing listens there
    router = StreamChatModel(
        local=local_model,
        judge="keyword",
        cloud_model="m",
        base_url=f"http://127.0.0.1:{closed}/v1",
        api_key="sk-unused",
    )
    app = create_app(
        router, settings=Settings(rate_limit_rpm=0), keys=KeyStore.of("sk-" + "1" * 40)
    )
    with serving(app) as url:
        response = httpx.get(f"{url}/readyz")  # without a key: a load balancer has none
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "tiers": {"local": True, "cloud": False}}
        assert httpx.get(f"{url}/v1/models").status_code == 401  # the rest still needs one


def test_no_tier_ready_is_503(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = ChatLocal(model_path=str(tmp_path / "missing.gguf"))
    app = create_app(
        StreamChatModel(local=broken, judge="keyword"),
        settings=Settings(rate_limit_rpm=0),
        keys=KeyStore(),
    )
    with serving(app) as url:
        response = httpx.get(f"{url}/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "not_ready", "tiers": {"local": False}}
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive, though not ready
