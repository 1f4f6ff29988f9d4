"""Seed 004's RateLimiterService: the seed's own tests, and the same admissions as its list of
timestamps per client."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall.compat.fastmcp_example import RateLimiterService
from seawall.testing import ManualClock


def test_rate_limiter_allows_within_limit() -> None:
    limiter = RateLimiterService(default_limit=3, default_window=10)
    assert limiter.check_and_record("client1")[0] is True
    assert limiter.check_and_record("client1")[0] is True
    assert limiter.check_and_record("client1")[0] is True
    assert limiter.check_and_record("client1")[0] is False


def test_rate_limiter_isolates_clients() -> None:
    limiter = RateLimiterService(default_limit=1, default_window=10)
    assert limiter.check_and_record("client1")[0] is True
    assert limiter.check_and_record("client1")[0] is False
    assert limiter.check_and_record("client2")[0] is True


def test_info_holds_remaining_reset_and_retry_after() -> None:
    clock = ManualClock(start=1000.0)
    limiter = RateLimiterService(default_limit=2, default_window=60, clock=clock)
    allowed, info = limiter.check_and_record("c")
    assert allowed and info == {
        "limit": 2,
        "window": 60,
        "remaining": 1,
        "reset_time": 1060.0,
        "retry_after": 0,
    }
    clock.advance(10)
    limiter.check_and_record("c")
    allowed, info = limiter.check_and_record("c")
    assert not allowed
    assert info["retry_after"] == 50  # the first entry leaves at 1060
    assert info["reset_time"] == 1070.0
    allowed, info = limiter.check_and_record("c", limit=20, window=5)
    assert allowed and info["limit"] == 20


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="default_limit"):
        RateLimiterService(default_limit=0)
    with pytest.raises(ValueError, match="default_window"):
        RateLimiterService(default_window=0)
    limiter = RateLimiterService()
    with pytest.raises(ValueError, match="limit"):
        limiter.check_and_record("c", limit=0)
    with pytest.raises(ValueError, match="window"):
        limiter.check_and_record("c", window=-1)
    with pytest.raises(TypeError):
        limiter.check_and_record(5)  # type: ignore[arg-type]


class SeedService:
    """Seed 004's algorithm: a list of timestamps per client, pruned by each call's window.

    Times are whole milliseconds here, so that the model is exact: the seed's float seconds would
    decide `now - t < window` at the boundary by rounding noise.
    """

    def __init__(self) -> None:
        self.log: dict[str, list[int]] = {}

    def check_and_record(self, client: str, limit: int, window_ms: int, now_ms: int) -> bool:
        kept = [t for t in self.log.get(client, []) if now_ms - t < window_ms]
        self.log[client] = kept
        if len(kept) >= limit:
            return False
        kept.append(now_ms)
        return True


@settings(max_examples=300, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.integers(0, 4000),  # ms since the previous call
            st.sampled_from(["a", "b"]),
            st.integers(1, 6),  # limit
            st.sampled_from([1, 2, 5, 10]),  # window, seconds
        ),
        min_size=1,
        max_size=80,
    )
)
def test_same_admissions_as_the_seed(calls: list[tuple[int, str, int, int]]) -> None:
    clock = ManualClock(start=5000.0)
    ours = RateLimiterService(clock=clock)
    seed = SeedService()
    elapsed_ms = 0
    for gap, client, limit, window in calls:
        clock.advance(gap / 1000)
        elapsed_ms += gap
        allowed, info = ours.check_and_record(client, limit, window)
        assert allowed == seed.check_and_record(client, limit, window * 1000, elapsed_ms)
        assert info["remaining"] == max(0, limit - len(seed.log[client]))
        if not allowed:
            oldest = seed.log[client][len(seed.log[client]) - limit]
            wait_ms = oldest + window * 1000 - elapsed_ms
            assert info["retry_after"] == math.ceil(wait_ms / 1000)
