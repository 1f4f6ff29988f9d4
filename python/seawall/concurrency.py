"""``seawall.ConcurrencyLimiter``: how many calls may run at once, learned from how they go.

The limit algorithms (:class:`GradientLimit`, delay-based, the default; :class:`AIMDLimit`,
loss-based) and the limiter's state (permits, the bounded queue, its order, partitions) are native
(``seawall._seawall.ConcurrencyCore``); this module holds the futures of waiting callers and turns
outcomes into reports. One native call per admission and one per release; no lock is held while
the caller's work runs.

A :class:`Permit` is returned once, with its outcome:

* ``permit.success()``: the call went well; its RTT (measured on the limiter's clock from the
  moment the permit was given, or ``rtt=`` seconds) is a sample for the algorithm;
* ``permit.dropped()``: the loss signal (a timeout, a dependency that refused or shed the call);
* ``permit.ignore()``: neither (a client error, a cancellation): the permit is returned and the
  limit is not moved.

As a context manager (``with permit:`` / ``async with permit:``) it reports success on a normal
exit, dropped on :class:`seawall.Overloaded` or :class:`TimeoutError`, and ignore on any other
exception, cancellation included (an application error says nothing about the dependency's
capacity; :class:`seawall.asgi.ConcurrencyLimitMiddleware` classifies HTTP responses itself).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from seawall._metrics_registry import track
from seawall._seawall import (
    AIMDLimit,
    ConcurrencyCore,
    GradientLimit,
    ManualClock,
    get_default_clock,
)
from seawall.errors import Overloaded

__all__ = ["AIMDLimit", "ConcurrencyLimiter", "GradientLimit", "Permit"]

# ``ConcurrencyCore.release``'s outcomes.
_SUCCESS = 0
_DROPPED = 1
_IGNORE = 2

_LOSSES: tuple[type[BaseException], ...] = (Overloaded, TimeoutError, asyncio.TimeoutError)


def _refused(reason: str) -> Overloaded:
    """The one place this module builds an :class:`Overloaded`."""
    return Overloaded(reason, name="concurrency limiter")


class Permit:
    """A permit held from a :class:`ConcurrencyLimiter`; report its outcome once (the first
    report counts, later ones do nothing)."""

    __slots__ = ("_id", "_limiter")

    def __init__(self, limiter: ConcurrencyLimiter, permit_id: int) -> None:
        self._limiter: ConcurrencyLimiter | None = limiter
        self._id = permit_id

    @property
    def done(self) -> bool:
        """Whether its outcome was reported."""
        return self._limiter is None

    def success(self, rtt: float | None = None) -> None:
        """It went well; ``rtt``: its duration in seconds, if not measured on the limiter's
        clock from the moment the permit was given."""
        limiter = self._limiter
        if limiter is not None:
            self._limiter = None
            limiter._release(self._id, _SUCCESS, rtt)

    def dropped(self) -> None:
        """It was dropped (timed out, refused or shed downstream): the limit comes down."""
        limiter = self._limiter
        if limiter is not None:
            self._limiter = None
            limiter._release(self._id, _DROPPED, None)

    def ignore(self) -> None:
        """It says nothing about the dependency: the permit is returned, the limit unmoved."""
        limiter = self._limiter
        if limiter is not None:
            self._limiter = None
            limiter._release(self._id, _IGNORE, None)

    def _exit(self, exc: BaseException | None) -> None:
        if exc is None:
            self.success()
        elif isinstance(exc, _LOSSES):
            self.dropped()
        else:
            self.ignore()

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)

    async def __aenter__(self) -> Permit:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)

    def __repr__(self) -> str:
        return f"<Permit {self._id}{' done' if self.done else ''}>"


class ConcurrencyLimiter:
    """Permits up to an adaptive limit: ``ConcurrencyLimiter(GradientLimit(), max_queue=50)``.

    ``limit``: a :class:`GradientLimit` (the default), an :class:`AIMDLimit` or an int (a fixed
    limit). Each limiter starts the algorithm afresh from the settings, so one settings object
    may serve many limiters.

    ``try_acquire()`` gives a :class:`Permit` or ``None`` at once. ``await acquire()`` waits in
    a first-in first-out queue of at most ``max_queue`` callers (0: no queue), for at most
    ``queue_timeout`` seconds (and at most its own ``timeout``), and raises
    :class:`seawall.Overloaded` with ``reason`` ``"limit"`` (no queue), ``"queue_full"`` or
    ``"timeout"``. A cancelled waiter leaves the queue. With a manual ``clock``, waits end when a
    later ``acquire`` or permit report sees the clock past their deadline (no timers), so tests
    need no sleeping; otherwise they also end on the event loop's timer.

    ``partitions`` (``{"critical": 0.8, "batch": 0.2}``, shares adding up to at most 1) reserve
    capacity: each partition is guaranteed ``floor(limit * share)`` permits and may borrow what
    no other partition is owed; callers of no partition borrow only. The total never exceeds the
    limit. ``clock``: what RTTs and queue deadlines are measured on (a
    :class:`seawall.testing.ManualClock` in tests).
    """

    __slots__ = (
        "__weakref__",
        "_clock_given",
        "_core",
        "_manual",
        "_max_queue",
        "_queue_timeout",
        "_waiters",
    )

    def __init__(
        self,
        limit: GradientLimit | AIMDLimit | int | None = None,
        *,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        partitions: Mapping[str, float] | None = None,
        clock: Any = None,
    ) -> None:
        self._core = ConcurrencyCore(
            GradientLimit() if limit is None else limit,
            max_queue=max_queue,
            queue_timeout=queue_timeout,
            partitions=partitions,
            clock=clock,
        )
        self._max_queue = max_queue
        self._queue_timeout = queue_timeout
        self._manual = isinstance(clock, ManualClock)
        self._clock_given = clock is not None
        self._waiters: dict[int, asyncio.Future[int]] = {}
        track(self)

    @property
    def limit(self) -> int:
        """The current limit."""
        return self._core.limit

    @property
    def in_flight(self) -> int:
        """Permits held."""
        return self._core.in_flight

    @property
    def queued(self) -> int:
        """Callers waiting in the queue."""
        return self._core.queued

    def stats(self) -> dict[str, Any]:
        """The limit, what is held and queued, and the counts since it was built: ``acquired``,
        ``rejected``, ``timed_out``, ``cancelled``, ``successes``, ``dropped``, ``ignored``,
        ``peak_in_flight``; ``wait_seconds`` (each permit's wait, 0 when given at once, as a
        histogram on the limiter's clock: ``bounds``, ``cumulative`` counts, ``sum``,
        ``count``); ``algorithm``; for the gradient, ``estimate`` (the unrounded limit),
        ``long_rtt`` and ``last_rtt`` in seconds; per partition its ``share``, ``guaranteed``
        and ``in_flight``."""
        return self._core.stats()

    def try_acquire(self, partition: str | None = None) -> Permit | None:
        """A permit now, or ``None``; never waits."""
        permit_id = self._core.try_acquire(partition)
        return Permit(self, permit_id) if permit_id else None

    async def acquire(
        self, partition: str | None = None, *, timeout: float | None = None
    ) -> Permit:
        """A permit, waiting in the queue if there is one; raises :class:`seawall.Overloaded`."""
        code, expired = self._core.acquire(partition, timeout)
        if expired:
            self._expire(expired)
        if code > 0:
            return Permit(self, code)
        if code == 0:
            raise _refused("limit" if self._max_queue == 0 else "queue_full")
        return Permit(self, await self._wait(-code, timeout))

    async def _wait(self, ticket: int, timeout: float | None) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._waiters[ticket] = future
        waits = [t for t in (timeout, self._queue_timeout) if t is not None]
        timer = None
        if waits and not self._manual and (self._clock_given or get_default_clock() is None):
            timer = loop.call_later(min(waits), self._time_out, ticket)
        try:
            return await future
        except asyncio.CancelledError:
            self._waiters.pop(ticket, None)
            left = self._core.cancel(ticket)
            if not left and future.done() and not future.cancelled() and not future.exception():
                self._release(future.result(), _IGNORE, None)  # granted as it was cancelled
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _time_out(self, ticket: int) -> None:
        if self._core.cancel(ticket, True):
            future = self._waiters.pop(ticket, None)
            if future is not None and not future.done():
                future.set_exception(_refused("timeout"))

    def _expire(self, tickets: list[int]) -> None:
        for ticket in tickets:
            future = self._waiters.pop(ticket, None)
            if future is not None and not future.done():
                loop = future.get_loop()
                if loop is asyncio._get_running_loop():
                    future.set_exception(_refused("timeout"))
                else:
                    with contextlib.suppress(RuntimeError):  # a closed loop waits for nobody
                        loop.call_soon_threadsafe(self._fail, future)

    @staticmethod
    def _fail(future: asyncio.Future[int]) -> None:
        if not future.done():
            future.set_exception(_refused("timeout"))

    def _release(self, permit_id: int, outcome: int, rtt: float | None) -> None:
        woken = self._core.release(permit_id, outcome, rtt)
        if woken is not None:
            self._wake(woken)

    def _wake(self, woken: tuple[list[tuple[int, int]], list[int]]) -> None:
        granted, expired = woken
        if expired:
            self._expire(expired)
        running = asyncio._get_running_loop()
        for ticket, permit_id in granted:
            future = self._waiters.pop(ticket, None)
            if future is None or future.done():
                self._release(permit_id, _IGNORE, None)  # its caller left: pass the permit on
            elif future.get_loop() is running:
                future.set_result(permit_id)
            else:  # a waiter on another thread's event loop
                try:
                    future.get_loop().call_soon_threadsafe(self._hand_over, future, permit_id)
                except RuntimeError:  # that loop is closed: nobody will take the permit
                    self._release(permit_id, _IGNORE, None)

    def _hand_over(self, future: asyncio.Future[int], permit_id: int) -> None:
        if future.done():
            self._release(permit_id, _IGNORE, None)
        else:
            future.set_result(permit_id)

    def __repr__(self) -> str:
        return f"<ConcurrencyLimiter limit={self.limit} in_flight={self.in_flight}>"
