"""seawall.CircuitBreaker: transitions, windows, classification, every way to use it, listeners,
the registry, control, bad arguments, and issue 5's list of what other breakers get wrong.

Every time-dependent behaviour runs on a ManualClock; nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import inspect
import itertools
import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import seawall
from seawall import CircuitBreaker, CircuitOpenError, SeawallError, breakers
from seawall.testing import ManualClock

START = 1_000_000.0  # a whole second, so the time window's one-second buckets are predictable
STATS_KEYS = {
    "name",
    "state",
    "calls",
    "successes",
    "failures",
    "ignored",
    "slow_calls",
    "rejections",
    "opened_count",
    "consecutive_failures",
    "time_closed",
    "time_open",
    "transitions_to_closed",
    "transitions_to_open",
    "transitions_to_half_open",
    "time_half_open",
    "last_transition",
}

_names = itertools.count()


class Boom(Exception):
    pass


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def make(clock: ManualClock | None, **kwargs: Any) -> CircuitBreaker:
    """A breaker with a fresh name and no jitter (exact open times), on ``clock``."""
    kwargs.setdefault("jitter", 0.0)
    return CircuitBreaker(f"test-breaker-{next(_names)}", clock=clock, **kwargs)


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom("down")


def succeed(b: CircuitBreaker) -> None:
    assert b.call(ok) == "ok"


def fail(b: CircuitBreaker, exc: BaseException | None = None) -> None:
    def raiser() -> None:
        raise exc if exc is not None else Boom("down")

    with pytest.raises(type(exc) if exc is not None else Boom):
        b.call(raiser)


def trip(b: CircuitBreaker, failures: int = 5) -> None:
    for _ in range(failures):
        fail(b)
    assert b.state == "open"


def rejected(b: CircuitBreaker) -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    return info.value


# --------------------------------------------------------------------------------------------
# Transitions


def test_opens_after_failure_threshold_consecutive_failures(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=3)
    fail(b)
    fail(b)
    succeed(b)  # a success ends the run of failures
    assert b.stats()["consecutive_failures"] == 0
    fail(b)
    fail(b)
    assert b.state == "closed"
    fail(b)
    assert b.state == "open"
    assert b.stats()["last_transition"]["reason"] == "failure_threshold"

    calls = []
    guarded = b(lambda: calls.append(1))
    with pytest.raises(CircuitOpenError) as info:
        guarded()
    assert calls == []  # a rejected call never runs
    assert info.value.name == b.name
    assert info.value.retry_after == 30.0
    assert isinstance(info.value, SeawallError)
    assert b.name in str(info.value) and "30.000" in str(info.value)
    assert info.value.retry_after_seconds == 30


def test_recovery_timeout_moves_open_to_half_open(clock: ManualClock) -> None:
    b = make(clock, recovery_timeout=30.0)
    trip(b)
    clock.advance(29.5)
    assert b.state == "open"
    assert b.retry_after == pytest.approx(0.5)
    assert rejected(b).retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert b.state == "half_open"
    assert b.retry_after == 0.0
    succeed(b)  # the probe
    assert b.state == "closed"
    assert b.stats()["last_transition"]["reason"] == "probes_succeeded"


def test_success_threshold_probes_close_it(clock: ManualClock) -> None:
    b = make(clock, success_threshold=3, recovery_timeout=10.0)
    trip(b)
    clock.advance(10)
    succeed(b)
    assert b.state == "half_open"
    succeed(b)
    assert b.state == "half_open"
    succeed(b)
    assert b.state == "closed"


def test_failed_probe_reopens_with_exponential_backoff_up_to_the_cap(clock: ManualClock) -> None:
    b = make(clock, recovery_timeout=10.0, backoff_multiplier=2.0, max_recovery_timeout=35.0)
    trip(b)
    assert b.retry_after == 10.0
    for expected in (20.0, 35.0, 35.0):  # 10 * 2, 10 * 4 capped at 35, still capped
        clock.advance(b.retry_after)
        assert b.state == "half_open"
        fail(b)  # the probe fails
        assert b.state == "open"
        assert b.stats()["last_transition"]["reason"] == "probe_failed"
        assert b.retry_after == expected
        assert rejected(b).retry_after == expected
    clock.advance(35)
    succeed(b)
    assert b.state == "closed"
    trip(b)  # closing cleared the backoff
    assert b.retry_after == 10.0


def test_jitter_varies_the_open_time_within_its_fraction(clock: ManualClock) -> None:
    seen = set()
    for _ in range(20):
        b = make(clock, failure_threshold=1, recovery_timeout=10.0, jitter=0.2)
        fail(b)
        retry = b.retry_after
        assert 8.0 <= retry <= 12.0
        seen.add(retry)
        clock.advance(0.001)
    assert len(seen) > 1


def test_probe_timeout_frees_a_hung_probes_slot(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=10.0, probe_timeout=5.0)
    release = asyncio.Event()
    entered = asyncio.Event()

    @b
    async def hangs() -> str:
        entered.set()
        await release.wait()
        return "late"

    @b
    async def quick() -> str:
        return "quick"

    async def scenario() -> None:
        fail(b)
        clock.advance(10)
        probe = asyncio.create_task(hangs())
        await entered.wait()
        assert b.state == "half_open"
        with pytest.raises(CircuitOpenError) as info:
            await quick()  # the only slot is taken
        assert info.value.retry_after == 5.0
        clock.advance(5)  # the hung probe's slot is freed
        assert await quick() == "quick"  # a new probe, which closes the breaker
        assert b.state == "closed"
        release.set()
        assert await probe == "late"  # reported late: counted, but it moves nothing
        assert b.state == "closed"
        assert b.stats()["calls"] == 3

    asyncio.run(scenario())


# --------------------------------------------------------------------------------------------
# Rate windows and slow calls


def test_count_window_failure_rate_needs_minimum_calls(clock: ManualClock) -> None:
    b = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=10, minimum_calls=10
    )
    for i in range(9):  # 5 failures in 9 calls: above the rate, below minimum_calls
        fail(b) if i % 2 == 0 else succeed(b)
    assert b.state == "closed"
    succeed(b)  # 5 of 10
    assert b.state == "open"
    assert b.stats()["last_transition"]["reason"] == "failure_rate"


def test_count_window_slides(clock: ManualClock) -> None:
    b = make(
        clock, failure_threshold=100, failure_rate_threshold=0.75, window_size=4, minimum_calls=4
    )
    for outcome in "FFSSSSFF":  # the window holds S S F F: 0.5
        fail(b) if outcome == "F" else succeed(b)
    assert b.state == "closed"
    fail(b)  # S F F F: 0.75
    assert b.state == "open"


def test_time_window_forgets_old_calls(clock: ManualClock) -> None:
    b = make(
        clock,
        failure_threshold=100,
        failure_rate_threshold=0.5,
        window_type="time",
        window_duration=10.0,
        minimum_calls=4,
    )
    for _ in range(3):
        fail(b)
    clock.advance(11)  # those three have left the window
    succeed(b)  # had they not: 3 failures of 4 calls, open
    assert b.state == "closed"
    succeed(b)
    fail(b)
    assert b.state == "closed"  # 1 of 3 calls, below minimum_calls
    fail(b)  # 2 of 4
    assert b.state == "open"
    assert b.stats()["last_transition"]["reason"] == "failure_rate"


def test_slow_call_rate_measured_on_the_breakers_clock(clock: ManualClock) -> None:
    b = make(
        clock,
        slow_call_rate_threshold=0.5,
        slow_call_duration=1.0,
        window_size=4,
        minimum_calls=4,
    )

    @b
    def slow() -> None:
        clock.advance(1.0)  # "takes" a second: exactly the slow-call duration

    @b
    def fast() -> None:
        clock.advance(0.999)

    fast()
    slow()
    fast()
    assert b.state == "closed"
    assert b.stats()["slow_calls"] == 1
    slow()  # 2 of 4
    assert b.state == "open"
    assert b.stats()["last_transition"]["reason"] == "slow_call_rate"
    assert b.stats()["slow_calls"] == 2


def test_slow_calls_async_and_failing_and_with_blocks(clock: ManualClock) -> None:
    b = make(clock, slow_call_rate_threshold=1.0, slow_call_duration=0.5, minimum_calls=3)

    @b
    async def slow_failure() -> None:
        clock.advance(0.5)
        raise Boom

    async def scenario() -> None:
        with pytest.raises(Boom):
            await slow_failure()
        async with b:
            clock.advance(2)
        with b:
            clock.advance(0.75)

    asyncio.run(scenario())
    stats = b.stats()
    assert stats["slow_calls"] == 3
    assert stats["state"] == "open"
    assert stats["last_transition"]["reason"] == "slow_call_rate"


def test_slow_calls_follow_the_default_manual_clock(seawall_clock: ManualClock) -> None:
    b = make(None, slow_call_rate_threshold=1.0, slow_call_duration=2.0, minimum_calls=1)
    b.call(seawall_clock.advance, 2.0)
    assert b.stats()["slow_calls"] == 1
    assert b.state == "open"


# --------------------------------------------------------------------------------------------
# What counts as a failure


def test_expected_and_excluded_exceptions(clock: ManualClock) -> None:
    b = make(
        clock,
        failure_threshold=2,
        expected_exceptions=(ConnectionError, TimeoutError),
        excluded_exceptions=ConnectionRefusedError,  # a subclass of ConnectionError: excluded wins
    )
    fail(b, ConnectionResetError())  # expected
    fail(b, ConnectionRefusedError())  # excluded: neither
    fail(b, ValueError())  # not expected: neither
    fail(b, LookupError())
    stats = b.stats()
    assert (stats["failures"], stats["ignored"], stats["successes"]) == (1, 3, 0)
    assert stats["consecutive_failures"] == 1  # "neither" does not end the run of failures
    assert b.state == "closed"
    fail(b, TimeoutError())
    assert b.state == "open"


def test_a_single_exception_class_is_accepted(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, expected_exceptions=KeyError)
    fail(b, IndexError())
    assert b.state == "closed"
    fail(b, KeyError())
    assert b.state == "open"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_count_as_neither(clock: ManualClock, exc_type: type) -> None:
    b = make(clock, failure_threshold=2)
    fail(b)
    fail(b, exc_type())  # propagates, counts as neither
    stats = b.stats()
    assert (stats["failures"], stats["successes"], stats["ignored"]) == (1, 0, 1)
    assert stats["consecutive_failures"] == 1  # not reset (pybreaker / circuitbreaker reset it)
    fail(b)
    assert b.state == "open"


def test_cancelled_call_counts_as_neither(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=2)
    entered = asyncio.Event()

    @b
    async def hangs() -> None:
        entered.set()
        await asyncio.Event().wait()

    async def scenario() -> None:
        fail(b)
        task = asyncio.create_task(hangs())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = b.stats()
        assert (stats["failures"], stats["ignored"], stats["consecutive_failures"]) == (1, 1, 1)
        assert b.state == "closed"

    asyncio.run(scenario())


def test_cancelled_probe_frees_its_slot_without_deciding(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=1.0)
    entered = asyncio.Event()

    @b
    async def hangs() -> None:
        entered.set()
        await asyncio.Event().wait()

    async def scenario() -> None:
        fail(b)
        clock.advance(1)
        task = asyncio.create_task(hangs())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert b.state == "half_open"  # neither re-opened nor closed
        succeed(b)  # the freed slot takes the next probe
        assert b.state == "closed"

    asyncio.run(scenario())


def test_async_timeout_is_a_failure(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, timeout=0.001, expected_exceptions=KeyError)

    @b
    async def hangs() -> None:
        await asyncio.Event().wait()

    async def never() -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        asyncio.run(hangs())
    assert b.state == "open"  # even though TimeoutError is not an expected exception
    b.reset()
    with pytest.raises(TimeoutError):
        asyncio.run(b.acall(never))
    assert b.state == "open"


def test_own_timeout_error_is_classified_like_any_exception(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, timeout=0.001, excluded_exceptions=TimeoutError)

    @b
    async def raises_timeout() -> None:
        raise TimeoutError("the guarded code's own")

    @b
    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        asyncio.run(raises_timeout())
    assert (b.state, b.stats()["ignored"]) == ("closed", 1)  # excluded
    with pytest.raises(TimeoutError):
        asyncio.run(hangs())
    assert b.state == "open"  # the breaker's own timeout is always a failure


def test_timeout_does_not_touch_sync_calls_or_fast_async_ones(clock: ManualClock) -> None:
    b = make(clock, timeout=5.0)

    @b
    async def fast() -> str:
        return "fast"

    assert asyncio.run(fast()) == "fast"
    assert b.call(ok) == "ok"
    assert b.stats()["successes"] == 2


# --------------------------------------------------------------------------------------------
# Fallback


def test_fallback_answers_rejected_calls(clock: ManualClock) -> None:
    def fallback(*args: Any, **kwargs: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        return ("fallback", args, kwargs)

    async def async_fallback(*args: Any, **kwargs: Any) -> str:
        return f"async fallback {args} {kwargs}"

    b = make(clock, fallback=fallback)
    ab = make(clock, fallback=async_fallback)

    @b
    def get(key: str, *, default: int = 0) -> object:
        return "real"

    @b
    async def aget(key: str) -> object:
        return "real"

    @ab
    async def aget2(key: str) -> object:
        return "real"

    assert get("k") == "real"
    b.force_open()
    ab.force_open()
    assert get("k", default=1) == ("fallback", ("k",), {"default": 1})
    assert asyncio.run(aget("k")) == ("fallback", ("k",), {})
    assert asyncio.run(aget2("k")) == "async fallback ('k',) {}"
    assert b.call(ok) == ("fallback", (), {})  # type: ignore[comparison-overlap]
    assert asyncio.run(b.acall(ok)) == ("fallback", (), {})  # type: ignore[comparison-overlap]
    assert asyncio.run(ab.acall(ok)) == "async fallback () {}"
    with pytest.raises(CircuitOpenError), b:  # a with block has no value to fall back to
        pass
    assert b.stats()["rejections"] == 5


def test_fallback_is_not_used_for_failures(clock: ManualClock) -> None:
    b = make(clock, fallback=lambda: "fallback")
    with pytest.raises(Boom):
        b.call(boom)


# --------------------------------------------------------------------------------------------
# Ways to use it


def test_decorator_sync_keeps_the_signature_and_counts(clock: ManualClock) -> None:
    b = make(clock)

    @b
    def add(a: int, b: int = 2) -> int:
        """Adds."""
        return a + b

    assert add(1) == 3
    assert add(1, b=5) == 6
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert inspect.signature(add) == inspect.signature(add.__wrapped__)  # type: ignore[attr-defined]
    assert not inspect.iscoroutinefunction(add)
    with pytest.raises(Boom):
        b(boom)()
    assert (b.stats()["successes"], b.stats()["failures"]) == (2, 1)


def test_decorator_keeps_every_parameter_kind(clock: ManualClock) -> None:
    b = make(clock, fallback=lambda *args, **kwargs: ("fallback", args, kwargs))
    marker: list[int] = []

    @b
    def f(a: int, /, b: int, c: list[int] = marker, *, d: int, e: int = 5) -> tuple[Any, ...]:
        return (a, b, c, d, e)

    @b
    def clashing(permit: int, result: int, exc: int, func: int = 0) -> int:
        return permit + result + exc + func  # names the wrapper must not take for its own

    @b
    def star(*args: int, **kwargs: int) -> tuple[Any, ...]:
        return (args, kwargs)

    @b
    def reserved(_sw_permit: int) -> int:
        return _sw_permit

    assert f(1, 2, d=4) == (1, 2, marker, 4, 5)
    assert f(1, b=2, c=[], d=4, e=6) == (1, 2, [], 4, 6)
    assert f(1, 2, d=4)[2] is marker  # the default object itself
    assert inspect.signature(f) == inspect.signature(f.__wrapped__)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        f(a=1, b=2, d=4)  # type: ignore[call-arg]  # a is positional-only
    with pytest.raises(TypeError):
        f(1, 2)  # type: ignore[call-arg]  # d is required
    assert b.stats()["calls"] == 3  # a call that cannot bind never reaches the breaker
    assert clashing(1, 2, 3, func=4) == 10
    assert star(1, 2, x=3) == ((1, 2), {"x": 3})
    assert reserved(7) == 7
    b.force_open()
    assert f(1, 2, d=4) == ("fallback", (1, 2, marker), {"d": 4, "e": 5})
    assert star(1, x=3) == ("fallback", (1,), {"x": 3})


def test_wrapper_lines_show_in_tracebacks(clock: ManualClock) -> None:
    import traceback

    b = make(clock)

    @b
    def f() -> None:
        raise Boom

    try:
        f()
    except Boom:
        text = traceback.format_exc()
    assert "_sw_result = _sw_func()" in text


def test_decorator_on_methods(clock: ManualClock) -> None:
    b = make(clock)

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @b
        def get(self) -> int:
            self.calls += 1
            return self.calls

        @b
        async def aget(self) -> int:
            return 7

    c = Client()
    assert c.get() == 1
    assert asyncio.run(c.aget()) == 7
    assert b.stats()["successes"] == 2


def test_async_def_is_guarded_as_a_coroutine(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1)

    @b
    async def failing() -> None:
        await asyncio.sleep(0)
        raise Boom

    assert inspect.iscoroutinefunction(failing)
    coro = failing()
    assert inspect.iscoroutine(coro)
    coro.close()  # made but never run: nothing to count
    assert b.stats()["calls"] == 0
    with pytest.raises(Boom):
        asyncio.run(failing())
    assert b.stats()["failures"] == 1  # counted when awaited, as the failure it is
    assert b.state == "open"


def test_async_callable_object_is_guarded_as_async(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1)

    class Fetch:
        async def __call__(self) -> None:
            raise Boom

    guarded = b(Fetch())
    assert inspect.iscoroutinefunction(guarded)
    with pytest.raises(Boom):
        asyncio.run(guarded())
    assert b.state == "open"


def test_generator_functions_are_refused(clock: ManualClock) -> None:
    b = make(clock)

    def gen() -> Iterator[int]:
        yield 1

    async def agen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        b(gen)
    with pytest.raises(TypeError, match="generator"):
        b(agen)
    with pytest.raises(TypeError, match="callable"):
        b(42)  # type: ignore[arg-type]


def test_with_and_async_with(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=2)
    with b as entered:
        assert entered is b
    with pytest.raises(Boom), b:
        raise Boom

    async def scenario() -> None:
        async with b:
            pass
        with pytest.raises(Boom):
            async with b:
                raise Boom

    asyncio.run(scenario())
    stats = b.stats()
    assert (stats["successes"], stats["failures"], stats["state"]) == (2, 2, "closed")
    with pytest.raises(Boom), b:
        raise Boom
    assert b.state == "open"
    with pytest.raises(CircuitOpenError), b:
        pytest.fail("a rejected block must not run")


def test_nested_with_blocks_of_two_breakers(clock: ManualClock) -> None:
    outer, inner = make(clock), make(clock)
    with pytest.raises(Boom), outer:
        with inner:
            pass
        raise Boom
    assert (outer.stats()["failures"], inner.stats()["successes"]) == (1, 1)


def test_with_blocks_closed_out_of_order(clock: ManualClock) -> None:
    a, b = make(clock), make(clock)
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)  # not the innermost: found below b's
    b.__exit__(Boom, Boom(), None)
    assert (a.stats()["successes"], b.stats()["failures"]) == (1, 1)
    with pytest.raises(RuntimeError, match="without __enter__"):
        a.__exit__(None, None, None)


def test_concurrent_async_with_blocks_keep_their_own_permits(clock: ManualClock) -> None:
    # Two probes held at once by two tasks; each reports its own permit, so both count and
    # the breaker closes (a mixed-up permit would be reported twice and count once).
    b = make(
        clock, failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=2, success_threshold=2
    )
    fail(b)
    clock.advance(1)
    first_in, second_out = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with b:
            first_in.set()
            await second_out.wait()

    async def second() -> None:
        await first_in.wait()
        async with b:
            pass
        assert b.state == "half_open"
        second_out.set()

    async def scenario() -> None:
        await asyncio.gather(first(), second())

    asyncio.run(scenario())
    assert b.state == "closed"


def test_call_and_acall(clock: ManualClock) -> None:
    b = make(clock)

    async def aadd(a: int, *, b: int) -> int:
        return a + b

    def add(a: int, *, b: int) -> int:
        return a + b

    assert b.call(add, 1, b=2) == 3
    assert asyncio.run(b.acall(aadd, 1, b=2)) == 3
    assert asyncio.run(b.acall(add, 1, b=3)) == 4  # a sync fn is simply called
    with pytest.raises(Boom):
        b.call(boom)

    async def aboom() -> None:
        raise Boom

    with pytest.raises(Boom):
        asyncio.run(b.acall(aboom))
    stats = b.stats()
    assert (stats["successes"], stats["failures"]) == (3, 2)


def test_call_refuses_an_async_function(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1)

    async def aboom() -> None:
        raise Boom

    with pytest.raises(TypeError, match="acall"):
        _ = b.call(aboom)  # the coroutine is closed, not counted as a success
    stats = b.stats()
    assert (stats["successes"], stats["failures"], stats["ignored"]) == (0, 0, 1)


# --------------------------------------------------------------------------------------------
# Listeners


def test_listeners_hear_every_transition(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=2, recovery_timeout=5.0)
    heard: list[tuple[CircuitBreaker, str, str, str]] = []

    def listener(breaker: CircuitBreaker, old: str, new: str, reason: str) -> None:
        heard.append((breaker, old, new, reason))

    b.add_listener(listener)
    fail(b)
    assert heard == []
    fail(b)
    assert heard == [(b, "closed", "open", "failure_threshold")]
    clock.advance(5)
    assert b.state == "half_open"  # reading the state notices the time-driven change
    fail(b)
    clock.advance(10)
    succeed(b)  # open -> half_open at acquire, half_open -> closed at record
    b.force_open()
    b.force_closed()
    b.reset()
    assert [h[1:] for h in heard[1:]] == [
        ("open", "half_open", "recovery_timeout"),
        ("half_open", "open", "probe_failed"),
        ("open", "half_open", "recovery_timeout"),
        ("half_open", "closed", "probes_succeeded"),
        ("closed", "open", "forced_open"),
        ("open", "closed", "forced_closed"),
        ("closed", "closed", "reset"),
    ]
    b.remove_listener(listener)
    trip(b, 2)
    assert len(heard) == 8
    with pytest.raises(ValueError):
        b.remove_listener(listener)
    with pytest.raises(TypeError, match="callable"):
        b.add_listener(42)  # type: ignore[arg-type]


def test_listeners_hear_changes_in_every_usage_form(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=1.0)
    heard: list[str] = []
    b.add_listener(lambda _b, old, new, reason: heard.append(f"{old}>{new}"))

    @b
    async def aboom() -> None:
        raise Boom

    with pytest.raises(Boom):
        asyncio.run(aboom())
    clock.advance(1)
    with b:
        pass
    with pytest.raises(Boom):
        asyncio.run(b.acall(aboom))
    clock.advance(2)
    asyncio.run(b.acall(ok))
    assert heard == [
        "closed>open",
        "open>half_open",
        "half_open>closed",
        "closed>open",
        "open>half_open",
        "half_open>closed",
    ]


def test_a_listener_added_later_hears_only_later_changes(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1)
    fail(b)
    heard: list[str] = []
    b.add_listener(lambda _b, old, new, reason: heard.append(reason))
    assert b.state == "open"
    assert heard == []
    b.reset()
    assert heard == ["reset"]


def test_a_failing_listener_is_logged_and_never_raised(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    b = make(clock, failure_threshold=1)
    heard: list[str] = []

    def broken(_b: CircuitBreaker, old: str, new: str, reason: str) -> None:
        raise RuntimeError("listener bug")

    b.add_listener(broken)
    b.add_listener(lambda _b, old, new, reason: heard.append(new))
    with caplog.at_level(logging.ERROR, logger="seawall.breaker"):
        fail(b)  # Boom propagates, not the listener's RuntimeError
    assert heard == ["open"]  # the other listener still ran
    [record] = caplog.records
    assert record.name == "seawall.breaker"
    assert b.name in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_listener_may_use_the_breaker(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1)
    seen: list[Any] = []
    b.add_listener(lambda br, old, new, reason: seen.append((br.state, br.stats()["state"])))
    fail(b)
    assert seen == [("open", "open")]


# --------------------------------------------------------------------------------------------
# Registry


def test_registry(clock: ManualClock) -> None:
    gc.collect()  # earlier tests' breakers caught in reference cycles leave now, not midway
    before = len(breakers)
    b = make(clock)
    assert len(breakers) == before + 1
    assert breakers.get(b.name) is b
    assert breakers[b.name] is b
    assert b.name in breakers and b in breakers
    assert breakers.all()[b.name] is b
    assert b in list(breakers)
    assert breakers.stats()[b.name] == b.stats()
    assert seawall.breakers is breakers
    assert breakers.get("no such breaker") is None
    assert "no such breaker" not in breakers
    with pytest.raises(KeyError):
        breakers["no such breaker"]
    names = list(breakers.all())
    assert names == sorted(names)
    assert [x.name for x in breakers] == names


def test_registry_names_are_unique_unless_replaced(clock: ManualClock) -> None:
    name = f"test-breaker-unique-{next(_names)}"
    first = CircuitBreaker(name, clock=clock)
    with pytest.raises(ValueError, match="replace=True"):
        CircuitBreaker(name, clock=clock)
    assert breakers[name] is first
    second = CircuitBreaker(name, clock=clock, replace=True)
    assert breakers[name] is second
    assert first not in breakers


def test_registry_holds_breakers_weakly(clock: ManualClock) -> None:
    name = f"test-breaker-weak-{next(_names)}"
    b = CircuitBreaker(name, clock=clock)

    @b
    def f() -> None:
        pass

    del b
    gc.collect()
    assert name in breakers  # the decorated function keeps it alive
    del f
    gc.collect()
    assert name not in breakers
    CircuitBreaker(name, clock=clock)  # the name is free again


def test_a_breaker_that_fails_to_build_takes_no_name(clock: ManualClock) -> None:
    name = f"test-breaker-bad-{next(_names)}"
    with pytest.raises(ValueError):
        CircuitBreaker(name, failure_threshold=0)
    assert name not in breakers
    CircuitBreaker(name, clock=clock)


# --------------------------------------------------------------------------------------------
# Statistics and control


def test_stats_keys_and_values(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=2, recovery_timeout=3.0)
    stats = b.stats()
    assert set(stats) == STATS_KEYS
    assert stats["name"] == b.name
    assert stats["state"] == "closed"
    assert stats["last_transition"] is None
    succeed(b)
    fail(b, ValueError())
    clock.advance(5)
    fail(b, KeyboardInterrupt())
    fail(b)
    opened_at = clock.now()
    rejected(b)
    rejected(b)
    clock.advance(2)
    stats = b.stats()
    assert set(stats) == STATS_KEYS
    assert {k: stats[k] for k in STATS_KEYS - {"name", "last_transition"}} == {
        "state": "open",
        "calls": 4,
        "successes": 1,
        "failures": 2,
        "ignored": 1,
        "slow_calls": 0,
        "rejections": 2,
        "opened_count": 1,
        "consecutive_failures": 2,
        "time_closed": 5.0,
        "time_open": 2.0,  # including the current stretch
        "time_half_open": 0.0,
        "transitions_to_closed": 0,
        "transitions_to_open": 1,
        "transitions_to_half_open": 0,
    }
    assert stats["last_transition"] == {
        "from": "closed",
        "to": "open",
        "reason": "failure_threshold",
        "at": opened_at,
    }
    clock.advance(1)
    succeed(b)
    stats = b.stats()
    assert (stats["state"], stats["time_open"], stats["time_half_open"]) == ("closed", 3.0, 0.0)
    assert repr(b) == f"<CircuitBreaker {b.name!r} state=closed>"


def test_force_open_force_closed_reset(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1)
    b.force_open()
    assert b.state == "open"
    assert b.retry_after == math.inf
    error = rejected(b)
    assert error.retry_after == math.inf
    assert error.retry_after_seconds == 2**31 - 1
    clock.advance(1e6)
    assert b.state == "open"  # forced: no recovery timeout ends it

    b.force_closed()
    for _ in range(10):
        fail(b)
    assert b.state == "closed"  # forced closed never opens
    assert b.stats()["failures"] == 10

    b.reset()
    fail(b)
    assert b.state == "open"  # back to normal
    b.reset()
    assert b.state == "closed"
    assert b.retry_after == 0.0
    assert b.stats()["failures"] == 11  # statistics survive a reset


# --------------------------------------------------------------------------------------------
# Bad arguments


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"failure_threshold": 0}, ValueError, "failure_threshold must be at least 1"),
        ({"failure_threshold": -3}, ValueError, "failure_threshold"),
        ({"failure_threshold": "5"}, TypeError, "failure_threshold"),
        ({"failure_threshold": 2.5}, TypeError, "failure_threshold"),
        ({"success_threshold": 0}, ValueError, "success_threshold"),
        ({"half_open_max_calls": 0}, ValueError, "half_open_max_calls"),
        ({"minimum_calls": 0}, ValueError, "minimum_calls"),
        ({"window_size": 0}, ValueError, "window_size"),
        ({"recovery_timeout": -1.0}, ValueError, "recovery_timeout"),
        ({"recovery_timeout": math.nan}, ValueError, "recovery_timeout"),
        ({"recovery_timeout": "30"}, TypeError, "recovery_timeout"),
        ({"probe_timeout": -1.0}, ValueError, "probe_timeout"),
        ({"failure_rate_threshold": 0.0}, ValueError, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.5}, ValueError, "failure_rate_threshold"),
        (
            {"slow_call_rate_threshold": 0.5},
            ValueError,
            "slow_call_duration is needed with slow_call_rate_threshold",
        ),
        ({"slow_call_duration": -1.0}, ValueError, "slow_call_duration"),
        ({"window_type": "sliding"}, ValueError, "window_type must be 'count' or 'time'"),
        ({"window_type": 1}, TypeError, "window_type"),
        ({"window_type": "time", "window_duration": 0.5}, ValueError, "window_duration"),
        ({"backoff_multiplier": 0.5}, ValueError, "backoff_multiplier"),
        ({"backoff_multiplier": math.inf}, ValueError, "backoff_multiplier"),
        ({"max_recovery_timeout": 10.0}, ValueError, "max_recovery_timeout"),
        ({"jitter": 1.0}, ValueError, "jitter"),
        ({"jitter": -0.1}, ValueError, "jitter"),
        ({"expected_exceptions": "ValueError"}, TypeError, "expected_exceptions"),
        ({"expected_exceptions": (ValueError, 1)}, TypeError, "expected_exceptions"),
        ({"expected_exceptions": KeyboardInterrupt}, ValueError, "expected_exceptions"),
        ({"excluded_exceptions": (int,)}, TypeError, "excluded_exceptions"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"timeout": math.inf}, ValueError, "timeout"),
        ({"timeout": "1"}, TypeError, "timeout"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"fallback": "default"}, TypeError, "fallback"),
        ({"clock": 42}, TypeError, "clock"),
    ],
)
def test_bad_arguments_name_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CircuitBreaker(f"test-breaker-bad-args-{next(_names)}", **kwargs)


def test_bad_names() -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        CircuitBreaker(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must not be empty"):
        CircuitBreaker("")


# --------------------------------------------------------------------------------------------
# Issue 5, item 4: what every Python breaker gets wrong


@pytest.mark.parametrize("max_calls", [1, 3])
def test_64_concurrent_tasks_in_half_open_let_through_exactly_half_open_max_calls(
    clock: ManualClock, max_calls: int
) -> None:
    b = make(
        clock,
        failure_threshold=1,
        recovery_timeout=1.0,
        half_open_max_calls=max_calls,
        success_threshold=max_calls,
    )
    release = asyncio.Event()
    inside = 0

    @b
    async def probe() -> str:
        nonlocal inside
        inside += 1
        await release.wait()  # every admitted probe is held inside the call
        return "probe"

    async def scenario() -> None:
        fail(b)
        clock.advance(1)
        tasks = [asyncio.create_task(probe()) for _ in range(64)]
        while inside + sum(t.done() for t in tasks) < 64:  # each task has run to a decision
            await asyncio.sleep(0)
        assert inside == max_calls
        assert b.stats()["rejections"] == 64 - max_calls
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results.count("probe") == max_calls
        assert sum(isinstance(r, CircuitOpenError) for r in results) == 64 - max_calls
        assert b.state == "closed"

    asyncio.run(scenario())


def test_8_threads_run_a_guarded_function_in_parallel(clock: ManualClock) -> None:
    b = make(clock)
    barrier = threading.Barrier(8, timeout=10)  # releases only if all 8 are inside at once

    @b
    def slow() -> int:
        return barrier.wait()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: slow(), range(8)))
    assert sorted(results) == list(range(8))
    assert b.stats()["successes"] == 8


def test_8_threads_in_with_blocks_run_in_parallel(clock: ManualClock) -> None:
    b = make(clock)
    barrier = threading.Barrier(8, timeout=10)

    def work() -> int:
        with b:
            return barrier.wait()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(lambda _: work(), range(8))) == list(range(8))
    assert b.stats()["successes"] == 8


def test_sub_second_recovery_timeout(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=0.25, probe_timeout=0.1)
    fail(b)
    clock.advance(0.2)
    assert b.state == "open"
    assert b.retry_after == pytest.approx(0.05)
    clock.advance(0.05)
    assert b.state == "half_open"
    with b:  # a probe that is never decided within 0.1 s ...
        clock.advance(0.1)
        succeed(b)  # ... has its slot taken by the next probe, which closes the breaker
    assert b.state == "closed"
