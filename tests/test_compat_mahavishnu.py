"""Seed 001's rate_limit module: config, info, tiers with a burst, exemptions, violations."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import RedisLimiter
from seawall.compat.mahavishnu import rate_limit_tools
from seawall.compat.mahavishnu.rate_limit import (
    RateLimitConfig,
    RateLimiter,
    RateLimitError,
    RateLimitInfo,
    rate_limit,
)
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


# --- store= (issue 13): the same limits on a real Redis ---------------------------------------


def _answer(allowed: bool, info: RateLimitInfo) -> tuple[object, ...]:
    # Everything but reset_time, which the seed takes from the wall clock (time.time()).
    return allowed, info.limited, info.limit, info.remaining, info.reset_after, info.retry_after


@settings(max_examples=15, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.integers(0, 30_000), st.sampled_from(["a", "b"])), min_size=1, max_size=60
    )
)
def test_redis_store_gives_the_memory_answers(redis_url: str, calls: list[tuple[int, str]]) -> None:
    """The four limits (log, two counters, bucket) on Redis answer as in memory, call by call,
    on one manual clock (gaps up to 30 s, so every limit binds at some point)."""
    clock = ManualClock(start=1_800_000_000.0)
    config = RateLimitConfig(
        requests_per_minute=4, requests_per_hour=12, requests_per_day=20, burst_size=2
    )
    memory = RateLimiter(config=config, clock=clock)
    redis = RateLimiter(
        config=config, clock=clock, store=redis_url, key_prefix=f"t:{uuid.uuid4().hex}:"
    )

    async def scenario() -> None:
        for i, (gap, key) in enumerate(calls):
            clock.advance(gap / 1000)
            expected = _answer(*memory.check(key))
            got = redis.check(key) if i % 2 else await redis.is_allowed(key)
            assert _answer(*got) == expected

    asyncio.run(scenario())
    assert redis.get_violations("a") == memory.get_violations("a")


def test_two_limiters_on_one_redis_share_one_budget(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    workers = [
        RateLimiter(
            per_minute=60, burst_size=5, clock=clock, store=redis_url, key_prefix=redis_prefix
        )
        for _ in range(3)
    ]

    async def scenario() -> int:
        return sum([(await workers[i % 3].is_allowed("ip"))[0] for i in range(12)])

    assert asyncio.run(scenario()) == 5  # the burst, once between the three
    clock.advance(1.0)  # the bucket refills one a second (60 per minute)
    assert [w.check("ip")[0] for w in workers] == [True, False, False]
    stats = workers[0].get_stats()
    assert stats["total_requests"] == 5 and stats["active_keys"] is None
    assert workers[0].cleanup() == 0  # Redis expires its keys itself
    assert workers[1].reset("ip") and workers[2].check("ip")[0]


def test_decorator_on_redis_shares_the_function_budget(redis_url: str, redis_prefix: str) -> None:
    """The decorator made in two workers (same function, same Redis): one budget."""
    clock = ManualClock(start=1_800_000_000.0)

    def worker() -> Any:
        @rate_limit(burst_size=2, clock=clock, store=redis_url, key_prefix=redis_prefix)
        async def report() -> str:
            return "ok"

        return report

    one, two = worker(), worker()

    async def scenario() -> list[bool]:
        admitted = []
        for f in (one, two, one, two):
            try:
                await f()
                admitted.append(True)
            except RateLimitError as e:
                assert e.retry_after == 1
                admitted.append(False)
        return admitted

    assert asyncio.run(scenario()) == [True, True, False, False]


def test_store_and_its_options_are_checked(redis_url: str) -> None:
    with pytest.raises(ValueError, match="key_prefix"):
        RateLimiter(key_prefix="x:")  # memory: a Redis option would be ignored
    with pytest.raises(ValueError, match="log_interval"):
        RateLimiter(store="memory://", log_interval=5.0)
    with pytest.raises(TypeError, match="store"):
        RateLimiter(store=b"redis://127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        RateLimiter(store="redis://127.0.0.1:0")
    with pytest.raises(ValueError, match="on_error"):
        RateLimiter(store=redis_url, on_error="sometimes")
    with pytest.raises(ValueError, match="connect_timeout"):
        rate_limit(connect_timeout=1.0)(_noop)
    with pytest.raises(ValueError, match="on_error"):
        rate_limit_tools.rate_limit_tool(5, on_error="deny")
    with pytest.raises(ValueError, match="key_prefix"):
        rate_limit_tools.get_rate_limiter(key_prefix="x:")


async def _noop() -> None:
    return None


def test_tool_decorator_and_shared_limiter_on_redis(redis_url: str, redis_prefix: str) -> None:
    """``rate_limit_tool(store=...)`` on a real FastMCP server: two workers' decorated tools
    (same name, Redis and prefix) give each ``user_id`` one budget between them."""
    fastmcp = pytest.importorskip("fastmcp")
    clock = ManualClock(start=1_800_000_000.0)
    servers = []
    for _ in range(2):  # as two worker processes would each build the server
        server = fastmcp.FastMCP("seed001")

        @server.tool()
        @rate_limit_tools.rate_limit_tool(2, clock=clock, store=redis_url, key_prefix=redis_prefix)
        async def lookup(user_id: str) -> dict[str, Any]:
            return {"user": user_id}

        servers.append(server)

    async def scenario() -> list[Any]:
        async with fastmcp.Client(servers[0]) as c1, fastmcp.Client(servers[1]) as c2:
            out = []
            for c in (c1, c2, c1, c2):
                out.append((await c.call_tool("lookup", {"user_id": "ann"})).data)
            out.append((await c2.call_tool("lookup", {"user_id": "bob"})).data)
            return out

    results = asyncio.run(scenario())
    assert results[:2] == [{"user": "ann"}] * 2
    assert all(r["rate_limited"] is True and r["retry_after"] == 60 for r in results[2:4])
    assert results[4] == {"user": "bob"}

    try:
        shared = rate_limit_tools.get_rate_limiter(store=redis_url, key_prefix=redis_prefix)
        assert isinstance(shared.limiter, RedisLimiter)
        assert rate_limit_tools.get_rate_limiter() is shared  # kept until replaced
    finally:
        rate_limit_tools.get_rate_limiter(RateLimitConfig())  # back to memory for other tests
