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


@settings(max_examples=300, deadline=None)
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    count=st.integers(1, 6),
    steps=st.lists(
        st.tuples(st.integers(-3000, 3000), st.integers(1, 3), st.booleans()),
        min_size=1,
        max_size=60,
    ),
)
def test_cleanup_drops_only_keys_with_their_whole_limit_left(
    algorithm: str, count: int, steps: list[tuple[int, int, bool]]
) -> None:
    """Issue 11 #24, for every algorithm, with a clock that wanders back and forth: a key that
    ``cleanup()`` drops had its whole limit left (it was fresh), and a denial never says that
    the key is fresh (``reset_after`` 0) or that it may retry now."""
    clock = ManualClock(start=1_800_000_000.0)
    limiter = Limiter(f"{count}/2 seconds", algorithm=algorithm, clock=clock)
    for gap_ms, cost, clean in steps:
        clock.set(clock.now() + gap_ms / 1000)
        if clean:
            left = limiter.test("k", 1).remaining
            if limiter.cleanup():
                assert left == count, f"dropped with {left} of {count} left"
        if cost > count:
            continue
        d = limiter.hit("k", cost)
        if not d.allowed:
            assert d.retry_after > 0 and d.reset_after > 0


@settings(max_examples=300, deadline=None)
@given(
    limit=st.one_of(st.just(2**64 - 1), st.integers(2**62, 2**64 - 1)),
    steps=st.lists(
        st.tuples(st.integers(0, 12), st.integers(1, 2**64 - 1)), min_size=1, max_size=30
    ),
)
def test_sliding_counter_is_exact_for_counts_near_two_to_the_64(
    limit: int, steps: list[tuple[int, int]]
) -> None:
    """Issue 11 #25: the reference model in Python ints (no overflow) for the weighted estimate
    ``previous x (window - elapsed) + current x window <= limit x window``."""
    clock = ManualClock(start=0.0)  # eighths of a second are exact from 0
    limiter = Limiter(f"{limit}/second", algorithm="sliding_window_counter", clock=clock)
    w = 10**9
    counts: dict[int, int] = {}
    now = 0
    for eighths, cost in steps:
        now += eighths * w // 8
        clock.set(now / 1e9)
        if cost > limit:
            continue
        idx, elapsed = divmod(now, w)
        prev, cur = counts.get(idx - 1, 0), counts.get(idx, 0)
        expected = prev * (w - elapsed) + (cur + cost) * w <= limit * w
        assert limiter.allow("k", cost) == expected
        if expected:
            counts[idx] = cur + cost
