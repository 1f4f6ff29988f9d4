"""Seed 000's module, as its service imports it: one changed import line."""

from __future__ import annotations

import asyncio

from seawall.compat import snowflake
from seawall.compat.snowflake import (
    ClientRateLimiter,
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
