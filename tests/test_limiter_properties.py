"""Hypothesis: a Limiter's tiers decide all or nothing.

The reference is one single-limit Limiter per tier (each algorithm is proven against its own model
by the Rust property tests): a request is admitted by the tiered limiter exactly when every tier
would admit it, and then every tier counts it; when denied, no tier counts it.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import ALGORITHMS, Limit, Limiter
from seawall.testing import ManualClock

limits = st.tuples(
    st.integers(1, 8),
    st.sampled_from(["second", "2 seconds", "5 seconds", "minute"]),
    st.sampled_from(ALGORITHMS),
)


@settings(max_examples=300, deadline=None)
@given(
    tiers=st.lists(limits, min_size=2, max_size=4),
    steps=st.lists(
        st.tuples(st.integers(0, 1500), st.integers(1, 4), st.sampled_from(["a", "b"])),
        min_size=1,
        max_size=60,
    ),
)
def test_tiers_decide_all_or_nothing(
    tiers: list[tuple[int, str, str]], steps: list[tuple[int, int, str]]
) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    spec = [Limit(f"{count}/{period}", algorithm) for count, period, algorithm in tiers]
    tiered = Limiter(spec, clock=clock)
    singles = [Limiter(limit, clock=clock) for limit in spec]
    smallest = min(count for count, _, _ in tiers)
    for gap_ms, cost, key in steps:
        clock.advance(gap_ms / 1000)
        if cost > smallest:
            continue
        each = [single.test(key, cost).allowed for single in singles]
        decision = tiered.hit(key, cost)
        assert decision.allowed == all(each)
        if decision.allowed:
            for single in singles:
                assert single.hit(key, cost).allowed
        else:
            assert decision.retry_after > 0
            longest = max(s.test(key, cost).retry_after for s in singles)
            assert decision.retry_after == longest
