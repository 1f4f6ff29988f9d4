"""Issue 5, item 4, as documentation: each defect reproduced in the Python breaker that has it,
next to seawall doing the right thing with the same calls.

Every test imports its library with ``pytest.importorskip``, so a missing library skips. They
are deterministic: the other libraries' clocks are replaced by hand-moved fakes where time
matters, and the only wait is pybreaker's serialisation test, bounded at a quarter second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import inspect
import itertools
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from seawall import CircuitBreaker
from seawall.testing import ManualClock

_names = itertools.count()


class Boom(Exception):
    pass


def seawall_breaker(clock: ManualClock, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("jitter", 0.0)
    return CircuitBreaker(f"test-others-{next(_names)}", clock=clock, **kwargs)


def boom() -> None:
    raise Boom


async def aboom() -> None:
    raise Boom


def swallow(call: Callable[[], object], *errors: type[BaseException]) -> None:
    with contextlib.suppress(*errors):
        call()


async def admitted_concurrently(guard: Callable[[Callable[[], Awaitable[str]]], Any]) -> int:
    """How many of 64 concurrent tasks get inside the guarded call at once.

    Each admitted call is held inside (on an event) until all 64 tasks have been admitted or
    rejected; then they are released and all are awaited.
    """
    release = asyncio.Event()
    inside = 0

    async def probe() -> str:
        nonlocal inside
        inside += 1
        await release.wait()
        return "probe"

    guarded = guard(probe)
    tasks = [asyncio.create_task(guarded()) for _ in range(64)]
    while inside + sum(t.done() for t in tasks) < 64:
        await asyncio.sleep(0)
    admitted = inside
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return admitted


def seawall_half_open_admits(max_calls: int = 1) -> int:
    clock = ManualClock(1_000_000.0)
    b = seawall_breaker(
        clock, failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=max_calls
    )
    swallow(lambda: b.call(boom), Boom)
    clock.advance(2)
    assert b.state == "half_open"
    return asyncio.run(admitted_concurrently(b))


# --------------------------------------------------------------------------------------------
# pybreaker


def test_pybreaker_counts_an_unawaited_coroutine_as_a_success() -> None:
    pybreaker = pytest.importorskip("pybreaker")
    cb = pybreaker.CircuitBreaker(fail_max=1)

    @cb  # type: ignore[untyped-decorator]
    async def failing() -> None:
        raise Boom

    assert not inspect.iscoroutinefunction(failing)  # pybreaker's wrapper is sync
    for _ in range(3):
        with pytest.raises(Boom):
            asyncio.run(failing())  # the wrapper returned the coroutine: "success"
    assert cb.current_state == "closed"
    assert cb.fail_counter == 0

    sw = seawall_breaker(ManualClock(), failure_threshold=1)
    failing_sw = sw(aboom)
    assert inspect.iscoroutinefunction(failing_sw)
    with pytest.raises(Boom):
        asyncio.run(failing_sw())
    assert sw.state == "open"

    # The same shape reaching seawall through a sync callable (a lambda, a sync decorator under
    # ``@breaker``): the coroutine it returns is counted when it is awaited.
    sw_sync = seawall_breaker(ManualClock(), failure_threshold=1)
    via_lambda = sw_sync(lambda: aboom())
    assert not inspect.iscoroutinefunction(via_lambda)
    with pytest.raises(Boom):
        asyncio.run(via_lambda())
    assert sw_sync.state == "open"


def test_pybreaker_serialises_every_thread_through_one_lock() -> None:
    pybreaker = pytest.importorskip("pybreaker")

    def two_threads_meet(
        guard: Callable[[Callable[[], int]], Callable[[], int]], wait: float
    ) -> str:
        barrier = threading.Barrier(2, timeout=wait)  # passes only if both are inside at once
        guarded = guard(barrier.wait)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(guarded) for _ in range(2)]
            errors = [f.exception() for f in futures]
        if all(e is None for e in errors):
            return "met"
        assert all(isinstance(e, threading.BrokenBarrierError) for e in errors), errors
        return "never met"

    cb = pybreaker.CircuitBreaker(fail_max=100)
    # pybreaker holds its lock while the call runs: the second thread waits outside until the
    # first gives up at the barrier's timeout.
    assert two_threads_meet(cb, wait=0.25) == "never met"

    sw = seawall_breaker(ManualClock())
    assert two_threads_meet(sw, wait=10) == "met"


def test_pybreaker_excluded_exception_resets_the_failure_count() -> None:
    pybreaker = pytest.importorskip("pybreaker")

    def business_error() -> None:
        raise LookupError("no such row")  # excluded: the dependency is fine

    cb = pybreaker.CircuitBreaker(fail_max=2, exclude=[LookupError])
    swallow(lambda: cb.call(boom), Boom)
    swallow(lambda: cb.call(business_error), LookupError)
    swallow(lambda: cb.call(boom), Boom)
    assert cb.current_state == "closed"  # the excluded error passed for a success ...
    assert cb.fail_counter == 1  # ... and wiped the first failure

    sw = seawall_breaker(ManualClock(), failure_threshold=2, excluded_exceptions=LookupError)
    swallow(lambda: sw.call(boom), Boom)
    swallow(lambda: sw.call(business_error), LookupError)
    swallow(lambda: sw.call(boom), Boom)
    assert sw.state == "open"


def test_pybreaker_counts_keyboard_interrupt_as_a_failure_and_replaces_it() -> None:
    pybreaker = pytest.importorskip("pybreaker")

    def interrupted() -> None:
        raise KeyboardInterrupt

    cb = pybreaker.CircuitBreaker(fail_max=1)
    with pytest.raises(pybreaker.CircuitBreakerError):  # Ctrl-C became a breaker error
        cb.call(interrupted)
    assert cb.current_state == "open"

    sw = seawall_breaker(ManualClock(), failure_threshold=1)
    with pytest.raises(KeyboardInterrupt):
        sw.call(interrupted)
    assert sw.state == "closed"


# --------------------------------------------------------------------------------------------
# circuitbreaker


def test_circuitbreaker_lets_every_concurrent_caller_through_in_half_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    circuitbreaker = pytest.importorskip("circuitbreaker")
    now = [1000.0]
    monkeypatch.setattr(circuitbreaker, "monotonic", lambda: now[0])
    cb = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=1, name="others-cb")
    swallow(lambda: cb.call(boom), Boom)
    assert cb.state == "open"
    now[0] += 2
    assert cb.state == "half_open"
    assert asyncio.run(admitted_concurrently(cb)) == 64

    assert seawall_half_open_admits(1) == 1


def test_circuitbreaker_resets_the_failure_count_on_cancellation_and_interrupts() -> None:
    circuitbreaker = pytest.importorskip("circuitbreaker")

    def interrupted() -> None:
        raise KeyboardInterrupt

    async def cancelled() -> None:
        raise asyncio.CancelledError

    cb = circuitbreaker.CircuitBreaker(failure_threshold=3, name="others-cb-cancel")
    swallow(lambda: cb.call(boom), Boom)
    assert cb.failure_count == 1
    swallow(lambda: cb.call(interrupted), KeyboardInterrupt)
    assert cb.failure_count == 0  # Ctrl-C was taken for a success
    swallow(lambda: cb.call(boom), Boom)
    swallow(lambda: asyncio.run(cb.call_async(cancelled)), asyncio.CancelledError)
    assert cb.failure_count == 0  # so was a cancellation
    swallow(lambda: cb.call(boom), Boom)
    assert cb.state == "closed"  # three failures, never three in a row

    sw = seawall_breaker(ManualClock(), failure_threshold=3)
    swallow(lambda: sw.call(boom), Boom)
    swallow(lambda: sw.call(interrupted), KeyboardInterrupt)
    swallow(lambda: sw.call(boom), Boom)
    swallow(lambda: asyncio.run(sw.acall(cancelled)), asyncio.CancelledError)
    assert sw.stats()["consecutive_failures"] == 2  # neither success nor failure
    swallow(lambda: sw.call(boom), Boom)
    assert sw.state == "open"


# --------------------------------------------------------------------------------------------
# aiobreaker


class _FakeDatetime(dt.datetime):
    """aiobreaker reads ``datetime.utcnow()`` / ``datetime.now()``: a clock moved by hand."""

    at = dt.datetime(2030, 1, 1)

    @classmethod
    def utcnow(cls) -> _FakeDatetime:
        return cls.fromtimestamp(cls.at.timestamp())

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _FakeDatetime:
        return cls.fromtimestamp(cls.at.timestamp(), tz)


def test_aiobreaker_lets_every_concurrent_caller_through_in_half_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aiobreaker = pytest.importorskip("aiobreaker")
    for module in ("aiobreaker.circuitbreaker", "aiobreaker.state"):
        monkeypatch.setattr(f"{module}.datetime", _FakeDatetime)
    cb = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=dt.timedelta(seconds=1))

    async def trip() -> None:
        with pytest.raises(aiobreaker.CircuitBreakerError):
            await cb.call_async(aboom)

    asyncio.run(trip())
    monkeypatch.setattr(_FakeDatetime, "at", _FakeDatetime.at + dt.timedelta(seconds=2))
    assert asyncio.run(admitted_concurrently(cb)) == 64

    assert seawall_half_open_admits(1) == 1


def test_aiobreaker_excluded_exception_resets_the_failure_count() -> None:
    aiobreaker = pytest.importorskip("aiobreaker")

    async def business_error() -> None:
        raise LookupError

    async def scenario(call: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]) -> None:
        for fn in (aboom, business_error, aboom):
            with contextlib.suppress(Boom, LookupError):
                await call(fn)

    cb = aiobreaker.CircuitBreaker(fail_max=2, exclude=[LookupError])
    asyncio.run(scenario(cb.call_async))
    assert cb.fail_counter == 1  # the excluded error wiped the first failure
    assert cb.current_state == aiobreaker.CircuitBreakerState.CLOSED

    sw = seawall_breaker(ManualClock(), failure_threshold=2, excluded_exceptions=LookupError)
    asyncio.run(scenario(sw.acall))
    assert sw.state == "open"  # two failures, the excluded error between them counts as neither


# --------------------------------------------------------------------------------------------
# purgatory


def test_purgatory_lets_every_concurrent_caller_through_in_half_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    purgatory = pytest.importorskip("purgatory")
    model = pytest.importorskip("purgatory.domain.model")
    now = [1000.0]
    monkeypatch.setattr(model, "time", types.SimpleNamespace(time=lambda: now[0]))
    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=1)

    def guard(fn: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[str]]:
        return factory("others-purgatory")(fn)  # type: ignore[no-any-return]

    async def scenario() -> int:
        with pytest.raises(Boom):
            await guard(aboom)()  # type: ignore[arg-type]
        now[0] += 2
        return await admitted_concurrently(guard)

    assert asyncio.run(scenario()) == 64

    assert seawall_half_open_admits(1) == 1


def test_purgatory_counts_a_cancelled_call_as_a_failure() -> None:
    purgatory = pytest.importorskip("purgatory")
    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=1)

    async def scenario(guard: Callable[[Callable[[], Awaitable[None]]], Any]) -> None:
        entered = asyncio.Event()

        async def hangs() -> None:
            entered.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(guard(hangs)())
        await entered.wait()
        task.cancel()  # the caller went away: nothing is wrong with the dependency
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario(factory("others-purgatory-cancel")))
    brk = asyncio.run(factory.get_breaker("others-purgatory-cancel"))
    assert brk.context.state == "opened"

    sw = seawall_breaker(ManualClock(), failure_threshold=1)
    asyncio.run(scenario(sw))
    assert sw.state == "closed"
    assert sw.stats()["ignored"] == 1
