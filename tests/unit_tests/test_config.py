"""Settings: environment, TOML file, precedence and clear errors."""

from __future__ import annotations

import pytest

from langchain_stream.config import Settings, get_settings
from langchain_stream.errors import ConfigurationError


def test_defaults_need_no_configuration() -> None:
    settings = Settings()
    assert settings.local_model is None
    assert settings.configured_tiers == ["local"]


def test_environment_variables_set_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_LOCAL_MODEL", "/models/x.gguf")
    monkeypatch.setenv("STREAM_RELAY_URLS", "wss://a.example/ , wss://b.example/")
    monkeypatch.setenv("STREAM_HPC_ENDPOINT_ID", "abc")
    settings = Settings()
    assert settings.local_model == "/models/x.gguf"
    assert settings.relay_urls == ["wss://a.example/", "wss://b.example/"]
    assert settings.configured_tiers == ["local", "hpc"]


def test_toml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    path = tmp_path / "stream.toml"
    path.write_text('judge = "keyword"\nmax_tokens = 77\ncloud_model = "gpt-x"\n')
    monkeypatch.setenv("STREAM_CONFIG", str(path))
    monkeypatch.setenv("STREAM_MAX_TOKENS", "12")
    settings = Settings()
    assert settings.cloud_model == "gpt-x"
    assert settings.max_tokens == 12
    assert settings.configured_tiers == ["local", "cloud"]


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("STREAM_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match=r"nope\.toml"):
        Settings()


def test_invalid_value_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_TEMPERATURE", "hot")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="temperature"):
        get_settings()
