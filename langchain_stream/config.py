"""The one configuration of langchain-stream, and the only reader of the environment.

Values come, highest priority first, from: arguments passed to :class:`Settings`, environment
variables ``STREAM_<FIELD>`` (e.g. ``STREAM_LOCAL_MODEL``), a TOML file, and the defaults below.
The TOML file is ``$STREAM_CONFIG`` when set, else ``./stream.toml`` when present, else
``~/.config/langchain-stream/config.toml`` when present. Its keys are the field names::

    local_model = "/models/llama-3.2-3b-instruct-q4_k_m.gguf"
    judge = "keyword"
    cloud_model = "gpt-4o-mini"

A ``[[tiers]]`` list replaces the three default tiers by any number of named ones
(docs/tiers.md).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from langchain_stream.errors import ConfigurationError
from langchain_stream.limits import DEFAULT_IMAGE_LIMITS, DEFAULT_TIMEOUTS
from langchain_stream.tier_spec import (
    DEFAULT_TIER_NAMES,
    TierName,
    TierSpec,
    default_tier_specs,
    parse_tier_specs,
)

Tier = TierName
TIERS: tuple[Tier, ...] = DEFAULT_TIER_NAMES
"""The default tiers' names (when no ``[[tiers]]`` are configured)."""

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


def writable_config_path() -> Path:
    """The TOML file commands such as ``stream judge calibrate`` write settings to:
    ``$STREAM_CONFIG`` when set (created if missing), else the file settings are read from,
    else ``./stream.toml``."""
    explicit = os.environ.get(CONFIG_ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    return config_file_path() or _DEFAULT_CONFIG_PATHS[0]


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "langchain-stream"


class Settings(BaseSettings):
    """Tiers, models, judge, relay and cloud settings (env: ``STREAM_<FIELD>``)."""

    # Attribute docstrings become field descriptions: the configuration reference is built
    # from them.
    model_config = SettingsConfigDict(
        env_prefix="STREAM_", extra="ignore", use_attribute_docstrings=True
    )

    # --- local tier -------------------------------------------------------------------------
    local_model: str | None = None
    """Path to a GGUF file for the local tier; unset means the embedded SmolLM2-135M-Instruct."""
    local_n_ctx: int = Field(default=4096, ge=256)
    """Context window the local model is loaded with, in tokens."""
    local_n_threads: int | None = Field(default=None, ge=1)
    """CPU threads for llama.cpp; unset means half the logical cores."""
    local_extra_buffers: Literal["auto", "on", "off"] = "auto"
    """llama.cpp's extra buffer types (AMX, weight repacking): ``auto`` probes once per CPU,
    llama.cpp build and quantization type in a child process and caches the answer; ``on`` and
    ``off`` skip the probe. Some Intel CPUs with AMX crash with them on."""
    cache_dir: Path | None = Field(default_factory=lambda: _default_cache_dir())
    """Where machine-specific answers (the extra-buffer probe) are cached; ``none`` keeps
    nothing. Default: ``$XDG_CACHE_HOME/langchain-stream`` or ``~/.cache/langchain-stream``."""

    # --- tiers as configuration (docs/tiers.md) ---------------------------------------------
    tiers: list[TierSpec] = Field(default_factory=list)
    """The ``[[tiers]]`` list; empty means the three default tiers from the settings below."""

    # --- generation defaults ----------------------------------------------------------------
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    """Sampling temperature used by every tier unless a call overrides it."""
    max_tokens: int | None = Field(default=512, ge=1)
    """Maximum tokens per answer unless a call overrides it."""

    # --- routing ----------------------------------------------------------------------------
    judge: str = "trained"
    """The complexity judge: ``trained`` (default), ``keyword``, ``llm``, or a
    ``module:attribute`` path."""
    judge_model: str | None = None
    """GGUF file of the ``llm`` judge; unset means the local tier's model (shared with it)."""
    judge_offsets: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per judge, offsets added to the log-scores of each class (``{"trained": {"LOW": 0.0,
    "MEDIUM": 0.3, "HIGH": -0.4}}``), written by ``stream judge calibrate``."""
    judge_target: dict[str, float] = Field(default_factory=dict)
    """Share of traffic each class should get (``{"LOW": 0.6, "MEDIUM": 0.25, "HIGH": 0.15}``),
    written by ``stream judge calibrate``; the routing shares report drift from it."""
    judge_share_window: int = Field(default=1000, ge=1)
    """Recent routed requests over which the routing shares are reported."""
    tier: Tier | None = None
    """Pin every request to one tier, skipping the judge."""
    first_token_timeout_s: float = Field(default=DEFAULT_TIMEOUTS.first_token_s, gt=0)
    """How long a tier may take to produce its first token before the router falls back."""
    tier_timeout_s: float = Field(default=DEFAULT_TIMEOUTS.total_s, gt=0)
    """Total deadline of one request on the local tier, in seconds: waiting for the model,
    reading the prompt and writing the answer all count. Past it the tier gives up: before its
    first token the router falls back to the next tier, after it the answer ends with an error."""

    # --- context: fitting long conversations to a tier's window (docs/design.md#context) -----
    context_verbatim_turns: int = Field(default=2, ge=1)
    """Most recent user turns kept verbatim when older ones are summarized (while they fit)."""
    context_low_water: float = Field(default=0.5, gt=0.0, le=1.0)
    """When turns must be summarized, fold enough that the prompt fills at most this share of
    the tier's budget, so the next turns fit without summarizing again."""
    context_answer_tokens: int = Field(default=512, ge=1)
    """Tokens kept free for the answer in a window shared with the prompt, when neither the
    call nor the tier model sets ``max_tokens``."""
    context_summary_max_tokens: int = Field(default=512, ge=16)
    """Bound of a conversation's summary in the local model's tokens (and at most a third of
    the budget); past it the summary is re-summarized, then its oldest notes trimmed."""
    context_note_tokens: int = Field(default=40, ge=8)
    """Most tokens the local model writes to summarize one turn."""
    hpc_context_tokens: int | None = Field(default=None, ge=256)
    """Context window of the HPC model; unset means what the model reports, else
    ``local_n_ctx`` for llama.cpp workers, else 8192."""
    cloud_context_tokens: int | None = Field(default=None, ge=256)
    """Context window of the cloud model; unset means its LangChain model profile, else 32768."""

    # --- HPC tier ---------------------------------------------------------------------------
    hpc_endpoint_id: str | None = None
    """Globus Compute endpoint id of the HPC tier; unset means no HPC tier."""
    relay_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """WebSocket relay URLs (comma-separated in the environment)."""
    relay_secret: SecretStr | None = None
    """Secret that signs and verifies channel tokens (``stream relay`` and its clients)."""
    relay_state_url: str | None = None
    """Record of ended channels shared by the relays of a set (SQLAlchemy URL: PostgreSQL for
    relays on several machines, SQLite for one); unset means each relay's own memory only."""
    hpc_model: str | None = None
    """Model of the HPC backend: the served model name at ``hpc_backend_url``, or a GGUF path
    on the compute node for llama.cpp; unset means the endpoint's default model."""
    hpc_backend_url: str | None = None
    """OpenAI-compatible server on the compute node (e.g. vLLM), as the node sees it, such as
    ``http://127.0.0.1:8000/v1``; unset means llama.cpp in the worker process."""
    hpc_backend_api_key: SecretStr | None = None
    """API key of that server (vLLM's ``--api-key``), sent to the worker on the control plane."""
    hpc_mode: Literal["relay", "batch"] = "relay"
    """``relay`` streams tokens through the relay; ``batch`` returns the whole answer through
    the task result (the baseline, and the fallback when no relay is reachable)."""
    hpc_function_id: str | None = None
    """Id of the worker function registered with Globus Compute, for endpoints that run only
    allowed functions; unset submits the function itself."""
    hpc_vision: bool = False
    """Whether the default HPC tier's model reads images (a vision model behind
    ``hpc_backend_url``, or a llama.cpp model with its projector); off: image requests never
    go to it."""
    hpc_local_workers: int = Field(default=1, ge=1)
    """Processes of the local endpoint (``STREAM_HPC_ENDPOINT_ID=local``); each loads one
    model copy."""

    # --- cloud tier -------------------------------------------------------------------------
    cloud_model: str | None = None
    """Model name at the cloud provider; unset means no cloud tier."""
    cloud_base_url: str | None = None
    """OpenAI-compatible base URL (OpenAI when unset)."""
    cloud_api_key: SecretStr | None = None
    """API key of the cloud provider."""
    cloud_vision: bool = True
    """Whether the default cloud tier's model reads images (most current cloud chat models
    do); turn it off for a text-only model, so image requests never go to it."""

    # --- images (docs/tiers.md#images) ------------------------------------------------------
    vision_min_complexity: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"
    """The least complexity a request with images is routed as, whatever the judge (which reads
    the text only) says of its words."""
    image_max_bytes: int = Field(default=DEFAULT_IMAGE_LIMITS.max_bytes, ge=1)
    """Largest image one request may carry, in bytes once decoded."""
    image_max_count: int = Field(default=DEFAULT_IMAGE_LIMITS.max_images, ge=0)
    """Most images one request may carry."""
    image_max_pixels: int = Field(default=DEFAULT_IMAGE_LIMITS.max_pixels, ge=1)
    """Most pixels (width x height) of one image."""
    image_media_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: sorted(DEFAULT_IMAGE_LIMITS.media_types)
    )
    """Media types of the images accepted (comma-separated in the environment)."""

    # --- policies ---------------------------------------------------------------------------
    privacy: Literal["standard", "institutional"] = "standard"
    """``institutional`` never sends a request to the cloud tier."""
    sensitive_patterns: dict[str, str] = Field(default_factory=dict)
    """Extra sensitive-data patterns, kind → regular expression (TOML table or JSON)."""
    sensitive_phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    """Region (ISO 3166 code) of phone numbers written without a country code."""
    unscannable_content: Literal["local", "cloud"] = "local"
    """Where a ``standard`` request goes whose content cannot be scanned (images, audio,
    files, binary ``data:`` URLs): ``local`` keeps it off the cloud, ``cloud`` lets it go.
    Under ``institutional`` privacy nothing goes to the cloud. The audit log names the rule."""
    pin_sensitive_conversations: bool = True
    """Once sensitive data appears in a conversation, keep the rest of it off the cloud."""
    budget_daily_usd: float | None = Field(default=None, ge=0)
    """Cloud spend cap per user per UTC day; when reached, HIGH queries go to HPC."""
    budget_monthly_usd: float | None = Field(default=None, ge=0)
    """Cloud spend cap per user per UTC month."""
    cloud_prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Prices per model: ``{"model": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}``."""
    database_url: str | None = None
    """Ledger, audit log and conversation state (SQLAlchemy URL); unset means a SQLite file
    in ``~/.local/share/langchain-stream/``, ``none`` disables them."""
    breaker_failures: int = Field(default=3, ge=1)
    """Consecutive failures that open a tier's circuit breaker."""
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    """How long an open breaker keeps its tier out of routing."""
    health_cache_s: float = Field(default=30.0, gt=0)
    """How long a tier's readiness check result is reused."""
    continue_after_mid_stream_failure: bool = False
    """When a tier fails after its first token, continue the answer on the next tier, with the
    partial answer as context, after an explicit event in the stream (else: raise)."""

    # --- serving (``stream serve``) -----------------------------------------------------------
    server_host: str = "127.0.0.1"
    """Interface ``stream serve`` binds; a non-loopback host requires API keys."""
    server_port: int = Field(default=8080, ge=1, le=65535)
    """TCP port of ``stream serve``."""
    server_workers: int = Field(default=1, ge=1)
    """Server processes (uvicorn workers); they share the database, not the rate limits."""
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """API keys the server accepts (comma-separated in the environment); only their SHA-256
    hashes are kept in memory."""
    api_keys_file: Path | None = None
    """File of API keys, one a line: ``sha256:<hex>`` (or the key itself), optionally followed
    by ``name=NAME`` and ``rpm=N``."""
    rate_limit_rpm: int = Field(default=120, ge=0)
    """Requests per minute allowed per API key; 0 turns rate limiting off."""
    rate_limit_storage: str = "memory://"
    """Where rate-limit counters live (a ``limits`` storage URI): ``memory://`` is per
    process; ``redis://host:6379`` shares them between workers and hosts."""
    auth_failure_limit: int = Field(default=20, ge=0)
    """Wrong API keys one client address may present within ``auth_failure_window_s``; past
    that its requests get HTTP 429 without their key being checked. 0 turns this off."""
    auth_failure_window_s: int = Field(default=60, ge=1)
    """The moving window over which wrong API keys are counted per client address, in
    seconds; counted in the ``rate_limit_storage``."""
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    """While a streamed answer waits for its first token longer than this, the server sends an
    SSE comment (``: keep-alive``) every this many seconds, so proxies that cut idle
    connections (often after 30 or 60 s) keep the stream open."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body the server reads, in bytes; larger ones get HTTP 413."""
    max_messages: int = Field(default=256, ge=1)
    """Most messages one chat request may carry."""
    max_schema_depth: int = Field(default=32, ge=1)
    """Deepest nesting of a JSON schema in ``tools`` or ``response_format``; deeper: HTTP 400."""
    max_schema_nodes: int = Field(default=2000, ge=1)
    """Most objects, arrays and values in all of one request's JSON schemas; more: HTTP 400."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            # A bad [[tiers]] entry is a configuration error naming the entry.
            for error in exc.errors(include_url=False):
                cause = error.get("ctx", {}).get("error")
                if error["loc"][:1] == ("tiers",) and isinstance(cause, ConfigurationError):
                    raise cause from None
            raise

    @field_validator("tiers", mode="before")
    @classmethod
    def _parse_tiers(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return parse_tier_specs(value)
        return value

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _none_cache_dir(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return value

    @field_validator("relay_urls", "image_media_types", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        # One environment variable carries a list as comma-separated parts.
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
    def tier_specs(self) -> list[TierSpec]:
        """The configured tiers: the ``[[tiers]]`` list, else the default ones."""
        return list(self.tiers) if self.tiers else default_tier_specs(self)

    @property
    def configured_tiers(self) -> list[Tier]:
        """Tiers with enough configuration to be tried, in configuration order."""
        return [spec.name for spec in self.tier_specs]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    try:
        return Settings()
    except ConfigurationError:
        raise
    except Exception as exc:  # pydantic ValidationError, TOML syntax error
        raise ConfigurationError(f"invalid langchain-stream settings: {exc}") from exc


def environment_values(*fields: str) -> dict[str, Any]:
    """What the environment sets for ``fields`` (``STREAM_<FIELD>``), parsed as the settings
    parse it; fields it does not set are left out.

    The environment takes precedence over the TOML file, so a command that writes the file uses
    this to say when what it wrote will not apply.

    Raises:
        ConfigurationError: a variable is set but cannot be parsed.
    """
    try:
        values = EnvSettingsSource(Settings)()
    except Exception as exc:  # pydantic-settings' SettingsError on bad JSON
        raise ConfigurationError(f"invalid langchain-stream settings: {exc}") from exc
    return {name: values[name] for name in fields if name in values}


def environment_variable(field: str) -> str:
    """The environment variable of a settings field (``judge_offsets``:
    ``STREAM_JUDGE_OFFSETS``)."""
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()
