"""Seed 001's rate_limit module: config, info, tiers with a burst, exemptions, violations."""

from __future__ import annotations

import asyncio
from dataclasses import fields

import pytest

from seawall.compat.mahavishnu.rate_limit import RateLimitConfig, RateLimiter, RateLimitInfo
from seawall.testing import ManualClock


def test_config_defaults() -> None:
    c = RateLimitConfig()
    assert (c.requests_per_minute, c.requests_per_hour, c.requests_per_day, c.burst_size) == (
        60,
        1000,
        10000,
        10,
    )
    assert c.exempt_ips == set() and c.exempt_user_ids == set() and c.enabled is True


def test_info_defaults_and_limited_state() -> None:
    info = RateLimitInfo()
    assert info.limited is False and info.retry_after is None
    assert {f.name for f in fields(RateLimitInfo)} >= {"limited", "remaining", "retry_after"}
    limited = RateLimitInfo(limited=True, retry_after=30)
    assert limited.limited and limited.retry_after == 30


def test_burst_then_per_minute() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    limiter = RateLimiter(per_minute=60, per_hour=1000, per_day=10000, burst_size=10, clock=clock)

    async def scenario() -> None:
        results = [await limiter.is_allowed("client_ip") for _ in range(11)]
        assert [ok for ok, _ in results] == [True] * 10 + [False]
        _, info = results[-1]
        assert info.limited and info.retry_after == 1  # one token per second
        clock.advance(1.0)
        assert (await limiter.is_allowed("client_ip"))[0]
        assert (await limiter.is_allowed("other"))[0]  # keys are independent

    asyncio.run(scenario())


def test_the_minute_limit_holds_whatever_the_burst() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    limiter = RateLimiter(per_minute=5, burst_size=5, clock=clock)
    admitted = 0
    for _ in range(120):  # one a second for two minutes: the bucket refills 1 per 12 s
        admitted += limiter.check("k")[0]
        clock.advance(1.0)
    assert admitted <= 5 + 5 * 2


def test_exemptions_and_switch() -> None:
    config = RateLimitConfig(requests_per_minute=1, burst_size=1)
    config.exempt_ips = {"192.168.1.100"}
    config.exempt_user_ids = {"admin_user"}
    limiter = RateLimiter(config=config, clock=ManualClock())
    for key in ("192.168.1.100", "admin_user"):
        assert all(limiter.check(key)[0] for _ in range(10))
    assert limiter.check("someone")[0] and not limiter.check("someone")[0]
    limiter.config.enabled = False
    assert limiter.check("someone")[0]


def test_violations_repeat_offenders_stats_and_cleanup() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    limiter = RateLimiter(per_minute=1, burst_size=1, clock=clock)
    for _ in range(7):
        limiter.check("abuser")
    limiter.check("polite")
    assert limiter.get_violations("abuser") == 6
    assert limiter.get_repeat_offenders() == {"abuser": 6}
    stats = limiter.get_stats()
    assert stats["total_requests"] == 8 and stats["limited_requests"] == 6
    assert stats["active_keys"] == 2 and stats["total_violations"] == 6
    clock.advance(2 * 86400)
    assert limiter.cleanup() == 2
    assert limiter.get_violations("abuser") == 0

    async def lifecycle() -> None:
        await limiter.start_cleanup(0.01)
        await limiter.start_cleanup(0.01)
        await limiter.stop_cleanup()

    asyncio.run(lifecycle())


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="burst_size"):
        RateLimiter(burst_size=0)
