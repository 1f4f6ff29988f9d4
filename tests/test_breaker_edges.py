"""seawall.CircuitBreaker at its edges (issue 11, items 15-18 and 26): ``timeout`` on calls that
cannot be interrupted, sync callables whose outcome comes later (a coroutine, a future, a
generator), a breaker's own rejection inside its own call, listeners that raise a
``BaseException``, and every bad constructor argument of ``CircuitBreaker`` and ``BreakerCore``.

Every time-dependent behaviour runs on a ManualClock; nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seawall import CircuitBreaker, CircuitOpenError
from seawall._seawall import BreakerCore
from seawall.testing import ManualClock

START = 1_000_000.0
_names = itertools.count()


class Boom(Exception):
    pass


class Stop(BaseException):
    """Not an Exception: what a listener may raise that the breaker does not swallow."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def make(clock: ManualClock | None, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("jitter", 0.0)
    return CircuitBreaker(f"test-edges-{next(_names)}", clock=clock, **kwargs)


def trip(b: CircuitBreaker) -> None:
    def boom() -> None:
        raise Boom

    while b.state == "closed":
        with pytest.raises(Boom):
            b.call(boom)


def half_open(b: CircuitBreaker, clock: ManualClock) -> None:
    trip(b)
    clock.advance(b.retry_after)
    assert b.state == "half_open"


def passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A plain sync decorator, as many libraries write them: it returns whatever ``fn`` does."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------
# Item 15: ``timeout`` on a sync function


def test_timeout_on_a_sync_function_returns_its_result(clock: ManualClock) -> None:
    b = make(clock, timeout=1.0)

    @b
    def answer(x: int) -> int:
        return x * 2

    assert answer(21) == 42  # not an unawaited coroutine
    assert b.stats()["successes"] == 1


def test_a_sync_call_that_outlasts_timeout_is_a_failure_and_keeps_its_result(
    clock: ManualClock,
) -> None:
    b = make(clock, timeout=1.0, failure_threshold=2)

    @b
    def slow(seconds: float) -> str:
        clock.advance(seconds)
        return "done"

    assert slow(0.999) == "done"
    assert (b.stats()["successes"], b.stats()["failures"]) == (1, 0)
    assert slow(1.0) == "done"  # the result is never thrown away: the work is done
    assert b.stats()["failures"] == 1
    assert b.call(slow, 5.0) == "done"  # call() measures the same way
    assert b.state == "open"


def test_a_sync_call_that_outlasts_timeout_fails_whatever_it_raised(clock: ManualClock) -> None:
    b = make(clock, timeout=1.0, failure_threshold=1, excluded_exceptions=KeyError)

    def raises(exc: BaseException, seconds: float) -> None:
        clock.advance(seconds)
        raise exc

    guarded = b(raises)
    with pytest.raises(KeyError):
        guarded(KeyError("fast"), 0.5)
    assert (b.state, b.stats()["ignored"]) == ("closed", 1)  # excluded, and in time
    with pytest.raises(KeyError):
        guarded(KeyError("slow"), 2.0)
    assert b.state == "open"  # as an async call cut off at its timeout would have


def test_with_blocks_that_outlast_timeout_are_failures(clock: ManualClock) -> None:
    b = make(clock, timeout=1.0, failure_threshold=2)
    with b:
        clock.advance(1.5)
    assert b.stats()["failures"] == 1

    async def scenario() -> None:
        async with b:
            clock.advance(3.0)

    asyncio.run(scenario())
    assert b.state == "open"


def test_timeout_counts_with_slow_call_durations_too(clock: ManualClock) -> None:
    b = make(
        clock,
        timeout=2.0,
        slow_call_duration=1.0,
        slow_call_rate_threshold=1.0,
        minimum_calls=5,
        failure_threshold=1,
    )

    @b
    def slow(seconds: float) -> None:
        clock.advance(seconds)

    slow(1.5)
    assert b.stats()["slow_calls"] == 1 and b.state == "closed"
    slow(2.5)
    assert (b.stats()["slow_calls"], b.state) == (2, "open")


# --------------------------------------------------------------------------------------------
# Item 16: a sync callable that returns a coroutine (or a future, or a generator)


def test_a_sync_wrapper_returning_a_failing_coroutine_opens_the_breaker(
    clock: ManualClock,
) -> None:
    b = make(clock, failure_threshold=1)

    @b
    @passthrough
    async def failing() -> None:
        raise Boom

    with pytest.raises(Boom):
        asyncio.run(failing())
    assert b.stats()["failures"] == 1
    assert b.state == "open"


def test_a_lambda_returning_a_coroutine_is_counted_when_awaited(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1)

    async def value(x: int) -> int:
        await asyncio.sleep(0)
        return x

    guarded = b(lambda x: value(x))
    pending = guarded(7)
    assert b.stats()["calls"] == 0  # nothing has happened yet
    assert asyncio.run(pending) == 7
    assert b.stats()["successes"] == 1

    async def failing() -> None:
        raise Boom

    factory = b(lambda: failing())
    with pytest.raises(Boom):
        asyncio.run(factory())
    assert b.state == "open"


def test_a_returned_coroutine_is_bounded_by_timeout(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, timeout=0.001, expected_exceptions=KeyError)

    @b
    @passthrough
    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        asyncio.run(hangs())
    assert b.state == "open"


def test_a_returned_coroutine_holds_its_probe_slot_until_it_ends(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=10.0)

    @b
    @passthrough
    async def probe(fail: bool) -> str:
        if fail:
            raise Boom
        return "ok"

    half_open(b, clock)
    pending = probe(True)
    with pytest.raises(CircuitOpenError):
        probe(False)  # the one slot is taken by the pending probe
    with pytest.raises(Boom):
        asyncio.run(pending)
    assert (b.state, b.stats()["last_transition"]["reason"]) == ("open", "probe_failed")
    clock.advance(b.retry_after)
    assert asyncio.run(probe(False)) == "ok"
    assert b.state == "closed"


def test_a_cancelled_returned_coroutine_counts_as_neither(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=10.0)

    @b
    @passthrough
    async def hangs() -> None:
        await asyncio.Event().wait()

    half_open(b, clock)

    async def scenario() -> None:
        task = asyncio.ensure_future(hangs())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert (b.state, b.stats()["ignored"]) == ("half_open", 1)  # the slot is free again
    assert b.call(lambda: "ok") == "ok"
    assert b.state == "closed"


def test_a_returned_future_is_passed_through_and_counted_when_done(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=2, timeout=5.0)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[str]] = []

        @b
        def start() -> asyncio.Future[str]:
            fut: asyncio.Future[str] = loop.create_future()
            futures.append(fut)
            return fut

        ok = start()
        assert ok is futures[0]  # the caller gets its future, not a stand-in
        assert b.stats()["calls"] == 0
        ok.set_result("ok")
        await asyncio.sleep(0)  # (one turn of the loop: done callbacks run)
        assert await ok == "ok"
        assert b.stats()["successes"] == 1

        failing = start()
        failing.set_exception(Boom())
        await asyncio.sleep(0)
        with pytest.raises(Boom):
            await failing
        assert b.stats()["failures"] == 1

        late = start()
        clock.advance(6.0)  # outlasts the timeout: a failure, though it succeeds
        late.set_result("late")
        await asyncio.sleep(0)
        assert await late == "late"
        assert b.state == "open"

        b.reset()
        cancelled = start()
        cancelled.cancel()
        await asyncio.sleep(0)
        assert b.stats()["ignored"] == 1

        task = b(lambda: asyncio.ensure_future(asyncio.sleep(0, "slept")))()
        assert isinstance(task, asyncio.Task)
        assert await task == "slept"
        await asyncio.sleep(0)
        assert b.stats()["successes"] == 2

    asyncio.run(scenario())


def test_a_returned_future_via_call_is_counted_when_done(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1)

    async def scenario() -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        assert b.call(lambda: fut) is fut
        fut.set_exception(Boom())
        await asyncio.sleep(0)  # (one turn of the loop: done callbacks run)
        with pytest.raises(Boom):
            await fut

    asyncio.run(scenario())
    assert b.state == "open"


def numbers() -> Iterator[int]:
    yield 1
    raise Boom


async def anumbers() -> AsyncIterator[int]:
    yield 1
    raise Boom


@pytest.mark.parametrize("factory", [numbers, anumbers], ids=["generator", "async_generator"])
def test_a_sync_callable_returning_a_generator_is_refused_and_counts_as_neither(
    clock: ManualClock, factory: Callable[[], object]
) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=10.0)
    half_open(b, clock)
    guarded = b(passthrough(factory))
    with pytest.raises(TypeError, match="generator"):
        guarded()
    assert (b.state, b.stats()["ignored"]) == ("half_open", 1)  # the probe slot is free
    with pytest.raises(TypeError, match="generator"):
        b.call(factory)
    with pytest.raises(TypeError, match="generator"):
        asyncio.run(b.acall(factory))
    assert (b.state, b.stats()["ignored"]) == ("half_open", 3)
    assert b.call(lambda: "ok") == "ok"
    assert b.state == "closed"


# --------------------------------------------------------------------------------------------
# Item 17: a breaker's own rejection is not a failure of itself


def test_its_own_rejection_inside_a_probe_is_not_a_failure(clock: ManualClock) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=10.0)

    @b
    def walk(depth: int) -> str:
        return "leaf" if depth == 0 else walk(depth - 1)

    assert walk(3) == "leaf"  # closed: every level is admitted
    half_open(b, clock)
    with pytest.raises(CircuitOpenError):
        walk(1)  # the probe calls itself; the inner call finds the one slot taken
    assert b.state == "half_open"  # neither re-opened (with a longer wait) nor closed
    assert b.stats()["opened_count"] == 1
    assert b.stats()["ignored"] == 1
    assert walk(0) == "leaf"
    assert b.state == "closed"


@pytest.mark.parametrize("form", ["with", "call", "async_decorator", "acall"])
def test_its_own_rejection_counts_as_neither_in_every_form(clock: ManualClock, form: str) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=10.0)
    half_open(b, clock)

    def inner() -> None:
        with b:
            pass

    async def ainner() -> None:
        await b.acall(inner)

    with pytest.raises(CircuitOpenError):
        if form == "with":
            with b:
                inner()
        elif form == "call":
            b.call(inner)
        elif form == "async_decorator":
            asyncio.run(b(ainner)())
        else:
            asyncio.run(b.acall(ainner))
    assert (b.state, b.stats()["ignored"]) == ("half_open", 1)


def test_another_breakers_rejection_is_still_a_failure(clock: ManualClock) -> None:
    outer = make(clock, failure_threshold=1)
    inner = make(clock, failure_threshold=1)
    inner.force_open()

    @outer
    def through_inner() -> None:
        inner.call(lambda: None)

    with pytest.raises(CircuitOpenError) as info:
        through_inner()
    assert info.value.name == inner.name
    assert outer.state == "open"  # its dependency is down: that is a failure of the outer call


# --------------------------------------------------------------------------------------------
# Item 18: a listener raising a BaseException as a call is admitted


def _forms(b: CircuitBreaker, ran: list[str]) -> dict[str, Callable[[], object]]:
    def work() -> str:
        ran.append("ran")
        return "ok"

    async def awork() -> str:
        return work()

    def with_block() -> str:
        with b:
            return work()

    async def async_with_block() -> str:
        async with b:
            return work()

    return {
        "decorator": b(work),
        "async_decorator": lambda: asyncio.run(b(awork)()),
        "call": lambda: b.call(work),
        "acall": lambda: asyncio.run(b.acall(awork)),
        "with": with_block,
        "async_with": lambda: asyncio.run(async_with_block()),
    }


@pytest.mark.parametrize(
    "form", ["decorator", "async_decorator", "call", "acall", "with", "async_with"]
)
def test_a_listener_raising_a_base_exception_frees_the_probe_slot(
    clock: ManualClock, form: str
) -> None:
    b = make(clock, failure_threshold=1, recovery_timeout=10.0, probe_timeout=3600.0)
    ran: list[str] = []
    run = _forms(b, ran)[form]
    trip(b)

    def stop_on_half_open(_b: CircuitBreaker, old: str, new: str, reason: str) -> None:
        if new == "half_open":
            raise Stop

    b.add_listener(stop_on_half_open)
    clock.advance(10.0)
    with pytest.raises(Stop):
        run()  # the listener's BaseException propagates: it is not swallowed
    assert ran == []  # the call never ran...
    assert b.stats()["ignored"] == 1  # ...and its permit was returned as neither
    assert run() == "ok"  # the probe slot is free now, not after an hour
    assert b.state == "closed"


def test_a_listener_raising_a_base_exception_with_a_timed_breaker(clock: ManualClock) -> None:
    b = make(
        clock,
        failure_threshold=1,
        recovery_timeout=10.0,
        probe_timeout=3600.0,
        slow_call_duration=1.0,
        timeout=5.0,
    )

    @b
    def work() -> str:
        return "ok"

    trip(b)
    b.add_listener(lambda _b, old, new, reason: (_ for _ in ()).throw(Stop()))
    clock.advance(10.0)
    with pytest.raises(Stop):
        work()
    assert b.stats()["ignored"] == 1
    with pytest.raises(Stop):  # the listener hears the change to closed and raises again
        work()
    assert b.state == "closed"


# --------------------------------------------------------------------------------------------
# Item 26: every bad argument is a ValueError / TypeError whose message names the parameter

COUNTS = [
    "failure_threshold",
    "success_threshold",
    "half_open_max_calls",
    "window_size",
    "minimum_calls",
]
SECONDS = ["recovery_timeout", "window_duration", "max_recovery_timeout", "sync_interval"]
OPTIONAL_SECONDS = ["probe_timeout", "slow_call_duration"]
FRACTIONS = ["failure_rate_threshold", "slow_call_rate_threshold"]
REALS = ["backoff_multiplier", "jitter"]
NATIVE_ONLY_SECONDS = ["connect_timeout", "command_timeout"]
# A valid companion where a parameter needs one to be judged on its own.
COMPANIONS: dict[str, dict[str, Any]] = {
    "slow_call_rate_threshold": {"slow_call_duration": 1.0},
    "recovery_timeout": {"max_recovery_timeout": 1e9},
}


def names(param: str) -> re.Pattern[str]:
    """``param`` as a whole word (``timeout`` must not match ``recovery_timeout``)."""
    return re.compile(rf"(?<![A-Za-z_]){re.escape(param)}(?![A-Za-z_])")


def build(param: str, value: object) -> None:
    kwargs = {**COMPANIONS.get(param, {}), param: value}
    CircuitBreaker(f"test-edges-bad-{next(_names)}", replace=True, **kwargs)


def build_core(param: str, value: object) -> None:
    kwargs = {**COMPANIONS.get(param, {}), param: value}
    BreakerCore(**kwargs)


def rejected_naming(make_it: Callable[[str, object], None], param: str, value: object) -> str:
    with pytest.raises((ValueError, TypeError)) as info:
        make_it(param, value)
    message = str(info.value)  # the message itself, not a note pytest would also match
    assert type(info.value) in (ValueError, TypeError), repr(info.value)
    assert names(param).search(message), f"{param}={value!r}: {message!r}"
    return message


@pytest.mark.parametrize("make_it", [build, build_core], ids=["CircuitBreaker", "BreakerCore"])
@pytest.mark.parametrize("param", COUNTS)
def test_counts_beyond_64_bits_or_32_bits_are_value_errors(
    make_it: Callable[[str, object], None], param: str
) -> None:
    for value in (2**64, 2**200, 2**32, -(2**64), -(2**200)):
        with pytest.raises(ValueError):
            make_it(param, value)
        rejected_naming(make_it, param, value)
    assert "4294967295" in rejected_naming(make_it, param, 2**32)


@pytest.mark.parametrize("make_it", [build, build_core], ids=["CircuitBreaker", "BreakerCore"])
@pytest.mark.parametrize("param", COUNTS)
@pytest.mark.parametrize("value", [None, "5", 2.0, True, [1]])
def test_counts_of_the_wrong_type_are_type_errors(
    make_it: Callable[[str, object], None], param: str, value: object
) -> None:
    with pytest.raises(TypeError):
        make_it(param, value)
    message = rejected_naming(make_it, param, value)
    assert "int" in message


@pytest.mark.parametrize("make_it", [build, build_core], ids=["CircuitBreaker", "BreakerCore"])
@pytest.mark.parametrize("param", SECONDS + OPTIONAL_SECONDS + FRACTIONS + REALS)
def test_numbers_beyond_a_float_are_value_errors(
    make_it: Callable[[str, object], None], param: str
) -> None:
    for value in (10**400, -(10**400)):
        with pytest.raises(ValueError):
            make_it(param, value)
        rejected_naming(make_it, param, value)


@pytest.mark.parametrize("make_it", [build, build_core], ids=["CircuitBreaker", "BreakerCore"])
@pytest.mark.parametrize("param", SECONDS + OPTIONAL_SECONDS + FRACTIONS + REALS)
@pytest.mark.parametrize("value", ["1", True, [1.0], b"1"])
def test_numbers_of_the_wrong_type_are_type_errors(
    make_it: Callable[[str, object], None], param: str, value: object
) -> None:
    with pytest.raises(TypeError):
        make_it(param, value)
    assert "number" in rejected_naming(make_it, param, value)


@pytest.mark.parametrize("make_it", [build, build_core], ids=["CircuitBreaker", "BreakerCore"])
@pytest.mark.parametrize("param", SECONDS + REALS)
def test_none_where_a_number_is_required_is_a_type_error(
    make_it: Callable[[str, object], None], param: str
) -> None:
    with pytest.raises(TypeError):
        make_it(param, None)
    rejected_naming(make_it, param, None)


@pytest.mark.parametrize("param", [*NATIVE_ONLY_SECONDS, "sync_interval"])
@pytest.mark.parametrize("value", [-1.0, 0.0, math.nan, math.inf, 10**400, None, "1", True])
def test_breaker_core_checks_its_redis_timings_without_a_store(param: str, value: object) -> None:
    rejected_naming(build_core, param, value)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"timeout": 10**400}, "timeout"),
        ({"replace": "yes"}, "replace"),
        ({"replace": None}, "replace"),
        ({"key_prefix": None}, "key_prefix"),
        ({"key_prefix": b"seawall:"}, "key_prefix"),
        ({"store": 42}, "store"),
        ({"window_type": None}, "window_type"),
        ({"expected_exceptions": None}, "expected_exceptions"),
        ({"excluded_exceptions": None}, "excluded_exceptions"),
        ({"clock": lambda: "noon"}, "clock"),
        ({"clock": lambda seconds: seconds}, "clock"),
    ],
)
def test_other_bad_arguments_name_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    [(key, value)] = kwargs.items()
    rejected_naming(build, key, value)
    assert key == param


@pytest.mark.parametrize("make_it", [build, build_core], ids=["CircuitBreaker", "BreakerCore"])
@pytest.mark.parametrize(
    "rate", [{"failure_rate_threshold": 0.5}, {"slow_call_rate_threshold": 0.5}]
)
def test_a_count_window_smaller_than_minimum_calls_is_refused_with_a_rate(
    make_it: Callable[..., None], rate: dict[str, float]
) -> None:
    """A window of 5 calls never holds the default ``minimum_calls=10``: the rate would never be
    judged, silently."""
    kwargs = {**rate, "slow_call_duration": 1.0, "window_size": 5}
    with pytest.raises(ValueError) as info:
        if make_it is build:
            CircuitBreaker(f"test-edges-bad-{next(_names)}", **kwargs)
        else:
            BreakerCore(**kwargs)
    assert names("minimum_calls").search(str(info.value))
    assert names("window_size").search(str(info.value))
    # Without a rate, or with a time window, or with minimum_calls within it: accepted.
    CircuitBreaker(f"test-edges-{next(_names)}", window_size=5)
    CircuitBreaker(f"test-edges-{next(_names)}", window_type="time", **kwargs)
    CircuitBreaker(f"test-edges-{next(_names)}", minimum_calls=5, **kwargs)


ANYTHING = st.one_of(
    st.integers(),
    st.integers(min_value=2**60, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**60)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.just(object()),
    st.sampled_from([ValueError, (KeyError,), Exception, int, print, ManualClock(START)]),
)
CIRCUIT_BREAKER_PARAMS = (
    COUNTS
    + SECONDS
    + OPTIONAL_SECONDS
    + FRACTIONS
    + REALS
    + [
        "window_type",
        "expected_exceptions",
        "excluded_exceptions",
        "timeout",
        "fallback",
        "clock",
        "replace",
        "key_prefix",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(param=st.sampled_from(CIRCUIT_BREAKER_PARAMS), value=ANYTHING)
def test_any_single_bad_argument_names_itself(param: str, value: object) -> None:
    """Whatever one argument is, the breaker is built, or a ValueError / TypeError names it."""
    try:
        build(param, value)
    except (ValueError, TypeError) as exc:
        assert type(exc) in (ValueError, TypeError), repr(exc)
        assert names(param).search(str(exc)), f"{param}={value!r}: {exc!r}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    param=st.sampled_from(
        COUNTS
        + SECONDS
        + OPTIONAL_SECONDS
        + FRACTIONS
        + REALS
        + NATIVE_ONLY_SECONDS
        + ["window_type", "store_key"]
    ),
    value=ANYTHING,
)
def test_any_single_bad_argument_of_breaker_core_names_itself(param: str, value: object) -> None:
    try:
        build_core(param, value)
    except (ValueError, TypeError) as exc:
        assert type(exc) in (ValueError, TypeError), repr(exc)
        assert names(param).search(str(exc)), f"{param}={value!r}: {exc!r}"
