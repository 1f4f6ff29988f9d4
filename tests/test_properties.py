"""Hypothesis: seawall's bucket admits exactly what an exact-fraction reference model admits."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import TokenBucket, TokenBucketConfig
from seawall.testing import ManualClock


class ReferenceBucket:
    """Seed 000's algorithm with exact fractions instead of floats."""

    def __init__(self, capacity: int, rate: Fraction, initial: int, now: Fraction) -> None:
        self.capacity, self.rate = capacity, rate
        self.tokens = Fraction(min(initial, capacity))
        self.last = now

    def consume(self, tokens: int, now: Fraction) -> bool:
        self.tokens = min(Fraction(self.capacity), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= tokens:
            self.tokens -= tokens
            return True
        return False


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 40),
    rate_num=st.integers(0, 50),
    rate_den=st.sampled_from([1, 2, 3, 4, 7, 10]),
    initial=st.integers(0, 50),
    steps=st.lists(st.tuples(st.integers(0, 3_000), st.integers(1, 8)), min_size=1, max_size=80),
)
def test_bucket_matches_reference(
    capacity: int,
    rate_num: int,
    rate_den: int,
    initial: int,
    steps: list[tuple[int, int]],
) -> None:
    rate = Fraction(rate_num, rate_den)
    clock = ManualClock(start=1_000_000.0)
    bucket = TokenBucket(TokenBucketConfig(capacity, rate_num / rate_den, initial), clock=clock)
    model = ReferenceBucket(capacity, rate, initial, Fraction(0))
    elapsed_ms = 0
    for gap_ms, cost in steps:
        clock.advance(gap_ms / 1000)
        elapsed_ms += gap_ms
        now = Fraction(elapsed_ms, 1000)
        if cost > capacity:
            continue
        assert bucket.try_consume(cost) == model.consume(cost, now)
        assert abs(Fraction(bucket.peek_sync()) - model.tokens) < Fraction(1, 10**9)
