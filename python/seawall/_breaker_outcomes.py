"""What a guarded call's outcome is, and how long it took: shared by the circuit breaker
(:mod:`seawall.breaker`) and the wrappers it generates (:mod:`seawall._breaker_wrappers`).

The outcome codes are the native ``BreakerCore.record``'s; which exception is which outcome is
the breaker's to decide (``CircuitBreaker._classify``, documented in :mod:`seawall.breaker`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any, cast

from seawall._seawall import ManualClock, SystemClock, get_default_clock

__all__ = [
    "DEFERRED",
    "FAILURE",
    "GENERATORS",
    "IGNORED",
    "SUCCESS",
    "duration_timer",
    "timed_out",
]

# ``BreakerCore.record(permit, outcome, duration)``'s outcomes.
SUCCESS = 0
FAILURE = 1
IGNORED = 2  # neither: seen only by the statistics

GENERATORS: frozenset[type[Any]] = frozenset({GeneratorType, AsyncGeneratorType})
#: What a sync call may return whose outcome comes later (one ``type(result) in`` check).
DEFERRED: frozenset[type[Any]] = frozenset(
    {CoroutineType, asyncio.Future, asyncio.Task, *GENERATORS}
)

_perf_counter = time.perf_counter
_AsyncTimeout = asyncio.TimeoutError  # the builtin TimeoutError from Python 3.11


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is ``asyncio.wait_for``'s own timeout (raised from the cancellation of the
    call), not a ``TimeoutError`` raised by the guarded code itself (classified as any other)."""
    return isinstance(exc, _AsyncTimeout) and isinstance(exc.__cause__, asyncio.CancelledError)


def _default_clock_now() -> float:
    """Durations for a breaker on the default clock: the manual clock if one is installed."""
    clock = get_default_clock()
    return clock.now() if clock is not None else _perf_counter()


def duration_timer(clock: object) -> Callable[[], float]:
    """What measures a call's duration: the breaker's own clock, so that a manual clock makes
    slow calls testable without sleeping; ``time.perf_counter`` for the system clock."""
    if clock is None:
        return _default_clock_now
    if isinstance(clock, ManualClock):
        return clock.now
    if isinstance(clock, SystemClock):
        return _perf_counter
    now = getattr(clock, "now", None)
    if callable(now):
        return cast(Callable[[], float], now)
    if callable(clock):
        return cast(Callable[[], float], clock)
    return _perf_counter
