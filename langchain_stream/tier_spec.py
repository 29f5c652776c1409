"""Tiers as configuration: what each tier is, what it can do and what data it may receive.

A deployment lists its tiers in the settings' ``[[tiers]]`` (docs/tiers.md); with none listed,
the three default tiers (``local``, ``hpc``, ``cloud``) are derived from the flat settings
exactly as before. The router orders them per request with
:func:`langchain_stream.policies.decide.order_tiers`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from langchain_stream.errors import ConfigurationError

if TYPE_CHECKING:
    from langchain_stream.config import Settings

TierName = str
"""A tier's name: also the server's model id ``stream-<name>``."""
Kind = Literal["llama_cpp", "openai", "hpc"]
Level = Literal["LOW", "MEDIUM", "HIGH"]
PrivacyClass = Literal["institutional", "external"]
Capability = Literal["tools", "structured_output", "vision"]

KINDS: tuple[str, ...] = ("llama_cpp", "openai", "hpc")
LEVEL_RANK: dict[str, int] = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}
DEFAULT_TIER_NAMES: tuple[TierName, ...] = ("local", "hpc", "cloud")
# Names the router's graph or the server already use for something else.
RESERVED_NAMES = frozenset({"auto", "compress", "judge", "route", "fallback"})
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
NAME_MAX_LENGTH = 16  # the ledger's and audit log's tier column


class TierCost(BaseModel):
    """Price of a tier in US dollars per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)

    @property
    def blended(self) -> float:
        """What routing compares: input and output price together."""
        return self.input + self.output

    def usd(self, input_tokens: int, output_tokens: int) -> float:
        """What that usage costs on this tier."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


class TierSpec(BaseModel):
    """One tier: its chat model and what the router needs to know to route to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: TierName = Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)
    """Unique name; the server serves the tier as ``stream-<name>``."""
    kind: Kind
    """``llama_cpp`` in this process, ``openai`` for any OpenAI-compatible server, ``hpc`` for
    Globus Compute and the relay."""
    model: str | None = None
    """GGUF path (``llama_cpp``; unset: the embedded model), served model name (``openai``),
    or the HPC backend's model (``hpc``; unset: the endpoint's default)."""
    projector: str | None = None
    """The model's vision projector (mmproj) GGUF, with which llama.cpp reads images
    (``llama_cpp``; ``hpc``: its path on the compute node, for an endpoint running llama.cpp).
    Declare ``vision`` in ``capabilities`` too, so images are routed to the tier."""
    base_url: str | None = None
    """OpenAI-compatible base URL (``openai``; unset: OpenAI itself)."""
    api_key: SecretStr | None = None
    """API key of that server (``openai``)."""
    endpoint_id: str | None = None
    """Globus Compute endpoint (``hpc``; unset: ``STREAM_HPC_ENDPOINT_ID``; ``local`` runs
    one on this machine)."""
    level: Level = "LOW"
    """The highest judged complexity the tier should serve."""
    privacy: PrivacyClass = "institutional"
    """``institutional``: may receive sensitive data; ``external``: may not."""
    capabilities: frozenset[Capability] | None = None
    """What the tier's model supports; unset means not declared, and routing then assumes
    tools and structured output but not images: most models read text only, and an image
    sent to one would be lost."""
    context_window: int | None = Field(default=None, ge=256)
    """Tokens of the model's context window; unset: what the model reports."""
    cost_per_million_tokens: TierCost | None = None
    """Price per million tokens; unset: free for ``institutional`` tiers, the settings'
    ``cloud_prices`` for ``external`` ones."""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            reserved = ", ".join(sorted(RESERVED_NAMES))
            raise ValueError(f"the name {value!r} is reserved ({reserved})")
        return value

    @field_validator("capabilities", mode="before")
    @classmethod
    def _capability_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # the environment or a one-word TOML value
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _projector_needs_llama_cpp(self) -> TierSpec:
        if self.projector is not None and self.kind == "openai":
            raise ValueError(
                "projector is for llama_cpp (and hpc) tiers; an openai server has its own"
            )
        return self

    @property
    def rank(self) -> int:
        """The level as a number: LOW 0, MEDIUM 1, HIGH 2."""
        return LEVEL_RANK[self.level]

    @property
    def cost(self) -> float:
        """The blended price routing compares (0 when not declared)."""
        return self.cost_per_million_tokens.blended if self.cost_per_million_tokens else 0.0

    def can(self, capability: Capability) -> bool:
        """Whether the tier serves requests that need ``capability`` (``vision`` only when
        declared)."""
        if self.capabilities is None:
            return capability != "vision"
        return capability in self.capabilities

    def describe(self) -> dict[str, Any]:
        """What ``stream tiers`` prints (never the API key)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "base_url": self.base_url,
            "projector": self.projector,
            "level": self.level,
            "privacy": self.privacy,
            "capabilities": sorted(self.capabilities) if self.capabilities is not None else None,
            "context_window": self.context_window,
            "cost_per_million_tokens": (
                self.cost_per_million_tokens.model_dump() if self.cost_per_million_tokens else None
            ),
        }


def parse_tier_specs(entries: Iterable[Any]) -> list[TierSpec]:
    """Validate a ``[[tiers]]`` list.

    Raises:
        ConfigurationError: an entry is invalid (naming it and what is wrong) or two entries
            share a name.
    """
    specs: list[TierSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        if isinstance(entry, TierSpec):
            spec = entry
        else:
            name = entry.get("name") if isinstance(entry, Mapping) else None
            label = f"[[tiers]] entry {index}" + (f" ({name!r})" if name else "")
            if not isinstance(entry, Mapping):
                raise ConfigurationError(f"{label} must be a table, not {type(entry).__name__}")
            try:
                spec = TierSpec.model_validate(entry)
            except ValidationError as exc:
                raise ConfigurationError(f"{label}: {_problems(exc)}") from None
        if spec.name in seen:
            raise ConfigurationError(f"[[tiers]] entry {index}: duplicate name {spec.name!r}")
        seen.add(spec.name)
        specs.append(spec)
    return specs


def _problems(exc: ValidationError) -> str:
    """Pydantic's errors as one line, without its documentation links or input echoes."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "entry"
        message = str(error.get("ctx", {}).get("error") or error["msg"])
        if error["type"] == "literal_error" and error["loc"][:1] == ("kind",):
            message = f"unknown kind (known: {', '.join(KINDS)})"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def default_tier_specs(settings: Settings, *, every: bool = False) -> list[TierSpec]:
    """The three default tiers, from the flat settings: ``local`` (always), ``hpc`` when an
    endpoint is set, ``cloud`` when a cloud model is set (``every``: all three, for tiers
    given to a router as chat models).

    What each can do is declared: tools and structured output on all three; images
    (``vision``) never on the local tier, whose embedded model reads text only, and on the
    HPC and cloud tiers as ``hpc_vision`` and ``cloud_vision`` say (docs/tiers.md#images).
    """
    text: set[Capability] = {"tools", "structured_output"}
    specs = [
        TierSpec(
            name="local",
            kind="llama_cpp",
            model=settings.local_model,
            level="LOW",
            capabilities=frozenset(text),
        ),
    ]
    if settings.hpc_endpoint_id or every:
        specs.append(
            TierSpec(
                name="hpc",
                kind="hpc",
                model=settings.hpc_model,
                endpoint_id=settings.hpc_endpoint_id,
                level="MEDIUM",
                capabilities=frozenset(text | ({"vision"} if settings.hpc_vision else set())),
            )
        )
    if settings.cloud_model or every:
        specs.append(
            TierSpec(
                name="cloud",
                kind="openai",
                model=settings.cloud_model,
                base_url=settings.cloud_base_url,
                api_key=settings.cloud_api_key,
                level="HIGH",
                privacy="external",
                capabilities=frozenset(text | ({"vision"} if settings.cloud_vision else set())),
            )
        )
    return specs


def specs_for(names: Sequence[str], specs: Sequence[TierSpec]) -> list[TierSpec]:
    """The specs of ``names``, in that order; a name without a spec (a default tier given as a
    model) gets the default tier's spec."""
    by_name = {spec.name: spec for spec in specs}
    return [by_name.get(name) or _default_spec(name) for name in names]


_TEXT: frozenset[Capability] = frozenset({"tools", "structured_output"})
_DEFAULT_SPECS = {
    # As in `default_tier_specs` with the default settings: the local model reads text only,
    # the HPC tier's model is not taken to read images unless the settings say so.
    "local": TierSpec(name="local", kind="llama_cpp", level="LOW", capabilities=_TEXT),
    "hpc": TierSpec(name="hpc", kind="hpc", level="MEDIUM", capabilities=_TEXT),
    "cloud": TierSpec(name="cloud", kind="openai", level="HIGH", privacy="external"),
}


def _default_spec(name: str) -> TierSpec:
    if name not in _DEFAULT_SPECS:
        raise ConfigurationError(f"the tier {name!r} has no [[tiers]] entry")
    return _DEFAULT_SPECS[name]
