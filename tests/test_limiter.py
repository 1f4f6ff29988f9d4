"""seawall.Limiter: every algorithm, limit strings, tiers, overrides, stats."""

from __future__ import annotations

import asyncio
import inspect
import math
from typing import Any

import pytest

from seawall import ALGORITHMS, Decision, Limit, Limiter
from seawall.testing import ManualClock


def aligned_clock() -> ManualClock:
    """A manual clock at a whole minute, so that epoch-aligned windows start with the test."""
    return ManualClock(start=1_800_000_000.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_admits_the_limit_then_denies(algorithm: str) -> None:
    clock = aligned_clock()
    limiter = Limiter("5/second", algorithm=algorithm, clock=clock)
    assert [limiter.allow("k") for _ in range(6)] == [True] * 5 + [False]
    d = limiter.hit("k")
    assert isinstance(d, Decision)
    assert (d.allowed, d.limited, bool(d), d.limit, d.remaining) == (False, True, False, 5, 0)
    # The sliding counter waits for the previous second's weight to fade: up to two seconds.
    assert 0 < d.retry_after <= (2.0 if algorithm == "sliding_window_counter" else 1.0)
    assert d.window == 1.0
    clock.advance(d.retry_after)
    assert limiter.allow("k")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_second_later_the_key_is_back(algorithm: str) -> None:
    clock = aligned_clock()
    limiter = Limiter("3/second", algorithm=algorithm, clock=clock)
    assert limiter.hit("k", cost=3).allowed
    clock.advance(2.0)  # two windows: even the sliding counter's previous one weighs nothing
    assert limiter.hit("k", cost=3).allowed


def test_algorithms_differ_where_they_should() -> None:
    clock = aligned_clock()
    fixed = Limiter("2/second", algorithm="fixed_window", clock=clock)
    log = Limiter("2/second", algorithm="sliding_window_log", clock=clock)
    clock.advance(0.9)
    assert fixed.hit("k", 2).allowed and log.hit("k", 2).allowed
    clock.advance(0.2)  # a new fixed window; the sliding log still sees both
    assert fixed.allow("k")
    assert not log.allow("k")


def test_limit_strings_as_limits_users_write_them() -> None:
    limiter = Limiter("10/second; 100 per minute;5/2 hours ; 1000/day", clock=aligned_clock())
    assert [str(limit) for limit in limiter.limits] == [
        "10/second",
        "100/minute",
        "5/2 hours",
        "1000/day",
    ]
    assert [limit.period for limit in limiter.limits] == [1.0, 60.0, 7200.0, 86400.0]
    assert limiter.hit("k", 5).allowed
    d = limiter.hit("k")
    assert not d.allowed and d.limit == 5 and d.window == 7200.0


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("10/fortnight", "'10/fortnight'"),
        ("ten/second", "'ten/second'"),
        ("10/second; 0/day", "'0/day'"),
        ("", "no limit"),
    ],
)
def test_bad_limit_strings_quote_the_bad_part(text: str, quoted: str) -> None:
    with pytest.raises(ValueError, match=quoted):
        Limiter(text)


def test_limit_objects_choose_algorithm_and_burst_per_limit() -> None:
    clock = aligned_clock()
    burst = Limit("1/second", algorithm="token_bucket", burst=5)
    limiter = Limiter([burst, Limit("100/day", algorithm="fixed_window")], clock=clock)
    assert repr(burst) == "Limit('1/second', algorithm='token_bucket', burst=5)"
    assert Limit("1/second", "gcra") == Limit("1 per second")
    assert limiter.hit("k", 5).allowed
    assert not limiter.allow("k")
    clock.advance(1)
    assert limiter.allow("k")
    with pytest.raises(ValueError, match="burst"):
        Limit("1/second", algorithm="fixed_window", burst=2)
    with pytest.raises(ValueError, match="algorithm"):
        Limit("1/second", algorithm="fast")


def test_cost_is_all_or_nothing_and_bounded() -> None:
    limiter = Limiter("5/second", clock=aligned_clock())
    assert limiter.hit("k", 3).allowed
    assert not limiter.hit("k", 3).allowed
    assert limiter.hit("k", 2).allowed
    with pytest.raises(ValueError, match=r"cost must be between 1 and the smallest limit \(5\)"):
        limiter.hit("k", 6)
    with pytest.raises(ValueError, match="cost"):
        limiter.hit("k", 0)


def test_test_consumes_nothing_and_creates_no_key() -> None:
    limiter = Limiter("1/minute", clock=aligned_clock())
    for _ in range(5):
        assert limiter.test("k").allowed
    assert len(limiter) == 0
    assert limiter.hit("k").allowed
    assert not limiter.test("k").allowed


def test_reset_overrides_and_stats() -> None:
    clock = aligned_clock()
    limiter = Limiter("2/minute", clock=clock)
    assert limiter.hit("k", 2).allowed
    assert not limiter.allow("k")
    assert limiter.key_stats("k") == {"hits": 2, "limited": 1, "last_limited": clock.now()}
    assert limiter.reset("k")
    assert not limiter.reset("nobody")
    assert limiter.allow("k")
    limiter.set_override("vip", "100/minute")
    assert limiter.hit("vip", 100).allowed
    limiter.clear_override("vip")
    assert limiter.key_stats("unknown") is None
    stats = limiter.stats()
    assert stats["keys"] == 2 and stats["hits"] == 2 and stats["limited"] == 0  # k was reset


def test_cleanup_is_lossless() -> None:
    clock = aligned_clock()
    limiter = Limiter("1/second; 3/minute", algorithm="sliding_window_log", clock=clock)
    assert limiter.allow("a")
    clock.advance(30)
    assert limiter.allow("b")
    assert limiter.cleanup() == 0
    clock.advance(31)  # a's minute is over; b's is not
    assert limiter.cleanup() == 1
    assert limiter.key_stats("a") is None and limiter.key_stats("b") is not None


def test_async_forms_are_coroutines_that_answer_at_once() -> None:
    limiter = Limiter("1/second", clock=aligned_clock())
    for name in ("ahit", "aallow", "atest", "areset"):
        assert inspect.iscoroutinefunction(getattr(limiter, name))

    async def scenario() -> None:
        assert (await limiter.atest("k")).allowed
        assert await limiter.aallow("k")
        assert not (await limiter.ahit("k")).allowed
        assert await limiter.areset("k")

    asyncio.run(scenario())


def test_a_cost_no_limit_can_ever_admit_reports_never() -> None:
    limiter = Limiter("1/day", algorithm="fixed_window", clock=aligned_clock())
    assert limiter.allow("k")
    d = limiter.hit("k")
    assert not d.allowed and 0 < d.retry_after <= 86400


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"limits": 10}, TypeError),
        ({"limits": ["10/second", 3]}, TypeError),
        ({"limits": "1/second", "max_keys": 0}, ValueError),
        ({"limits": "1/second", "algorithm": "nope"}, ValueError),
        ({"limits": "1/second", "clock": 5}, TypeError),
    ],
)
def test_bad_construction(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Limiter(**kwargs)


def test_keys_must_be_str() -> None:
    limiter = Limiter("1/second")
    with pytest.raises(TypeError, match="key"):
        limiter.hit(42)  # type: ignore[arg-type]


def test_decision_repr_and_infinity() -> None:
    d = Limiter("1/second", clock=aligned_clock()).hit("k")
    assert repr(d).startswith("Decision(allowed=True, limit=1, remaining=0")
    assert math.isfinite(d.reset_after)


def test_algorithms_are_the_documented_six() -> None:
    assert ALGORITHMS == (
        "gcra",
        "token_bucket",
        "leaky_bucket",
        "fixed_window",
        "sliding_window_log",
        "sliding_window_counter",
    )
    for name in ALGORITHMS:
        assert Limit("1/second", name).algorithm == name
