"""The routing record and the tier order per class."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk

from langchain_stream.judge import Complexity
from langchain_stream.routing import FINAL_KEYS, RoutingRecord, TierAttempt, candidate_tiers


def test_tier_order_follows_the_design() -> None:
    everything = ["local", "hpc", "cloud"]
    assert candidate_tiers(Complexity.LOW, everything) == ["local", "hpc", "cloud"]
    assert candidate_tiers(Complexity.MEDIUM, everything) == ["hpc", "cloud", "local"]
    assert candidate_tiers(Complexity.HIGH, everything) == ["cloud", "hpc", "local"]
    assert candidate_tiers(Complexity.HIGH, ["local"]) == ["local"]


def test_first_and_final_parts_merge_into_the_whole_record() -> None:
    record = RoutingRecord(
        tier="local",
        model="m",
        complexity=Complexity.LOW,
        judge_ms=0.1,
        ttft_ms=12.0,
        tiers_tried=[TierAttempt(tier="local")],
        usage={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        duration_ms=40.0,
        tokens_per_s=100.0,
    )
    first, final = record.first_chunk_metadata(), record.final_chunk_metadata()
    assert not set(first) & set(final)
    assert set(final) <= FINAL_KEYS
    merged = AIMessageChunk(content="a", response_metadata={"routing": first}) + AIMessageChunk(
        content="b", response_metadata={"routing": final}
    )
    assert merged.response_metadata["routing"] == record.model_dump(mode="json", exclude_none=True)
