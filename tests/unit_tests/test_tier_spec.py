"""Tiers as configuration: the ``[[tiers]]`` list, its validation and the default tiers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_stream.config import Settings, get_settings
from langchain_stream.errors import ConfigurationError
from langchain_stream.tier_spec import TierSpec, default_tier_specs, parse_tier_specs

TOML = """
judge = "keyword"

[[tiers]]
name = "laptop"
kind = "llama_cpp"
level = "LOW"
privacy = "institutional"
capabilities = ["tools", "structured_output"]

[[tiers]]
name = "gpu-box"
kind = "openai"
base_url = "http://gpu-box.internal:8000/v1"
model = "qwen2.5-14b-instruct"
api_key = "sk-gpu"
level = "MEDIUM"
context_window = 16384
cost_per_million_tokens = { input = 0.0, output = 0.0 }

[[tiers]]
name = "cloud"
kind = "openai"
model = "gpt-4o"
level = "HIGH"
privacy = "external"
capabilities = ["tools", "structured_output", "vision"]
cost_per_million_tokens = { input = 2.5, output = 10.0 }
"""


def test_tiers_load_from_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stream.toml"
    path.write_text(TOML)
    monkeypatch.setenv("STREAM_CONFIG", str(path))
    settings = get_settings()
    assert settings.configured_tiers == ["laptop", "gpu-box", "cloud"]
    laptop, gpu, cloud = settings.tier_specs
    assert (laptop.kind, laptop.level, laptop.privacy) == ("llama_cpp", "LOW", "institutional")
    assert laptop.capabilities == {"tools", "structured_output"}
    assert gpu.capabilities is None  # not declared
    assert gpu.api_key is not None and gpu.api_key.get_secret_value() == "sk-gpu"
    assert gpu.context_window == 16384 and gpu.cost == 0.0
    assert cloud.cost_per_million_tokens is not None
    assert cloud.cost_per_million_tokens.usd(1_000_000, 100_000) == pytest.approx(3.5)
    assert "sk-gpu" not in repr(gpu) and "sk-gpu" not in str(gpu.describe())


def test_the_same_through_settings_arguments() -> None:
    settings = Settings(tiers=[{"name": "a", "kind": "llama_cpp"}, TierSpec(name="b", kind="hpc")])
    assert settings.configured_tiers == ["a", "b"]
    assert settings.tier_specs[1].level == "LOW"  # the default level


def test_without_tiers_the_three_default_tiers_come_from_the_flat_settings() -> None:
    assert Settings().configured_tiers == ["local"]
    settings = Settings(hpc_endpoint_id="local", cloud_model="gpt-4o-mini", cloud_api_key="k")
    local, hpc, cloud = settings.tier_specs
    assert [(s.name, s.kind, s.level, s.privacy) for s in settings.tier_specs] == [
        ("local", "llama_cpp", "LOW", "institutional"),
        ("hpc", "hpc", "MEDIUM", "institutional"),
        ("cloud", "openai", "HIGH", "external"),
    ]
    assert hpc.endpoint_id == "local" and cloud.model == "gpt-4o-mini"
    # Text on all three; images on the cloud tier only (hpc_vision is off by default)
    assert local.capabilities == hpc.capabilities == {"tools", "structured_output"}
    assert cloud.capabilities == {"tools", "structured_output", "vision"}


def test_which_default_tiers_read_images_is_a_setting() -> None:
    settings = Settings(
        hpc_endpoint_id="local", cloud_model="m", hpc_vision=True, cloud_vision=False
    )
    local, hpc, cloud = settings.tier_specs
    assert (local.can("vision"), hpc.can("vision"), cloud.can("vision")) == (False, True, False)
    # every=True: the tiers a router is given as chat models are described by the settings too
    assert [s.name for s in default_tier_specs(Settings(), every=True)] == ["local", "hpc", "cloud"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"name": "gpu", "kind": "vllm"}], r"entry 1 \('gpu'\): kind: unknown kind \(known: "),
        (
            [{"name": "a", "kind": "hpc"}, {"name": "a", "kind": "openai"}],
            r"entry 2: duplicate name 'a'",
        ),
        ([{"name": "x", "kind": "hpc", "level": "EXTREME"}], r"entry 1 \('x'\): level: "),
        ([{"name": "x", "kind": "hpc", "capabilities": ["telepathy"]}], r"capabilities\.0"),
        ([{"name": "x", "kind": "hpc", "colour": "red"}], r"colour: unknown key"),
        ([{"name": "auto", "kind": "hpc"}], r"the name 'auto' is reserved"),
        ([{"name": "has space", "kind": "hpc"}], r"entry 1 \('has space'\): name: "),
        ([{"kind": "hpc"}], r"entry 1: name: "),
        (["laptop"], r"entry 1 must be a table, not str"),
        (
            [{"name": "x", "kind": "openai", "cost_per_million_tokens": {"input": -1}}],
            r"cost_per_million_tokens\.input",
        ),
    ],
)
def test_a_bad_entry_is_a_configuration_error_naming_it(entries: list, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings(tiers=entries)
    with pytest.raises(ConfigurationError, match=message):
        parse_tier_specs(entries)


def test_a_bad_entry_in_the_file_fails_get_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stream.toml"
    path.write_text('[[tiers]]\nname = "gpu"\nkind = "vllm"\n')
    monkeypatch.setenv("STREAM_CONFIG", str(path))
    with pytest.raises(ConfigurationError, match=r"'gpu'.*unknown kind"):
        get_settings()


def test_tiers_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_TIERS", '[{"name": "box", "kind": "openai", "model": "m"}]')
    assert Settings().configured_tiers == ["box"]


@pytest.mark.loopback
def test_stream_tiers_json_says_which_tiers_are_reachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from typer.testing import CliRunner

    from langchain_stream.cli import app

    with socket.socket() as sock:  # a port nothing listens on once the block ends
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    path = tmp_path / "stream.toml"
    path.write_text(
        '[[tiers]]\nname = "laptop"\nkind = "llama_cpp"\ncapabilities = ["tools"]\n'
        f'[[tiers]]\nname = "box"\nkind = "openai"\nmodel = "m"\nlevel = "HIGH"\n'
        f'base_url = "http://127.0.0.1:{closed}/v1"\napi_key = "sk-secret"\n'
        '[[tiers]]\nname = "gone"\nkind = "llama_cpp"\nmodel = "/nonexistent/model.gguf"\n'
    )
    monkeypatch.setenv("STREAM_CONFIG", str(path))
    get_settings.cache_clear()
    done = CliRunner().invoke(app, ["tiers", "--json"])
    assert done.exit_code == 0, done.output
    tiers = {t["name"]: t for t in json.loads(done.stdout)["tiers"]}
    assert list(tiers) == ["laptop", "box", "gone"]
    laptop, box, gone = tiers.values()
    assert {k: laptop[k] for k in ("kind", "level", "privacy", "capabilities", "reachable")} == {
        "kind": "llama_cpp",
        "level": "LOW",
        "privacy": "institutional",
        "capabilities": ["tools"],
        "reachable": True,
    }
    assert box["reachable"] is False and "unreachable" in box["detail"]
    assert gone["reachable"] is False and "/nonexistent/model.gguf" in gone["detail"]
    assert "sk-secret" not in done.stdout


def test_the_graph_has_a_node_per_configured_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_stream.graph import build_router_graph, tier_node_names

    monkeypatch.setenv("STREAM_TIERS", '[{"name": "laptop", "kind": "llama_cpp"}]')
    get_settings.cache_clear()
    assert tier_node_names() == ["laptop", "local", "hpc", "cloud"]
    nodes = build_router_graph().compile().get_graph().nodes
    assert {"laptop", "local", "hpc", "cloud", "route", "fallback"} <= set(nodes)
    assert "gpu-box" in build_router_graph(["gpu-box"]).compile().get_graph().nodes


def test_a_projector_belongs_to_llama_cpp_and_hpc_tiers() -> None:
    local = TierSpec(name="eyes", kind="llama_cpp", projector="/models/mmproj.gguf")
    assert local.projector == "/models/mmproj.gguf"
    assert TierSpec(name="hpc-eyes", kind="hpc", projector="/node/mmproj.gguf").projector
    with pytest.raises(ConfigurationError, match="projector is for llama_cpp"):
        parse_tier_specs([{"name": "api", "kind": "openai", "model": "m", "projector": "/x.gguf"}])
