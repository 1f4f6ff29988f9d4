"""Seed 003's rate_limiter (3.1): rules (B1, B2), budgets (B3), bypass (B5), windows and retry
(B6), all or nothing (B7), stats (B12), no Redis (B13), burst (B16); defects 5-8, 11, 12."""

from __future__ import annotations

import asyncio
from datetime import timezone

import pytest
import redis.asyncio

from seawall.compat.voicehive.rate_limiter import (
    ClientType,
    RateLimitConfig,
    RateLimiter,
    RateLimitResult,
    RateLimitRule,
)
from seawall.testing import ManualClock

T0 = 1_800_000_000.0


def limiter(clock: ManualClock, **kwargs: object) -> RateLimiter:
    r = RateLimiter(clock=clock, **kwargs)  # type: ignore[arg-type]
    r.add_rule(
        {
            "path_pattern": r"/auth/login",
            "method": "POST",
            "config": {"requests_per_minute": 5, "requests_per_hour": 20, "requests_per_day": 100},
        }
    )
    r.add_rule(RateLimitRule(r"/api/.*", config=RateLimitConfig(3, 1000, 10000)))
    r.add_rule(
        {"path_pattern": r".*", "client_type": "anonymous", "config": {"requests_per_minute": 2}}
    )
    return r


def check(
    r: RateLimiter, client: str, path: str, method: str = "GET", kind: str = "api"
) -> RateLimitResult:
    return r.check_rate_limit_sync(client, path, method, kind)


def test_rules_regex_prefix_match_first_wins_else_default() -> None:
    r = limiter(ManualClock(T0))
    # B1: re.match anchors at the start only (defect 10, kept and documented).
    assert r.get_config_for_request("/auth/login-anything", "POST", "api").requests_per_minute == 5
    assert r.get_config_for_request("/auth/login", "GET", "api").requests_per_minute == 60  # method
    # B2: the first match wins: an anonymous client on /api/ gets the API limit.
    assert r.get_config_for_request("/api/items", "GET", "anonymous").requests_per_minute == 3
    assert r.get_config_for_request("/other", "GET", "anonymous").requests_per_minute == 2
    assert r.get_config_for_request("/other", "GET", ClientType.API).requests_per_minute == 60


def test_bad_rules_raise_when_added() -> None:
    r = RateLimiter()
    with pytest.raises(ValueError, match="path_pattern"):
        r.add_rule({"path_pattern": "(unclosed"})
    with pytest.raises(ValueError, match="requests_per_hour"):
        r.add_rule({"path_pattern": ".*", "config": {"requests_per_hour": -1}})
    with pytest.raises(ValueError, match="unknown keys"):
        r.add_rule({"path_pattern": ".*", "config": {"per_minute": 1}})
    with pytest.raises(TypeError, match="requests_per_minute"):
        RateLimitConfig(requests_per_minute=1.5)  # type: ignore[arg-type]
    assert r.rules == []


def test_one_budget_per_client_and_rule_across_paths() -> None:
    r = limiter(ManualClock(T0))
    # Defect 8: varying an id gave a fresh budget per path. B3: one per (client, rule).
    assert [check(r, "c", f"/api/items/{i}").allowed for i in range(4)] == [True] * 3 + [False]
    assert check(r, "other", "/api/items/1").allowed
    assert check(r, "c", "/unmatched").allowed  # the default budget is its own


def test_result_numbers_and_retry_after_is_the_real_wait() -> None:
    clock = ManualClock(T0)
    r = RateLimiter(clock=clock)
    r.default_config = RateLimitConfig(5, 20, 100)
    first = check(r, "c", "/x")
    assert (first.allowed, first.limit_type, first.remaining, first.current_usage) == (
        True,
        "requests_per_minute",
        4,
        1,
    )
    assert first.retry_after is None and first.reset_time.tzinfo is timezone.utc
    for _ in range(4):
        check(r, "c", "/x")
    clock.advance(20.5)
    denied = check(r, "c", "/x")
    assert not denied.allowed and denied.remaining == 0 and denied.current_usage == 5
    # Defect 5: not a constant 60 but the real wait, rounded up: 60 - 20.5 = 39.5 -> 40.
    assert denied.retry_after == 40 and denied.limit_type == "requests_per_minute"
    assert denied.reset_time.timestamp() == pytest.approx(T0 + 20.5 + 40)


def test_the_binding_window_is_the_longest_wait_and_refusals_spend_nothing() -> None:
    clock = ManualClock(T0)
    r = RateLimiter(clock=clock)
    r.default_config = RateLimitConfig(
        requests_per_minute=3, requests_per_hour=4, requests_per_day=100
    )
    for _ in range(3):
        assert check(r, "c", "/x").allowed
    clock.advance(61)
    assert check(r, "c", "/x").allowed  # the hour's 4th
    refused = [check(r, "c", "/x") for _ in range(10)]
    assert not any(x.allowed for x in refused)
    assert refused[0].limit_type == "requests_per_hour"
    assert refused[0].retry_after == 3600 - 61
    # Defect 6 / B7: the refused requests were counted by no window (the minute has 3 left).
    stats = asyncio.run(r.get_client_stats("c"))
    assert stats["minute"]["default"] == 1 and stats["hour"]["default"] == 4


def test_same_instant_requests_all_count() -> None:
    r = RateLimiter(clock=ManualClock(T0))  # the clock never moves: one instant
    r.default_config = RateLimitConfig(requests_per_minute=50)
    results = [check(r, "c", "/x").allowed for _ in range(60)]
    assert results.count(True) == 50  # defect 7: members collided and were under-counted


def test_internal_bypass_only_under_bypass_internal() -> None:
    r = RateLimiter(clock=ManualClock(T0))
    r.default_config = RateLimitConfig(requests_per_minute=1)
    r.add_rule(
        {"path_pattern": "/strict", "config": {"requests_per_minute": 1, "bypass_internal": False}}
    )
    free = [check(r, "svc", "/x", kind="internal") for _ in range(5)]
    assert all(x.allowed and x.limit_type == "bypass_internal" for x in free)
    assert asyncio.run(r.get_client_stats("svc"))["minute"]["default"] == 0  # nothing spent
    assert [check(r, "svc", "/strict", kind="internal").allowed for _ in range(2)] == [True, False]


def test_zero_switches_a_window_off() -> None:
    r = RateLimiter(clock=ManualClock(T0))
    r.default_config = RateLimitConfig(
        requests_per_minute=0, requests_per_hour=2, requests_per_day=0
    )
    got = [check(r, "c", "/x") for _ in range(3)]
    assert [x.allowed for x in got] == [True, True, False]
    assert got[2].limit_type == "requests_per_hour"
    r.default_config = RateLimitConfig(0, 0, 0)
    assert all(check(r, "c", "/x").allowed for _ in range(100))


def test_large_windows_use_the_counter_and_still_limit() -> None:
    r = RateLimiter(clock=ManualClock(T0))
    r.default_config = RateLimitConfig(
        requests_per_minute=2000, requests_per_hour=5000, requests_per_day=100000
    )
    assert sum(check(r, "c", "/x").allowed for _ in range(2100)) == 2000


def test_burst_limit_is_kept_and_enforced_only_when_asked() -> None:
    r = RateLimiter(clock=ManualClock(T0))
    r.default_config = RateLimitConfig(requests_per_minute=500, burst_limit=50)
    assert sum(check(r, "c", "/x").allowed for _ in range(100)) == 100  # B16: not enforced
    r.default_config = RateLimitConfig(
        requests_per_minute=500, burst_limit=50, enforce_burst_limit=True
    )
    assert sum(check(r, "d", "/x").allowed for _ in range(100)) == 50


def test_client_stats_and_resets() -> None:
    async def scenario() -> None:
        r = limiter(ManualClock(T0))
        for _ in range(2):
            await r.check_rate_limit("c", "/api/a")
        await r.check_rate_limit("c", "/elsewhere", "GET", "anonymous")
        stats = await r.get_client_stats("c")
        assert stats["minute"]["/api/.*"] == 2 and stats["minute"][".*"] == 1
        assert stats["hour"]["/auth/login"] == 0 and stats["day"]["default"] == 0
        # A path resets the budgets of every rule matching it (any method or client type).
        assert await r.reset_client_limits("c", "/api/b") == 2
        assert (await r.get_client_stats("c"))["minute"] == {
            "/auth/login": 0,
            "/api/.*": 0,
            ".*": 0,
            "default": 0,
        }
        await r.check_rate_limit("c", "/unmatched")
        assert await r.reset_client_limits("c", "/unmatched") == 0  # ".*" matches: nothing used
        assert await r.reset_client_limits("c") == 1  # the default budget

    asyncio.run(scenario())


def test_redis_budgets_are_shared_by_instances(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        client = redis.asyncio.Redis.from_url(redis_url)
        a = limiter(clock, key_prefix=redis_prefix)
        a_url = RateLimiter(redis_url, key_prefix=redis_prefix, clock=clock)
        b = RateLimiter(client, key_prefix=redis_prefix, clock=clock)  # URL rebuilt from the pool
        assert a.store is None and b.store is not None and b.store.startswith("redis://")
        for x in (a_url, b):
            x.add_rule(RateLimitRule(r"/api/.*", config=RateLimitConfig(3, 1000, 10000)))
        got = [await x.check_rate_limit("c", "/api/1") for x in (a_url, b, a_url, b)]
        assert [g.allowed for g in got] == [True, True, True, False]
        assert (await b.get_client_stats("c"))["minute"]["/api/.*"] == 3
        assert await a_url.reset_client_limits("c") == 1
        assert (await b.check_rate_limit("c", "/api/1")).allowed
        await client.aclose()

    asyncio.run(scenario())


def test_redis_down_falls_back_to_local_limits() -> None:
    r = RateLimiter("redis://127.0.0.1:1", clock=ManualClock(T0))  # nothing listens there
    r.default_config = RateLimitConfig(requests_per_minute=2)
    # Defect 4: the service let everything through without Redis. Here: per-process limits.
    assert [check(r, "c", "/x").allowed for _ in range(3)] == [True, True, False]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="on_error"):
        RateLimiter(on_error="skip")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="redis_client"):
        RateLimiter(42)
    with pytest.raises(TypeError, match="client_id"):
        RateLimiter().check_rate_limit_sync(1, "/x")  # type: ignore[arg-type]


def test_a_window_too_large_for_redis_is_a_token_bucket_there(
    redis_url: str, redis_prefix: str
) -> None:
    """100,000 a day cannot be a sliding counter in Redis's exact arithmetic: it becomes a
    bucket of 100,000 refilled over the day, and still admits exactly its count at once."""
    from seawall.compat.voicehive.rate_limiter import RateLimitConfig, RateLimiter
    from seawall.testing import ManualClock

    config = RateLimitConfig(requests_per_minute=0, requests_per_hour=0, requests_per_day=100_000)
    limiter = RateLimiter(redis_url, key_prefix=redis_prefix, clock=ManualClock(1_000))
    limiter.default_config = config
    first = limiter.check_rate_limit_sync("c", "/x")
    assert first.allowed and first.remaining == 99_999
    assert first.limit_type == "requests_per_day"
