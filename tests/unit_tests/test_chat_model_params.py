"""StreamChatModel's constructor: LangChain's standard parameters take effect, unknown ones are
refused by name (no model is loaded, nothing is called)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from langchain_stream import ChatLocal, StreamChatModel
from langchain_stream.config import get_settings


def test_an_unknown_argument_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        StreamChatModel(model="stream-cloud", timeout=10, bogus_arg=1)
    message = str(caught.value)
    assert "unknown argument(s) bogus_arg" in message
    for valid in ("model", "timeout", "max_retries", "api_key", "base_url", "temperature"):
        assert valid in message


@pytest.mark.parametrize(
    ("model", "tier", "name"),
    [
        ("stream-cloud", "cloud", "stream-cloud"),
        ("cloud", "cloud", "stream-cloud"),
        ("hpc", "hpc", "stream-hpc"),
        ("stream-local", "local", "stream-local"),
        ("auto", None, "stream-auto"),
        ("stream-auto", None, "stream-auto"),
    ],
)
def test_model_names_a_tier_or_auto(model: str, tier: str | None, name: str) -> None:
    llm = StreamChatModel(model=model)
    assert (llm.tier, llm.model_name) == (tier, name)
    assert llm._get_ls_params()["ls_model_name"] == name


def test_model_auto_overrides_the_settings_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_TIER", "local")
    get_settings.cache_clear()
    assert StreamChatModel().tier == "local"
    assert StreamChatModel(model="auto").tier is None


def test_an_unknown_model_or_a_contradiction_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"unknown model 'gpt-4o'.*a tier, local, hpc, cloud"):
        StreamChatModel(model="gpt-4o")
    with pytest.raises(ValidationError, match="disagree"):
        StreamChatModel(model="cloud", tier="local")
    assert StreamChatModel(model="cloud", tier="cloud").tier == "cloud"


def test_timeout_max_retries_key_and_url_reach_the_cloud_tier() -> None:
    llm = StreamChatModel(
        cloud_model="m",
        api_key="sk-given",
        base_url="http://127.0.0.1:9/v1",
        timeout=7.5,
        max_retries=3,
    )
    cloud = llm.tier_models()["cloud"]
    assert cloud.openai_api_key.get_secret_value() == "sk-given"  # type: ignore[attr-defined]
    assert cloud.openai_api_base == "http://127.0.0.1:9/v1"  # type: ignore[attr-defined]
    assert cloud.request_timeout == 7.5  # type: ignore[attr-defined]
    assert cloud.max_retries == 3  # type: ignore[attr-defined]
    local = llm.tier_models()["local"]
    assert isinstance(local, ChatLocal) and local.timeout_s == 7.5
    # The secret stays secret in the model's repr.
    assert "sk-given" not in repr(llm)


def test_the_long_names_are_accepted_too_and_the_defaults_keep_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm = StreamChatModel(cloud_model="m", cloud_api_key="k", cloud_base_url="http://h/v1")
    cloud = llm.tier_models()["cloud"]
    assert cloud.openai_api_base == "http://h/v1"  # type: ignore[attr-defined]
    assert cloud.max_retries == 0  # type: ignore[attr-defined]  # the fallback is the retry
    monkeypatch.setenv("STREAM_TIER_TIMEOUT_S", "33")
    get_settings.cache_clear()
    assert StreamChatModel().tier_models()["local"].timeout_s == 33  # type: ignore[attr-defined]
    assert "cloud" not in StreamChatModel().tier_models()


def test_hpc_backend_key_and_url_reach_the_hpc_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_HPC_ENDPOINT_ID", "local")
    get_settings.cache_clear()
    llm = StreamChatModel(hpc_base_url="http://127.0.0.1:8000/v1", hpc_api_key="vk", timeout=9)
    hpc = llm.tier_models()["hpc"]
    assert hpc.backend_url == "http://127.0.0.1:8000/v1"  # type: ignore[attr-defined]
    assert hpc.api_key.get_secret_value() == "vk"  # type: ignore[attr-defined]
    assert hpc.timeout == 9  # type: ignore[attr-defined]


def test_streaming_is_accepted() -> None:
    assert StreamChatModel(streaming=True).streaming is True
