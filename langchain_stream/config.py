"""The one configuration of langchain-stream, and the only reader of the environment.

Values come, highest priority first, from: arguments passed to :class:`Settings`, environment
variables ``STREAM_<FIELD>`` (e.g. ``STREAM_LOCAL_MODEL``), a TOML file, and the defaults below.
The TOML file is ``$STREAM_CONFIG`` when set, else ``./stream.toml`` when present, else
``~/.config/langchain-stream/config.toml`` when present. Its keys are the field names::

    local_model = "/models/llama-3.2-3b-instruct-q4_k_m.gguf"
    judge = "keyword"
    cloud_model = "gpt-4o-mini"
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from langchain_stream.errors import ConfigurationError

Tier = Literal["local", "hpc", "cloud"]
TIERS: tuple[Tier, ...] = ("local", "hpc", "cloud")

CONFIG_ENV_VAR = "STREAM_CONFIG"
_DEFAULT_CONFIG_PATHS = (
    Path("stream.toml"),
    Path.home() / ".config" / "langchain-stream" / "config.toml",
)


def config_file_path() -> Path | None:
    """The TOML file settings are read from, or ``None`` when there is none."""
    explicit = os.environ.get(CONFIG_ENV_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_ENV_VAR}={explicit!r} is not a readable file")
        return path
    return next((p for p in _DEFAULT_CONFIG_PATHS if p.is_file()), None)


class Settings(BaseSettings):
    """Tiers, models, judge, relay and cloud settings (env: ``STREAM_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="STREAM_", extra="ignore")

    # --- local tier -------------------------------------------------------------------------
    local_model: str | None = None
    """Path to a GGUF file for the local tier; unset means the embedded SmolLM2-135M-Instruct."""
    local_n_ctx: int = Field(default=4096, ge=256)
    """Context window the local model is loaded with, in tokens."""
    local_n_threads: int | None = Field(default=None, ge=1)
    """CPU threads for llama.cpp; unset means half the logical cores."""

    # --- generation defaults ----------------------------------------------------------------
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    """Sampling temperature used by every tier unless a call overrides it."""
    max_tokens: int | None = Field(default=512, ge=1)
    """Maximum tokens per answer unless a call overrides it."""

    # --- routing ----------------------------------------------------------------------------
    judge: str = "keyword"
    """Which complexity judge routes queries: ``keyword`` (or a ``module:attribute`` path)."""
    tier: Tier | None = None
    """Pin every request to one tier, skipping the judge."""
    first_token_timeout_s: float = Field(default=60.0, gt=0)
    """How long a tier may take to produce its first token before the router falls back."""

    # --- HPC tier ---------------------------------------------------------------------------
    hpc_endpoint_id: str | None = None
    """Globus Compute endpoint id of the HPC tier; unset means no HPC tier."""
    relay_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """WebSocket relay URLs (comma-separated in the environment)."""
    relay_secret: SecretStr | None = None
    """Secret that signs and verifies channel tokens (``stream relay`` and its clients)."""

    # --- cloud tier -------------------------------------------------------------------------
    cloud_model: str | None = None
    """Model name at the cloud provider; unset means no cloud tier."""
    cloud_base_url: str | None = None
    """OpenAI-compatible base URL (OpenAI when unset)."""
    cloud_api_key: SecretStr | None = None
    """API key of the cloud provider."""

    @field_validator("relay_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def configured_tiers(self) -> list[Tier]:
        """Tiers with enough configuration to be tried, in tier order."""
        tiers: list[Tier] = ["local"]
        if self.hpc_endpoint_id:
            tiers.append("hpc")
        if self.cloud_model:
            tiers.append("cloud")
        return tiers


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    try:
        return Settings()
    except ConfigurationError:
        raise
    except Exception as exc:  # pydantic ValidationError, TOML syntax error
        raise ConfigurationError(f"invalid langchain-stream settings: {exc}") from exc
