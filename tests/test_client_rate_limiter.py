"""seawall.ClientRateLimiter behind seed 000's API, and the fixes to the seed's cleanup."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from seawall import ClientRateLimiter, TokenBucketConfig
from seawall.testing import ManualClock

ALL_STATS_KEYS = {
    "total_clients",
    "total_requests",
    "total_rejected",
    "global_rejection_rate",
    "clients",
}


def test_clients_have_separate_buckets(config: TokenBucketConfig) -> None:
    limiter = ClientRateLimiter(config, clock=ManualClock())

    async def scenario() -> None:
        assert await limiter.consume("alice", 50)
        assert not await limiter.consume("alice")
        assert await limiter.consume("bob")
        assert len(limiter) == 2

    asyncio.run(scenario())


def test_check_limit_consumes_nothing(config: TokenBucketConfig) -> None:
    limiter = ClientRateLimiter(config, clock=ManualClock())

    async def scenario() -> None:
        for _ in range(100):
            assert await limiter.check_limit("alice", 50)
        assert not await limiter.check_limit("alice", 51)
        assert await limiter.consume("alice", 50)
        assert not await limiter.check_limit("alice")
        assert await limiter.get_client_stats("carol") is None
        assert not await limiter.check_limit("carol", 51)
        assert await limiter.get_client_stats("carol") is None  # no bucket created

    asyncio.run(scenario())


def test_set_client_config_applies_to_new_and_existing_buckets(config: TokenBucketConfig) -> None:
    clock = ManualClock()
    limiter = ClientRateLimiter(config, clock=clock)
    vip = TokenBucketConfig(capacity=1000, refill_rate=100.0, initial_tokens=1000)

    async def scenario() -> None:
        await limiter.set_client_config("vip", vip)
        assert await limiter.consume("vip", 1000)
        assert await limiter.consume("alice", 10)
        await limiter.set_client_config("alice", vip)
        # alice keeps the 40 tokens she had, and now refills at 100/s.
        assert await limiter.peek("alice") == 40.0
        clock.advance(1)
        assert await limiter.peek("alice") == 140.0
        stats = await limiter.get_client_stats("alice")
        assert stats is not None
        assert (stats["capacity"], stats["refill_rate"]) == (1000, 100.0)

    asyncio.run(scenario())


def test_stats_shapes_match_the_seed(config: TokenBucketConfig) -> None:
    clock = ManualClock(start=500.0)
    limiter = ClientRateLimiter(config, clock=clock)

    async def scenario() -> None:
        await limiter.consume("alice", 50)
        await limiter.consume("alice")
        await limiter.consume("bob")
        stats = await limiter.get_all_stats()
        assert set(stats) >= ALL_STATS_KEYS
        assert stats["total_clients"] == 2
        assert stats["total_requests"] == 3
        assert stats["total_rejected"] == 1
        assert stats["global_rejection_rate"] == pytest.approx(1 / 3)
        assert set(stats["clients"]) == {"alice", "bob"}
        alice = stats["clients"]["alice"]
        assert alice["client_id"] == "alice"
        assert alice["rejected_requests"] == 1
        assert alice["last_rejection_time"] == 500.0
        assert await limiter.get_client_stats("alice") == alice

    asyncio.run(scenario())


def test_reset_client(config: TokenBucketConfig) -> None:
    limiter = ClientRateLimiter(config, clock=ManualClock())

    async def scenario() -> None:
        assert not await limiter.reset_client("alice")
        await limiter.consume("alice", 50)
        assert await limiter.reset_client("alice")
        assert await limiter.peek("alice") == 50.0
        stats = await limiter.get_client_stats("alice")
        assert stats is not None and stats["total_requests"] == 0

    asyncio.run(scenario())


def test_cleanup_keeps_active_buckets_the_seed_would_have_dropped() -> None:
    """Seed 000 dropped every bucket never rejected in the last interval, active or not, handing
    a busy client a fresh bucket. seawall drops only buckets that are full again."""
    clock = ManualClock()
    config = TokenBucketConfig(capacity=10, refill_rate=1.0, initial_tokens=10)
    limiter = ClientRateLimiter(config, timedelta(seconds=60), clock=clock)
    assert limiter.try_consume("busy", 10)  # emptied, never rejected
    assert limiter.try_consume("idle", 1)
    clock.advance(5)
    assert limiter.cleanup() == 1  # idle is full again; busy has 5 of 10
    assert limiter.get_client_stats_sync("idle") is None
    assert limiter.peek_sync("busy") == 5.0
    assert not limiter.try_consume("busy", 6), "a dropped bucket would have granted this"
    totals = limiter.get_all_stats_sync()
    assert totals["total_requests"] == 3  # evicted buckets' counts are kept in the totals
    assert totals["evicted_clients"] == 1


def test_memory_is_bounded_by_max_clients() -> None:
    clock = ManualClock()
    config = TokenBucketConfig(capacity=5, refill_rate=1.0, initial_tokens=5)
    limiter = ClientRateLimiter(config, max_clients=1_000, clock=clock)
    assert limiter.max_clients == 1_000
    for i in range(20_000):
        limiter.try_consume(f"flood-{i}")
        if i % 100 == 0:
            clock.advance(1)  # flood buckets refill: evicting them is lossless
        assert len(limiter) <= 1_000
    stats = limiter.get_all_stats_sync()
    assert stats["total_requests"] == 20_000
    assert stats["evicted_clients"] == 19_000
    assert stats["evicted_before_full"] == 0


def test_at_the_bound_a_held_bucket_that_lost_tokens_stays_limited() -> None:
    clock = ManualClock()
    config = TokenBucketConfig(capacity=5, refill_rate=0.0, initial_tokens=5)
    limiter = ClientRateLimiter(config, max_clients=10, clock=clock)
    assert limiter.try_consume("abuser", 5)
    for i in range(9):
        assert limiter.try_consume(f"other-{i}", 1)
    # The bound is reached; one more key takes the place of the sampled bucket closest to full.
    assert limiter.try_consume("newcomer", 1)
    assert len(limiter) == 10
    assert not limiter.try_consume("abuser"), "the emptiest bucket is the last to go"


def test_start_and_stop_run_the_cleanup_task(config: TokenBucketConfig) -> None:
    limiter = ClientRateLimiter(config, timedelta(milliseconds=1))

    async def scenario() -> None:
        await limiter.start()
        await limiter.start()  # idempotent
        await limiter.stop()
        await limiter.stop()

    asyncio.run(scenario())


def test_cleanup_interval_default_is_an_hour(config: TokenBucketConfig) -> None:
    assert ClientRateLimiter(config).cleanup_interval == timedelta(hours=1)
    assert ClientRateLimiter(config).default_config is not None
