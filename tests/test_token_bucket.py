"""seawall.TokenBucket behind seed 000's API."""

from __future__ import annotations

import asyncio
import inspect

from seawall import TokenBucket, TokenBucketConfig
from seawall.testing import ManualClock

STATS_KEYS = {
    "client_id",
    "current_tokens",
    "capacity",
    "refill_rate",
    "total_requests",
    "rejected_requests",
    "rejection_rate",
    "last_rejection_time",
}


def test_config_is_the_seeds_dataclass_shape() -> None:
    c = TokenBucketConfig(capacity=100, refill_rate=10.0, initial_tokens=50)
    assert (c.capacity, c.refill_rate, c.initial_tokens) == (100, 10.0, 50)
    assert TokenBucketConfig(100, 10.0, 50) == c
    assert hash(TokenBucketConfig(100, 10.0, 50)) == hash(c)
    assert TokenBucketConfig(100, 10.0, 49) != c
    assert repr(c) == "TokenBucketConfig(capacity=100, refill_rate=10.0, initial_tokens=50)"


def test_initial_tokens_above_capacity_is_lowered_like_post_init() -> None:
    assert TokenBucketConfig(capacity=5, refill_rate=1.0, initial_tokens=9).initial_tokens == 5


def test_async_methods_are_real_coroutines(config: TokenBucketConfig) -> None:
    bucket = TokenBucket(config, "alice")
    for name in ("consume", "peek", "reset"):
        assert inspect.iscoroutinefunction(getattr(bucket, name))


def test_consume_peek_reset_as_the_seed_uses_them(config: TokenBucketConfig) -> None:
    clock = ManualClock()
    bucket = TokenBucket(config, "alice", clock=clock)

    async def scenario() -> None:
        assert await bucket.peek() == 50.0
        assert await bucket.consume(50)
        assert not await bucket.consume()
        clock.advance(0.25)  # 2.5 tokens at 10/s
        assert await bucket.peek() == 2.5
        assert await bucket.consume(2)
        assert not await bucket.consume()
        await bucket.reset()
        assert await bucket.peek() == 50.0
        assert bucket.get_stats()["total_requests"] == 0

    asyncio.run(scenario())


def test_default_client_id_is_unknown(config: TokenBucketConfig) -> None:
    assert TokenBucket(config).client_id == "unknown"
    assert TokenBucket(config, client_id="bob").client_id == "bob"


def test_stats_have_the_seeds_keys_and_values(config: TokenBucketConfig) -> None:
    clock = ManualClock(start=1_000.0)
    bucket = TokenBucket(config, "alice", clock=clock)
    stats = bucket.get_stats()
    assert set(stats) == STATS_KEYS
    assert stats["rejection_rate"] == 0
    assert stats["last_rejection_time"] is None
    assert bucket.try_consume(50)
    clock.advance(0.05)
    assert not bucket.try_consume(1)
    stats = bucket.get_stats()
    assert stats == {
        "client_id": "alice",
        "current_tokens": 0.5,
        "capacity": 100,
        "refill_rate": 10.0,
        "total_requests": 2,
        "rejected_requests": 1,
        "rejection_rate": 0.5,
        "last_rejection_time": 1_000.05,
    }


def test_refill_caps_at_capacity(config: TokenBucketConfig) -> None:
    clock = ManualClock()
    bucket = TokenBucket(config, clock=clock)
    clock.advance(3600)
    assert bucket.peek_sync() == 100.0
    assert bucket.try_consume(100)
    assert not bucket.try_consume(1)


def test_fractional_refill_is_exact_after_a_million_steps() -> None:
    clock = ManualClock()
    bucket = TokenBucket(TokenBucketConfig(1000, 1 / 3, 0), clock=clock)
    for _ in range(1_000_000):
        clock.advance(0.003)
    # 3000 s at a third of a token per second: exactly 1000, not 999.9999.
    assert bucket.peek_sync() == 1000.0
    assert bucket.try_consume(1000)


def test_reassigning_config_keeps_tokens(config: TokenBucketConfig) -> None:
    """The seed's set_client_config assigns bucket.config; the tokens carry over."""
    clock = ManualClock()
    bucket = TokenBucket(config, clock=clock)
    bigger = TokenBucketConfig(capacity=1000, refill_rate=1.0, initial_tokens=0)
    bucket.config = bigger
    assert bucket.config is bigger
    assert bucket.peek_sync() == 50.0
    bucket.config = TokenBucketConfig(capacity=20, refill_rate=1.0, initial_tokens=0)
    assert bucket.peek_sync() == 20.0


def test_zero_refill_rate_is_a_one_time_allowance() -> None:
    clock = ManualClock()
    bucket = TokenBucket(TokenBucketConfig(3, 0.0, 3), clock=clock)
    assert bucket.try_consume(3)
    clock.advance(10**6)
    assert not bucket.try_consume(1)
