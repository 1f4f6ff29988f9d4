"""seawall.rate_limit: sync and async functions, keys, on_limit, the exceptions."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import pickle

import pytest

import seawall
from seawall import RateLimitExceeded, SeawallError, rate_limit
from seawall.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


def test_sync_function(clock: ManualClock) -> None:
    calls: list[int] = []

    @rate_limit("3/minute", clock=clock)
    def work(x: int) -> int:
        calls.append(x)
        return x * 2

    assert [work(i) for i in range(3)] == [0, 2, 4]
    with pytest.raises(RateLimitExceeded) as refused:
        work(3)
    assert calls == [0, 1, 2]
    error = refused.value
    assert error.retry_after == pytest.approx(20.0) and error.limit == 3 and error.key == "*"
    assert error.retry_after_seconds == 20
    assert "retry after 20.000 s" in str(error)
    clock.advance(20)
    assert work(4) == 8


def test_async_function_stays_a_coroutine_function(clock: ManualClock) -> None:
    @rate_limit("2/second", clock=clock)
    async def fetch(url: str, *, timeout: float = 1.0) -> str:
        """Fetch a URL."""
        await asyncio.sleep(0)
        return url

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetch a URL."
    assert str(inspect.signature(fetch)) == "(url: 'str', *, timeout: 'float' = 1.0) -> 'str'"

    async def scenario() -> None:
        assert await fetch("a") == "a"
        assert await fetch("b", timeout=2.0) == "b"
        with pytest.raises(RateLimitExceeded) as refused:
            await fetch("c")
        assert refused.value.retry_after == pytest.approx(0.5)
        clock.advance(0.5)
        assert await fetch("d") == "d"
        # a real coroutine: create_task accepts it
        clock.advance(0.5)
        assert await asyncio.create_task(fetch("e")) == "e"

    asyncio.run(scenario())


def test_sync_signature_is_kept() -> None:
    def original(a: int, b: str = "x") -> str:
        return b * a

    wrapped = rate_limit("10/second")(original)
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
    assert not inspect.iscoroutinefunction(wrapped)


def test_context_variable_key(clock: ManualClock) -> None:
    client: contextvars.ContextVar[str | None] = contextvars.ContextVar("client", default=None)

    @rate_limit("1/minute", key=client, clock=clock)
    async def handler() -> str:
        return "ok"

    async def as_client(name: str | None) -> str:
        if name is not None:
            client.set(name)
        try:
            return await handler()
        except RateLimitExceeded as error:
            return f"limited:{error.key}"

    async def scenario() -> None:
        # Each task runs in a copy of the context, as each request would.
        results = [await asyncio.create_task(as_client(n)) for n in ("a", "a", "b", None, None)]
        assert results == ["ok", "limited:a", "ok", "ok", "limited:unknown"]

    asyncio.run(scenario())


def test_key_function_of_the_arguments(clock: ManualClock) -> None:
    @rate_limit("1/minute", key=lambda user, **kwargs: f"user:{user}", clock=clock)
    def act(user: str, action: str = "read") -> str:
        return f"{user}:{action}"

    assert act("alice") == "alice:read"
    assert act("bob", action="write") == "bob:write"
    with pytest.raises(RateLimitExceeded) as refused:
        act("alice", action="write")
    assert refused.value.key == "user:alice"

    @rate_limit("1/minute", key=lambda: 42, clock=clock)  # type: ignore[arg-type,return-value]
    def bad() -> None:
        return None

    with pytest.raises(TypeError, match="key must return a str"):
        bad()


def test_on_limit_callable(clock: ManualClock) -> None:
    def fallback(error: RateLimitExceeded) -> dict[str, object]:
        return {"success": False, "rate_limited": True, "retry_after": error.retry_after_seconds}

    @rate_limit("1/minute", on_limit=fallback, clock=clock)
    def tool() -> dict[str, object]:
        return {"success": True}

    assert tool() == {"success": True}
    assert tool() == {"success": False, "rate_limited": True, "retry_after": 60}

    async def async_fallback(error: RateLimitExceeded) -> str:
        return f"later:{error.retry_after_seconds}"

    @rate_limit("1/minute", on_limit=async_fallback, clock=clock)
    async def async_tool() -> str:
        return "now"

    @rate_limit("1/minute", on_limit=lambda error: "sync fallback", clock=clock)
    async def async_tool_sync_fallback() -> str:
        return "now"

    async def scenario() -> None:
        assert await async_tool() == "now"
        assert await async_tool() == "later:60"
        assert await async_tool_sync_fallback() == "now"
        assert await async_tool_sync_fallback() == "sync fallback"

    asyncio.run(scenario())


def test_one_decorator_object_is_one_budget(clock: ManualClock) -> None:
    shared = rate_limit("2/minute", clock=clock)

    @shared
    def f() -> str:
        return "f"

    @shared
    def g() -> str:
        return "g"

    @rate_limit("2/minute", clock=clock)
    def h() -> str:
        return "h"

    assert f() == "f" and g() == "g"
    with pytest.raises(RateLimitExceeded):
        f()
    assert h() == "h"


def test_algorithms_and_tiers(clock: ManualClock) -> None:
    @rate_limit("2/second; 3/minute", algorithm="fixed_window", clock=clock)
    def tiered() -> None:
        return None

    tiered()
    tiered()
    with pytest.raises(RateLimitExceeded) as refused:
        tiered()
    assert refused.value.limit == 2
    clock.advance(1)
    tiered()
    with pytest.raises(RateLimitExceeded) as refused:
        tiered()
    assert refused.value.limit == 3


def test_follows_the_default_clock(seawall_clock: ManualClock) -> None:
    @rate_limit("1/hour")
    def hourly() -> str:
        return "ok"

    assert hourly() == "ok"
    with pytest.raises(RateLimitExceeded):
        hourly()
    seawall_clock.advance(3600)
    assert hourly() == "ok"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fortnight"):
        rate_limit("1/fortnight")
    with pytest.raises(ValueError, match="algorithm"):
        rate_limit("1/minute", algorithm="nope")
    with pytest.raises(TypeError, match="key"):
        rate_limit(key="user")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_limit"):
        rate_limit(on_limit="ignore")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="decorates a function"):
        rate_limit()(42)  # type: ignore[type-var]


def test_exceptions() -> None:
    assert issubclass(RateLimitExceeded, SeawallError) and issubclass(SeawallError, Exception)
    assert seawall.RateLimitExceeded is RateLimitExceeded
    error = RateLimitExceeded(1.25, 10, "user:1")
    again = pickle.loads(pickle.dumps(error))
    assert (again.retry_after, again.limit, again.key) == (1.25, 10, "user:1")
    assert RateLimitExceeded(1.0001, 1, "k").retry_after_seconds == 2
    assert RateLimitExceeded(0.0, 1, "k").retry_after_seconds == 1
    assert RateLimitExceeded(float("inf"), 1, "k").retry_after_seconds == 2**31 - 1
