"""Time as a parameter: the manual clock, the default clock, and the pytest fixture."""

from __future__ import annotations

import time

import pytest

from seawall import ClientRateLimiter, SystemClock, TokenBucket, TokenBucketConfig
from seawall.testing import ManualClock, get_default_clock, use_clock


def test_manual_clock_starts_at_system_time_and_moves_only_when_told() -> None:
    before = time.time()
    clock = ManualClock()
    assert before - 1 <= clock.now() <= time.time() + 1
    reading = clock.now()
    assert clock.now() == reading
    clock.advance(1.5)
    assert clock.now() == pytest.approx(reading + 1.5, abs=1e-6)
    clock.set(100.0)
    assert clock.now() == 100.0
    assert ManualClock(start=7.25).now() == 7.25


def test_system_clock_reads_epoch_seconds() -> None:
    assert SystemClock().now() == pytest.approx(time.time(), abs=1.0)


def test_use_clock_reaches_objects_built_before_it() -> None:
    limiter = ClientRateLimiter(TokenBucketConfig(1, 1.0, 1))
    assert limiter.try_consume("a")
    with use_clock(ManualClock()) as clock:
        assert clock is not None
        assert not limiter.try_consume("a")
        clock.advance(1.0)
        assert limiter.try_consume("a")
        assert not limiter.try_consume("a")
    assert get_default_clock() is None


def test_use_clock_nests_and_restores() -> None:
    outer = ManualClock()
    inner = ManualClock(start=outer.now() + 100)
    bucket = TokenBucket(TokenBucketConfig(10, 1.0, 0), clock=None)
    with use_clock(outer):
        with use_clock(inner):
            assert get_default_clock().now() == inner.now()  # type: ignore[union-attr]
        assert get_default_clock().now() == outer.now()  # type: ignore[union-attr]
        outer.advance(3.0)
        assert 2.9 <= bucket.peek_sync() <= 3.0  # built by the system clock, just after outer
    assert get_default_clock() is None


def test_explicit_clock_wins_over_the_default() -> None:
    mine = ManualClock()
    bucket = TokenBucket(TokenBucketConfig(1, 1.0, 1), clock=mine)
    with use_clock(ManualClock()) as other:
        assert bucket.try_consume()
        assert other is not None
        other.advance(10)
        assert not bucket.try_consume()
    mine.advance(1)
    assert bucket.try_consume()


def test_any_object_with_now_or_callable_is_a_clock() -> None:
    readings = iter([100.0, 100.0, 100.5, 101.0])
    bucket = TokenBucket(TokenBucketConfig(1, 1.0, 1), clock=lambda: next(readings))
    assert bucket.try_consume()
    assert not bucket.try_consume()
    assert bucket.try_consume()  # at 101.0

    class Clock:
        def now(self) -> float:
            return 5.0

    assert TokenBucket(TokenBucketConfig(1, 1.0, 1), clock=Clock()).try_consume()


def test_seawall_clock_fixture_is_the_default(seawall_clock: ManualClock) -> None:
    """The fixture comes from the pytest11 entry point, as it would in a user's project."""
    assert get_default_clock() is not None
    limiter = ClientRateLimiter(TokenBucketConfig(2, 0.5, 2))
    assert limiter.try_consume("k", 2)
    assert not limiter.try_consume("k")
    seawall_clock.advance(2)
    assert limiter.try_consume("k")


def test_module_level_singleton_obeys_the_fixture(seawall_clock: ManualClock) -> None:
    from seawall.compat.snowflake import client_rate_limiter

    client_id = "test-module-level-singleton"
    assert client_rate_limiter.try_consume(client_id, 50)  # starts at half capacity
    assert not client_rate_limiter.try_consume(client_id)
    seawall_clock.advance(0.1)  # exactly one token at 10/s
    assert client_rate_limiter.try_consume(client_id)
    assert not client_rate_limiter.try_consume(client_id)
