"""Wrong credentials counted per client address in a moving window."""

from __future__ import annotations

import pytest

from langchain_stream.errors import ConfigurationError
from langchain_stream.failed_auth import FailedAuthCounter, FailedAuthLimit


@pytest.mark.parametrize(("failures", "window_s"), [(-1, 60), (3, 0)])
def test_an_impossible_limit_is_a_configuration_error(failures: int, window_s: int) -> None:
    with pytest.raises(ConfigurationError):
        FailedAuthLimit(failures=failures, window_s=window_s)


def test_a_bad_storage_uri_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="nowhere://"):
        FailedAuthCounter(FailedAuthLimit(), "nowhere://x")


async def test_an_address_is_refused_once_it_used_its_failures_and_others_are_not() -> None:
    counter = FailedAuthCounter(FailedAuthLimit(failures=3, window_s=60))
    for _ in range(3):
        assert await counter.retry_after("10.0.0.1") is None
        await counter.record_failure("10.0.0.1")
    wait = await counter.retry_after("10.0.0.1")
    assert wait is not None and 1.0 <= wait <= 60.0
    assert await counter.retry_after("10.0.0.2") is None


async def test_a_zero_limit_counts_nothing() -> None:
    limit = FailedAuthLimit(failures=0)
    counter = FailedAuthCounter(limit)
    assert not limit.enabled
    for _ in range(50):
        await counter.record_failure("10.0.0.1")
    assert await counter.retry_after("10.0.0.1") is None
