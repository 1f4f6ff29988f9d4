"""Seed 000's module, as its service imports it: one changed import line."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seawall import RedisLimiter
from seawall.compat import snowflake
from seawall.compat.snowflake import (
    ClientRateLimiter,
    RateLimitMiddleware,
    TokenBucket,
    TokenBucketConfig,
    client_rate_limiter,
)
from seawall.testing import ManualClock


def test_global_limiter_has_the_seeds_defaults() -> None:
    assert client_rate_limiter.default_config == TokenBucketConfig(
        capacity=100, refill_rate=10.0, initial_tokens=50
    )
    assert set(snowflake.__all__) >= {
        "ClientRateLimiter",
        "TokenBucket",
        "TokenBucketConfig",
        "client_rate_limiter",
    }


def test_the_seeds_usage(seawall_clock: ManualClock) -> None:
    """The seed's lifecycle: start the limiter, consume per client, read stats, stop."""

    async def scenario() -> None:
        await client_rate_limiter.start()
        try:
            client = "snowflake-compat-client"
            allowed = [await client_rate_limiter.consume(client, tokens=1) for _ in range(60)]
            assert allowed.count(True) == 50  # initial_tokens=50
            seawall_clock.advance(1.0)
            assert await client_rate_limiter.check_limit(client, 10)
            stats = await client_rate_limiter.get_client_stats(client)
            assert stats is not None
            assert stats["rejected_requests"] == 10
            assert stats["current_tokens"] == 10.0
            assert await client_rate_limiter.reset_client(client)
        finally:
            await client_rate_limiter.stop()

    asyncio.run(scenario())


def test_types_are_seawalls_own() -> None:
    import seawall

    assert ClientRateLimiter is seawall.ClientRateLimiter
    assert TokenBucket is seawall.TokenBucket
    bucket = TokenBucket(TokenBucketConfig(5, 1.0, 5), "x", clock=ManualClock())
    assert asyncio.run(bucket.consume(5))


# --- store= (issue 13) ------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1.0, 10.0, 2.5]),
    burst=st.integers(1, 5),
    gaps=st.lists(st.integers(0, 3000), min_size=1, max_size=50),
)
def test_middleware_token_bucket_on_redis_gives_the_memory_numbers(
    redis_url: str, rate: float, burst: int, gaps: list[int]
) -> None:
    """The middleware's token bucket on Redis decides as in memory: allowed, remaining,
    retry_after and reset_after (the numbers its headers show) equal, call by call."""
    clock = ManualClock(start=1_800_000_000.0)
    memory = RateLimitMiddleware(requests_per_second=rate, burst_size=burst, clock=clock)
    redis = RateLimitMiddleware(
        requests_per_second=rate,
        burst_size=burst,
        clock=clock,
        store=redis_url,
        key_prefix=f"t:{uuid.uuid4().hex}:",
    )
    assert isinstance(redis.limiter, RedisLimiter)
    for gap in gaps:
        clock.advance(gap / 1000)
        ours, theirs = memory.limiter.hit("client"), redis.limiter.hit("client")
        assert (theirs.allowed, theirs.remaining, theirs.retry_after, theirs.reset_after) == (
            ours.allowed,
            ours.remaining,
            ours.retry_after,
            ours.reset_after,
        )


def test_store_and_its_options_are_checked() -> None:
    with pytest.raises(ValueError, match="key_prefix"):
        RateLimitMiddleware(key_prefix="x:")  # memory: a Redis option would be ignored
    with pytest.raises(TypeError, match="store"):
        RateLimitMiddleware(store=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        RateLimitMiddleware(store="redis://127.0.0.1:70000")
    with pytest.raises(ValueError, match="on_error"):
        snowflake.rate_limit(on_error="deny")
    # The seed's token-bucket types keep their state in this process only (see the module
    # docstring): they take no store.
    with pytest.raises(TypeError):
        ClientRateLimiter(TokenBucketConfig(5, 1.0, 5), store="redis://127.0.0.1")  # type: ignore[call-arg]
