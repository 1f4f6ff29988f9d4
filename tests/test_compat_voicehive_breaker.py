"""Seed 003's circuit_breaker (3.3) on seawall.CircuitBreaker: B15 defaults, B17 stats, defect
14 (one half-open probe, timeouts always fail, the decorator's breaker is registered)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timezone

import pytest

import seawall
from seawall.compat.voicehive.circuit_breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerManager,
    CircuitBreakerOpenError,
    CircuitBreakerTimeoutError,
    CircuitState,
    circuit_breaker,
)
from seawall.testing import ManualClock

T0 = 1_800_000_000.0


async def fail() -> None:
    raise ConnectionError("down")


async def ok(x: int = 1) -> int:
    return x


def breaker(clock: ManualClock, **kwargs: object) -> CircuitBreaker:
    config = CircuitBreakerConfig(
        name="pms", failure_threshold=2, recovery_timeout=10, success_threshold=2, jitter=0.0
    )
    for key, value in kwargs.items():
        setattr(config, key, value)
    return CircuitBreaker(config, clock=clock)


def test_defaults_are_the_service_s_plus_recovery_settings() -> None:
    c = CircuitBreakerConfig()
    assert (c.failure_threshold, c.recovery_timeout, c.success_threshold, c.timeout) == (
        5,
        60,
        3,
        30.0,
    )
    assert (c.half_open_max_calls, c.backoff_multiplier, c.max_recovery_timeout, c.jitter) == (
        1,
        2.0,
        600.0,
        0.1,
    )


def test_opens_refuses_probes_once_and_closes_after_successes() -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        b = breaker(clock)
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await b.call(fail)
        assert b.state is CircuitState.OPEN
        with pytest.raises(CircuitBreakerOpenError) as refused:
            await b.call(ok)
        assert isinstance(refused.value, seawall.CircuitOpenError)  # one except covers both
        assert refused.value.circuit_name == "pms"
        assert refused.value.next_attempt_time.timestamp() == pytest.approx(T0 + 10)
        stats = await b.get_stats()
        assert stats.state is CircuitState.OPEN and stats.failure_count == 2
        assert (
            stats.next_attempt_time is not None and stats.next_attempt_time.tzinfo is timezone.utc
        )
        assert stats.last_failure_time is not None and stats.total_requests == 3
        clock.advance(10)
        # Half-open admits one probe at a time (defect 14: the service admitted every caller).
        gate = asyncio.Event()

        async def slow() -> int:
            await gate.wait()
            return 1

        probe = asyncio.ensure_future(b.call(slow))
        await asyncio.sleep(0)
        with pytest.raises(CircuitBreakerOpenError):
            await b.call(ok)
        gate.set()
        assert await probe == 1
        assert b.state is CircuitState.HALF_OPEN
        assert await b.call(ok, 7) == 7
        assert b.state is CircuitState.CLOSED
        stats = await b.get_stats()
        assert (stats.success_count, stats.total_successes, stats.total_failures) == (2, 2, 2)
        assert stats.model_dump(mode="json")["state"] == "closed"
        assert stats.dict()["last_success_time"] == stats.last_success_time

    asyncio.run(scenario())


def test_timeout_counts_even_when_not_an_expected_exception() -> None:
    async def scenario() -> None:
        b = breaker(ManualClock(T0), timeout=0.01, expected_exception=(KeyError,))

        async def hang() -> None:
            await asyncio.Event().wait()

        for _ in range(2):
            with pytest.raises(CircuitBreakerTimeoutError):
                await b.call(hang)
        assert b.state is CircuitState.OPEN
        # An exception not expected is neither a failure nor a success.
        b2 = breaker(ManualClock(T0), expected_exception=(KeyError,))
        for _ in range(3):
            with pytest.raises(ConnectionError):
                await b2.call(fail)
        assert b2.state is CircuitState.CLOSED

    asyncio.run(scenario())


def test_sync_functions_run_in_a_thread_and_fallback_gets_the_arguments() -> None:
    async def scenario() -> None:
        main = threading.get_ident()
        b = breaker(ManualClock(T0), fallback_function=lambda x: f"cached {x}")
        assert await b.call(lambda: threading.get_ident()) != main

        def broken(x: str) -> str:
            raise ConnectionError(x)

        for _ in range(2):
            with pytest.raises(ConnectionError):  # the fallback is not for the call's own errors
                await b.call(broken, "a")
        assert await b.call(broken, "room 12") == "cached room 12"

        async def async_fallback(x: str) -> str:
            return f"async {x}"

        b.config.fallback_function = async_fallback
        assert await b.call(broken, "y") == "async y"

    asyncio.run(scenario())


def test_manager_names_breakers_and_resets_them() -> None:
    async def scenario() -> None:
        manager = CircuitBreakerManager(clock=ManualClock(T0))
        b = manager.get_or_create_breaker(
            "vault_service", CircuitBreakerConfig(failure_threshold=1)
        )
        assert b.name == "vault_service" and manager.get_or_create_breaker("vault_service") is b
        with pytest.raises(ConnectionError):
            await b.call(fail)
        assert (await manager.get_all_stats())["vault_service"].state is CircuitState.OPEN
        await manager.reset_all()
        assert b.state is CircuitState.CLOSED
        # Breakers with one name may coexist (registered with replace=True).
        CircuitBreakerManager().get_or_create_breaker("vault_service")

    asyncio.run(scenario())


def test_the_decorator_registers_its_breaker() -> None:
    @circuit_breaker("livekit_service", failure_threshold=1, recovery_timeout=30)
    async def join(room: str) -> str:
        if room == "bad":
            raise ConnectionError(room)
        return room

    @circuit_breaker("sync_dep", failure_threshold=1)
    def lookup(x: int) -> int:
        return 1 // x

    async def scenario() -> None:
        assert await join("r1") == "r1"
        with pytest.raises(ConnectionError):
            await join("bad")
        with pytest.raises(CircuitBreakerOpenError):
            await join("r1")

    asyncio.run(scenario())
    assert seawall.breakers["livekit_service"] is join.circuit_breaker.breaker  # type: ignore[attr-defined]
    assert lookup(1) == 1
    with pytest.raises(ZeroDivisionError):
        lookup(0)
    with pytest.raises(CircuitBreakerOpenError):
        lookup(1)


def test_shared_state_through_redis(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        name = f"{redis_prefix}tts"
        config = CircuitBreakerConfig(name=name, failure_threshold=1, jitter=0.0)
        a = CircuitBreaker(config, redis_url)
        b = CircuitBreaker(
            CircuitBreakerConfig(name=name, failure_threshold=1, jitter=0.0), redis_url
        )
        with pytest.raises(ConnectionError):
            await a.call(fail)
        a.breaker.sync()
        b.breaker.sync()
        assert b.state is CircuitState.OPEN

    asyncio.run(scenario())


def test_bad_config() -> None:
    with pytest.raises(TypeError, match="config"):
        CircuitBreaker({"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        CircuitBreaker(CircuitBreakerConfig(name="x", timeout=-1))
