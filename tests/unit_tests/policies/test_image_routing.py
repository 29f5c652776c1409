"""Where a request with images may go: tiers that read images, under the privacy rule.

These are the routing table of docs/tiers.md#images, row by row, through the router's own
``route`` step over the default tiers (no tier model is called).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from PIL import Image

from langchain_stream.config import Settings
from langchain_stream.errors import InvalidRequestError
from langchain_stream.graph import RouterContext, route
from langchain_stream.judge import Complexity
from langchain_stream.policies.engine import PolicyEngine
from langchain_stream.request import RouteRequest


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


PNG = png()
ASK = HumanMessage(
    [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "base64": base64.b64encode(PNG).decode(), "mime_type": "image/png"},
    ]
)
TIERS = ("local", "hpc", "cloud")


def routed(
    judged: Complexity = Complexity.LOW,
    *,
    messages: list[Any] | None = None,
    privacy: str = "standard",
    pin: str | None = None,
    names: tuple[str, ...] = TIERS,
    **settings: Any,
) -> tuple[list[str], dict[str, Any]]:
    """The candidate tiers and the routing record of one request."""
    engine = PolicyEngine(Settings(database_url="none", **settings))
    context = RouterContext(
        tiers={name: object() for name in names},  # type: ignore[misc]  # names only: not called
        policies=engine,
        request=RouteRequest(privacy=privacy, pin=pin),  # type: ignore[arg-type]
    )
    state = {"messages": messages or [ASK], "record": {"complexity": judged.value}}
    update = route(state, context)  # type: ignore[arg-type]
    return update["candidates"], update["record"]


def refusal(**arguments: Any) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        routed(**arguments)
    return str(caught.value)


def test_by_default_an_image_stays_off_the_cloud_and_the_error_names_the_settings() -> None:
    # standard privacy, unscannable_content="local", hpc_vision off: no tier may see it
    message = refusal()
    assert "only external tiers read them (cloud)" in message
    assert 'unscannable_content = "local"' in message and "hpc_vision = true" in message


def test_unscannable_content_cloud_lets_the_image_reach_the_cloud() -> None:
    candidates, record = routed(unscannable_content="cloud")
    assert candidates == ["cloud"]
    assert "capabilities: local lacks vision" in record["policies"]
    assert "capabilities: hpc lacks vision" in record["policies"]
    assert any(
        "rule unscannable_content=cloud: the cloud is allowed" in p for p in record["policies"]
    )


def test_institutional_privacy_never_sends_an_image_to_the_cloud() -> None:
    message = refusal(privacy="institutional", unscannable_content="cloud")
    assert "under privacy=institutional images never go to an external tier" in message
    candidates, record = routed(privacy="institutional", hpc_vision=True)
    assert candidates == ["hpc"]
    assert any("rule institutional: never to the cloud" in p for p in record["policies"])


@pytest.mark.parametrize(
    ("judged", "rule", "expected"),
    [
        (Complexity.LOW, "local", ["hpc"]),
        (Complexity.LOW, "cloud", ["hpc", "cloud"]),  # routed as MEDIUM: the HPC tier first
        (Complexity.MEDIUM, "cloud", ["hpc", "cloud"]),
        (Complexity.HIGH, "cloud", ["cloud", "hpc"]),
        (Complexity.HIGH, "local", ["hpc"]),
    ],
)
def test_with_a_seeing_hpc_tier(judged: Complexity, rule: str, expected: list[str]) -> None:
    candidates, _ = routed(judged, hpc_vision=True, unscannable_content=rule)
    assert candidates == expected


def test_a_question_about_an_image_is_at_least_medium() -> None:
    _, record = routed(Complexity.LOW, hpc_vision=True)
    assert record["complexity"] == "LOW"  # what the judge said of the words, kept as judged
    assert record["policies"][1] == "vision: images attached: routed as MEDIUM (judged LOW)"
    _, high = routed(Complexity.HIGH, hpc_vision=True)
    assert not any(p.startswith("vision:") for p in high["policies"])


def test_the_floor_is_a_setting() -> None:
    tiers = [
        {"name": "eyes", "kind": "llama_cpp", "level": "LOW", "capabilities": ["vision"]},
        {"name": "gpu", "kind": "openai", "level": "MEDIUM", "capabilities": ["vision"]},
    ]
    assert routed(names=("eyes", "gpu"), tiers=tiers)[0] == ["gpu", "eyes"]
    low = routed(names=("eyes", "gpu"), tiers=tiers, vision_min_complexity="LOW")
    assert low[0] == ["eyes", "gpu"]


def test_the_cloud_tier_can_be_declared_blind() -> None:
    message = refusal(unscannable_content="cloud", cloud_vision=False)
    assert "no configured tier reads images" in message
    assert "hpc_vision = true" in message and "cloud_vision = true" in message


def test_a_pin_to_a_tier_that_cannot_see_is_refused() -> None:
    message = refusal(pin="local", unscannable_content="cloud")
    assert "pinned to ('local') does not read them" in message
    assert routed(pin="cloud", unscannable_content="cloud")[0] == ["cloud"]


def test_configured_tiers_name_their_capability_in_the_error() -> None:
    tiers = [{"name": "laptop", "kind": "llama_cpp", "capabilities": ["tools"]}]
    message = refusal(names=("laptop",), tiers=tiers)
    assert 'declare capabilities = [..., "vision"] on a [[tiers]] entry' in message


def test_the_record_describes_each_image_never_its_bytes() -> None:
    _, record = routed(hpc_vision=True)
    image = {"source": "inline", "media_type": "image/png", "bytes": len(PNG)}
    assert record["images"] == [{**image, "width": 64, "height": 48}]
    assert record["policies"][0] == f"images: 1 (image/png, {len(PNG)} bytes, 64x48)"
    assert base64.b64encode(PNG).decode()[:40] not in json.dumps(record)


def test_a_bad_image_is_refused_before_any_routing() -> None:
    block = {
        "type": "image",
        "base64": base64.b64encode(PNG[:40]).decode(),
        "mime_type": "image/png",
    }
    broken = HumanMessage([block])
    message = refusal(messages=[broken], hpc_vision=True)
    assert message.startswith("messages[0].content[0]: the data is not an image")


def test_a_responses_api_image_block_is_refused_never_dropped() -> None:
    # Counted as an image (a text-only tier never gets it), then refused: no tier reads it.
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    block = {"type": "input_image", "image_url": data_url}
    message = refusal(messages=[HumanMessage([{"type": "text", "text": "What?"}, block])])
    assert message.startswith("messages[0].content[1]: 'input_image' is the OpenAI Responses")
    assert "'image_url' part" in message


def test_requests_without_images_route_as_before() -> None:
    candidates, record = routed(messages=[HumanMessage("hi")])
    assert candidates == ["local", "hpc", "cloud"]
    assert "images" not in record


def test_an_image_with_sensitive_text_stays_off_the_cloud_and_the_error_says_why() -> None:
    question = HumanMessage(
        [{"type": "text", "text": "Mail the answer to jane.doe@uni.edu"}, *ASK.content[1:]]
    )
    message = refusal(messages=[question], unscannable_content="cloud")
    assert "the routing policies removed them (privacy: sensitive data (email)" in message
