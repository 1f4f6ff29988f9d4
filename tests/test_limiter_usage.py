"""``Limiter.usage(key)``: per limit, what is used and left now, without spending; memory and
Redis (``usage`` / ``ausage``), consistent with ``test(key)``."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer

from seawall import Limiter, RedisLimiter
from seawall.testing import ManualClock

T0 = 1_800_000_000.0
ALGORITHMS = ["sliding_window_log", "sliding_window_counter", "fixed_window", "gcra"]


def test_usage_after_hits_per_limit() -> None:
    clock = ManualClock(T0)
    limiter = Limiter("5/minute; 20/hour", algorithm="sliding_window_log", clock=clock)
    assert [u["used"] for u in limiter.usage("k")] == [0, 0]
    for _ in range(3):
        limiter.hit("k")
    usage = limiter.usage("k")
    assert [u["limit"] for u in usage] == ["5/minute", "20/hour"]
    assert [(u["used"], u["remaining"]) for u in usage] == [(3, 2), (3, 17)]
    assert usage[0]["reset_after"] == 60.0 and usage[0]["retry_after"] == 0.0
    # A minute on, the minute is fresh, the hour still holds the three.
    clock.advance(61)
    usage = limiter.usage("k")
    assert [(u["used"], u["remaining"]) for u in usage] == [(0, 5), (3, 17)]
    assert usage[1]["reset_after"] == pytest.approx(3600 - 61)


def test_usage_spends_nothing_and_creates_no_key() -> None:
    limiter = Limiter("2/minute", algorithm="fixed_window", clock=ManualClock(T0))
    for _ in range(10):
        limiter.usage("k")
    assert len(limiter) == 0
    assert limiter.hit("k").allowed and limiter.hit("k").allowed
    usage = limiter.usage("k")[0]
    assert (usage["used"], usage["remaining"]) == (2, 0)
    assert usage["retry_after"] == pytest.approx(limiter.test("k").retry_after)


def test_a_refused_request_is_used_by_no_window() -> None:
    limiter = Limiter("2/minute; 100/day", algorithm="sliding_window_log", clock=ManualClock(T0))
    for _ in range(5):
        limiter.hit("k")
    assert [u["used"] for u in limiter.usage("k")] == [2, 2]


@settings(max_examples=40, deadline=None)
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    steps=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 40)), max_size=25),
)
def test_usage_agrees_with_test(algorithm: str, steps: list[tuple[int, float]]) -> None:
    clock = ManualClock(T0)
    limiter = Limiter("4/minute; 10/hour", algorithm=algorithm, clock=clock)
    for hits, wait in steps:
        for _ in range(hits):
            limiter.hit("k")
        clock.advance(wait)
        usage = limiter.usage("k")
        decision = limiter.test("k")
        # test() reports the binding limit; every limit's own remaining is at least that.
        assert min(u["remaining"] for u in usage) == decision.remaining
        assert decision.allowed == all(u["remaining"] >= 1 for u in usage)
        for u, count in zip(usage, (4, 10), strict=True):
            assert u["used"] + u["remaining"] == count
            assert u["reset_after"] >= 0


def test_usage_checks_the_key() -> None:
    limiter = Limiter("1/second")
    with pytest.raises(TypeError, match="key"):
        limiter.usage(3)  # type: ignore[arg-type]


def test_redis_usage_matches_memory(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(T0)
    limits = "5/minute; 20/hour"
    redis = Limiter(
        limits,
        store=redis_url,
        key_prefix=redis_prefix,
        algorithm="sliding_window_log",
        clock=clock,
    )
    memory = Limiter(limits, algorithm="sliding_window_log", clock=clock)
    assert isinstance(redis, RedisLimiter)
    for _ in range(3):
        redis.hit("k")
        memory.hit("k")
    clock.advance(10)
    assert [(u["used"], u["remaining"]) for u in redis.usage("k")] == [(3, 2), (3, 17)]
    for r, m in zip(redis.usage("k"), memory.usage("k"), strict=True):
        assert r["limit"] == m["limit"]
        assert (r["used"], r["remaining"]) == (m["used"], m["remaining"])
        assert r["reset_after"] == pytest.approx(m["reset_after"], abs=1e-3)
    # usage spends nothing in Redis either.
    assert redis.test("k").remaining == 2
    assert [u["used"] for u in asyncio.run(redis.ausage("k"))] == [3, 3]
    assert [u["used"] for u in redis.usage("other")] == [0, 0]


def test_redis_usage_falls_back_to_local_when_redis_is_down(redis_server: RedisServer) -> None:
    url = redis_server.url
    clock = ManualClock(T0)
    local = Limiter("5/minute", store=url, on_error="local", clock=clock)
    strict = Limiter("5/minute", store=url, on_error="deny", clock=clock)
    local.hit("k")
    redis_server.kill()
    assert local.usage("k")[0]["used"] == 0  # the local fallback has seen nothing yet
    local.hit("k")  # decided locally now
    assert local.usage("k")[0]["used"] == 1
    with pytest.raises(OSError, match="unavailable"):
        strict.usage("k")
