"""Seed 002's drop-in on a real redis-server: ``redis_url`` in the seed's spellings, budgets
shared by engines (workers) that name the same server, and what stays memory-only."""

from __future__ import annotations

import asyncio

import pytest
from redis_servers import RedisServer

from seawall.compat.mahavishnu.rate_limiting import (
    LimitScope,
    RateLimitRule,
    create_rate_limiter,
)
from seawall.testing import ManualClock

T0 = 1_800_000_000.0


def test_a20_a_bad_url_fails_at_once_and_a_good_one_waits_for_first_use() -> None:
    for bad in ("http://localhost:6379", "redis-cluster://127.0.0.1:7000/3", "memcached://x"):
        with pytest.raises(ValueError, match="store"):
            create_rate_limiter(redis_url=bad)
    # Nothing listens on port 1: building does not connect.
    for url in ("redis://127.0.0.1:1/0", "sentinel://127.0.0.1:1/0", "redis-cluster://127.0.0.1:1"):
        assert create_rate_limiter(redis_url=url).native.store.startswith("redis")


def test_budgets_are_shared_by_every_engine_on_the_server(redis_server: RedisServer) -> None:
    clock = ManualClock(T0)
    workers = [create_rate_limiter(redis_url=redis_server.url, clock=clock) for _ in range(2)]
    for w in workers:
        w.add_rule_sync(RateLimitRule(name="api", scope=LimitScope.PER_USER, rate=3))

    async def requests() -> list[bool]:
        return [(await workers[i % 2].check_limit("u", "api")).allowed for i in range(4)]

    assert asyncio.run(requests()) == [True, True, True, False]
    refused = workers[0].check_limit_sync("u", "api")
    assert not refused.allowed and refused.retry_after == 20
    clock.advance(20)
    assert workers[1].check_limit_sync("u", "api").allowed


def test_a16_custom_algorithms_are_refused_with_redis(redis_server: RedisServer) -> None:
    class Always:
        def check(self, state: object, current_time: float) -> tuple[bool, object]:
            return True, state

        def get_retry_after(self, state: object) -> float:
            return 1.0

    engine = create_rate_limiter(redis_url=redis_server.url)
    custom = RateLimitRule(name="c", scope=LimitScope.GLOBAL, rate=1, algorithm=Always())
    with pytest.raises(ValueError, match="algorithm"):
        engine.add_rule_sync(custom)
