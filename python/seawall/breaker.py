# This file is longer than 450 lines because it is one class, CircuitBreaker, whose docstrings are
# its manual and whose paths per call (call, acall, with, the outcomes that come later) are each
# written out rather than shared: every shared Python call costs ~50 ns per guarded call. What is
# not the breaker lives apart: the generated decorator wrappers in _breaker_wrappers.py, the
# outcome codes and the duration timers in _breaker_outcomes.py.
"""``seawall.CircuitBreaker``: a circuit breaker whose state machine is native, and the registry.

The state (closed / open / half-open, the rate windows, backoff, probe slots) lives in Rust
(``seawall._seawall.BreakerCore``); this module decides what counts as a failure and wraps calls.
A call asks the core for a permit, runs with no lock held, then reports its outcome:

* it returned: a **success**;
* it raised an exception listed in ``expected_exceptions`` (default: any :class:`Exception`) and
  not in ``excluded_exceptions``: a **failure** (so is the breaker's own ``timeout`` expiring, and
  a call it could not cut off that lasted at least ``timeout``);
* anything else counts as **neither** ("ignored"; seen only by the statistics): an exception in
  ``excluded_exceptions``, an :class:`Exception` not in ``expected_exceptions`` (as with
  resilience4j's ``recordExceptions``, only the listed ones are failures), and every exception
  that is not an :class:`Exception` at all: :class:`asyncio.CancelledError`,
  :class:`KeyboardInterrupt`, :class:`SystemExit`, :class:`GeneratorExit`, and the breaker's own
  :class:`CircuitOpenError` (one carrying its name: a guarded call that calls through the same
  breaker and is refused has not shown the dependency failing; half-open, a probe that calls
  itself would otherwise fail itself and reopen the breaker for ever longer). The exception
  always propagates.

An outcome is counted when it happens: a sync function that returns a coroutine (a
``functools.wraps`` decorator under ``@breaker``, a lambda, a factory) returns, through the
decorator, a coroutine that counts the outcome when it is awaited; one that returns an
:class:`asyncio.Future` or :class:`asyncio.Task` gets that same future back, counted when it is
done; one that returns a generator or an async generator raises :class:`TypeError` (its outcome
is known only when it is exhausted: use ``with breaker:`` inside it), counted as neither.

Exclusion wins over expectation: ``expected_exceptions=(OSError,),
excluded_exceptions=(FileNotFoundError,)`` counts every ``OSError`` but ``FileNotFoundError``.

Every breaker has a unique name and is listed in :data:`breakers` while it is alive.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import math
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import AsyncGeneratorType, CoroutineType, GeneratorType, TracebackType
from typing import Any, NoReturn, ParamSpec, TypeVar, cast, overload

from seawall import _log
from seawall._breaker_outcomes import (
    DEFERRED,
    FAILURE,
    GENERATORS,
    IGNORED,
    SUCCESS,
    duration_timer,
    timed_out,
)
from seawall._breaker_wrappers import is_async, wrapper_factory
from seawall._seawall import BreakerCore, ManualClock, SystemClock
from seawall.errors import CircuitOpenError

__all__ = ["BreakerRegistry", "CircuitBreaker", "Listener", "breakers"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: A state-change listener: ``callback(breaker, old_state, new_state, reason)``.
Listener = Callable[["CircuitBreaker", str, str, str], object]
ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]

_logger = logging.getLogger("seawall.breaker")
_isawaitable = inspect.isawaitable
_wait_for = asyncio.wait_for


class _Hold:
    """A permit held by a ``with breaker:`` block; the innermost block's is on top."""

    __slots__ = ("breaker", "outer", "permit", "start")

    def __init__(
        self, breaker: CircuitBreaker, permit: int, start: float, outer: _Hold | None
    ) -> None:
        self.breaker = breaker
        self.permit = permit
        self.start = start
        self.outer = outer


# One variable for every breaker: each thread and each asyncio task sees its own stack of held
# permits, so concurrent ``with`` / ``async with`` blocks on one breaker never mix their permits.
_held: contextvars.ContextVar[_Hold | None] = contextvars.ContextVar(
    "seawall_breaker_held", default=None
)


def _exception_types(param: str, value: object) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple | list | set | frozenset) else (value,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(
                f"{param} must be an exception class or a tuple of exception classes, got {t!r}"
            )
    return tuple(types)


def _shown(value: object) -> str:
    """``repr(value)``, cut short (an int of a thousand digits is not a message)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:24]}... ({len(text)} characters)"


class CircuitBreaker:
    """A circuit breaker: ``CircuitBreaker("payments", failure_threshold=5, recovery_timeout=30)``.

    **Trips** after ``failure_threshold`` failures in a row, or, when ``failure_rate_threshold``
    / ``slow_call_rate_threshold`` is set (a fraction, ``0 < r <= 1``), when that share of the
    calls in the window failed / took at least ``slow_call_duration`` seconds, once the window
    holds ``minimum_calls`` calls. The window is the last ``window_size`` calls
    (``window_type="count"``) or the calls of the last ``window_duration`` seconds
    (``window_type="time"``, one-second buckets).

    **Recovers**: open for ``recovery_timeout`` seconds, then half-open: ``half_open_max_calls``
    probes run at once, the rest are rejected. ``success_threshold`` successful probes close it;
    a failed probe opens it again for ``backoff_multiplier`` times longer than the last time, up
    to ``max_recovery_timeout``, each open time varied by ``± jitter`` (a fraction). A probe
    that reports nothing within ``probe_timeout`` seconds (default: ``recovery_timeout``) frees
    its slot.

    **Use**: ``@breaker`` on a function or an ``async def`` (which stays a coroutine function);
    ``with breaker:`` / ``async with breaker:`` around a block; ``breaker.call(fn, *args)``;
    ``await breaker.acall(fn, *args)`` (``fn`` sync or async). No lock is held while the
    guarded code runs. A rejected call raises :class:`seawall.CircuitOpenError` (with the name
    and ``retry_after``), unless ``fallback`` is set: then the decorated function, ``call`` and
    ``acall`` return ``fallback(*args, **kwargs)`` (awaited if awaitable) instead, called
    with the call's arguments (for a decorated plain function: as its parameters bind them,
    defaults filled in); a ``with`` block always raises.

    ``timeout`` (seconds) bounds each awaited call (``asyncio.wait_for``); expiry raises
    :class:`TimeoutError` and counts as a failure, whatever ``expected_exceptions`` /
    ``excluded_exceptions`` say. What the breaker cannot cut off — a sync call (no thread can be
    interrupted safely), a ``with`` / ``async with`` block, a returned future — is timed
    instead, on the breaker's clock: one that lasted at least ``timeout`` counts as a failure
    when it ends, and its result or exception passes through unchanged (the work is done; a
    ``TimeoutError`` would only hide its result). So a breaker with a ``timeout`` guards sync and
    async functions alike, and a slow sync dependency opens it as a hung async one would.
    How outcomes are classified: see the module documentation.

    ``clock`` (a :class:`seawall.testing.ManualClock` in tests) drives the open time, the time
    window and the slow-call durations; with the default clock, durations are measured with
    ``time.perf_counter``, or on the manual clock installed by ``seawall.testing.use_clock``.

    The breaker is listed in :data:`seawall.breakers` under ``name`` while it is alive; a name
    already taken by a live breaker raises :class:`ValueError` unless ``replace=True``.

    **Shared** (``store="redis://..."``): every process whose breaker has this ``name`` (and
    ``key_prefix``) on that Redis shares one breaker. Each process still decides its calls
    locally, without waiting for Redis; every ``sync_interval`` seconds (and at once when it
    opens) it sends what it saw and adopts the shared state. Failures in a row and the failure /
    slow-call rates are then counted over every process's calls (a count window is shared as a
    60-second time window), and a breaker opened in any process is open in all within
    ``sync_interval`` plus one round trip to Redis. Half-open probes are each process's own. If
    Redis is unreachable, each breaker goes on alone and sends its counts later; ``stats()``
    reports the sharing under ``"shared"``. ``sync()`` shares at once. ``store="host://NAME"``
    shares it among the processes of one machine instead, through shared memory (the same
    counts and rules, no Redis; see ``docs/host.md``).
    """

    __slots__ = (
        "__weakref__",
        "_acquire",
        "_core",
        "_excluded",
        "_expected",
        "_fallback",
        "_listeners",
        "_measured",
        "_name",
        "_notify_lock",
        "_now",
        "_record",
        "_seen",
        "_timed",
        "_timeout",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        success_threshold: int = 1,
        recovery_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        probe_timeout: float | None = None,
        failure_rate_threshold: float | None = None,
        slow_call_rate_threshold: float | None = None,
        slow_call_duration: float | None = None,
        window_type: str = "count",
        window_size: int = 100,
        window_duration: float = 60.0,
        minimum_calls: int = 10,
        backoff_multiplier: float = 2.0,
        max_recovery_timeout: float = 600.0,
        jitter: float = 0.1,
        expected_exceptions: ExceptionTypes = (Exception,),
        excluded_exceptions: ExceptionTypes = (),
        timeout: float | None = None,
        fallback: Callable[..., Any] | None = None,
        clock: ManualClock | SystemClock | object | None = None,
        replace: bool = False,
        store: str | None = None,
        key_prefix: str = "seawall:",
        sync_interval: float = 0.5,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if not name:
            raise ValueError("name must not be empty")
        expected = _exception_types("expected_exceptions", expected_exceptions)
        for t in expected:
            if not issubclass(t, Exception):
                raise ValueError(
                    f"expected_exceptions must hold Exception subclasses, got {t.__name__}: "
                    "exceptions that are not Exceptions (CancelledError, KeyboardInterrupt, "
                    "SystemExit, GeneratorExit) never count as failures"
                )
        excluded = _exception_types("excluded_exceptions", excluded_exceptions)
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(
                    f"timeout must be a number of seconds or None, got {type(timeout).__name__}"
                )
            try:
                seconds = float(timeout)
            except OverflowError:  # an int beyond a float
                seconds = math.inf
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(
                    f"timeout must be a finite number of seconds above 0, got {_shown(timeout)}"
                )
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback must be callable or None, got {type(fallback).__name__}")
        if not isinstance(window_type, str):
            raise TypeError(f"window_type must be 'count' or 'time', got {window_type!r}")
        if not isinstance(replace, bool):
            raise TypeError(f"replace must be a bool, got {type(replace).__name__}")
        if not isinstance(key_prefix, str):
            raise TypeError(f"key_prefix must be a str, got {type(key_prefix).__name__}")

        core = BreakerCore(
            failure_threshold=failure_threshold,
            success_threshold=success_threshold,
            recovery_timeout=recovery_timeout,
            half_open_max_calls=half_open_max_calls,
            probe_timeout=probe_timeout,
            failure_rate_threshold=failure_rate_threshold,
            slow_call_rate_threshold=slow_call_rate_threshold,
            slow_call_duration=slow_call_duration,
            window_type=window_type,
            window_size=window_size,
            window_duration=window_duration,
            minimum_calls=minimum_calls,
            backoff_multiplier=backoff_multiplier,
            max_recovery_timeout=max_recovery_timeout,
            jitter=jitter,
            clock=clock,
            store=store,
            store_key=None if store is None else f"{key_prefix}breaker:{{{name}}}",
            sync_interval=sync_interval,
        )
        self._name = name
        self._core = core
        core._set_log_name(name)  # its openings and closings, on seawall.breaker
        # Bound once: the hot path calls these without an attribute lookup on the core.
        self._acquire = core.try_acquire
        self._record = core.record
        self._expected = expected
        self._excluded = excluded
        self._timeout = None if timeout is None else float(timeout)
        self._fallback = fallback
        self._timed = slow_call_duration is not None
        # Sync calls and blocks are timed for slow calls, and against the timeout.
        self._measured = self._timed or timeout is not None
        self._now = duration_timer(clock)
        self._listeners: list[Listener] = []
        self._notify_lock = threading.Lock()
        self._seen = core.transitions
        breakers._register(self, replace)

    # ----------------------------------------------------------------------------------------
    # Observability and control

    def sync(self) -> float:
        """With a ``store``: share the state now; the seconds it stays open for every process.

        Raises :class:`OSError` if Redis cannot be reached, :class:`ValueError` without a store.
        """
        return self._core.sync()

    @property
    def name(self) -> str:
        """The name it is registered under in :data:`seawall.breakers`."""
        return self._name

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (an open breaker whose time has come reads
        as half-open)."""
        state = self._core.state
        if self._listeners:
            self._observe()
        return state

    @property
    def retry_after(self) -> float:
        """Seconds until a call could be admitted: 0.0 if now, ``inf`` while forced open."""
        seconds = self._core.retry_after()
        if self._listeners:
            self._observe()
        return seconds

    def stats(self) -> dict[str, Any]:
        """``name``, ``state``, counters since creation (``calls``, ``successes``, ``failures``,
        ``ignored``, ``slow_calls``, ``rejections``, ``opened_count``),
        ``consecutive_failures``, seconds spent in each state (``time_closed``, ``time_open``,
        ``time_half_open``, including the current stretch), state changes by the state moved to
        (``transitions_to_closed``, ``transitions_to_open``, ``transitions_to_half_open``) and
        ``last_transition``
        (``{"from", "to", "reason", "at"}`` or ``None``)."""
        stats: dict[str, Any] = {"name": self._name}
        stats.update(self._core.stats())
        if self._listeners:
            self._observe()
        return stats

    def reset(self) -> None:
        """Closed, with the window and the backoff cleared (the statistics are kept); ends
        ``force_open`` / ``force_closed``."""
        self._core.reset()
        if self._listeners:
            self._observe()

    def force_open(self) -> None:
        """Reject every call until :meth:`reset` or :meth:`force_closed`."""
        self._core.force_open()
        if self._listeners:
            self._observe()

    def force_closed(self) -> None:
        """Admit every call, and never open, until :meth:`reset`."""
        self._core.force_closed()
        if self._listeners:
            self._observe()

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(breaker, old_state, new_state, reason)`` after each state change.

        Listeners run in the thread (or task) whose call noticed the change, after that call's
        outcome is recorded, with no lock held. An :class:`Exception` from a listener is logged to
        ``seawall.breaker`` and never reaches the call; any other :class:`BaseException`
        (``KeyboardInterrupt``, ``SystemExit``) propagates, and if it comes as a call is admitted,
        that call does not run and its permit is returned first (a probe slot is freed at
        once). Changes are noticed when the breaker is used or read; if several happen between
        two looks (concurrent threads), listeners hear of the latest. ``reason`` is one of
        ``failure_threshold``, ``failure_rate``, ``slow_call_rate``, ``recovery_timeout``,
        ``probe_failed``, ``probes_succeeded``, ``reset``, ``forced_open``, ``forced_closed``.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        with self._notify_lock:
            if not self._listeners:
                self._seen = self._core.transitions  # only what happens from now on
            self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        """Stop calling ``callback``; :class:`ValueError` if it was not listening."""
        with self._notify_lock:
            self._listeners.remove(callback)

    def _observe(self) -> None:
        """Tell the listeners of a state change since the last look, if there was one."""
        core = self._core
        if core.transitions == self._seen:  # the common case, without the lock
            return
        with self._notify_lock:
            while True:
                count = core.transitions
                last = core.last_transition()
                if core.transitions == count:
                    break
            if count == self._seen or last is None:
                return
            self._seen = count
            listeners = tuple(self._listeners)
        old, new, reason, _at = last
        for callback in listeners:
            try:
                callback(self, old, new, reason)
            except Exception:
                _log.event(
                    _logger,
                    logging.ERROR,
                    "listener_failed",
                    "listener %r of circuit breaker %r failed on %s -> %s",
                    callback,
                    self._name,
                    old,
                    new,
                    site=self._name,
                    exc_info=True,
                    breaker=self._name,
                    old_state=old,
                    new_state=new,
                )

    def _admitted(self, permit: int) -> None:
        """:meth:`_observe` for a call just admitted with ``permit``, before it runs. A listener
        may raise a :class:`BaseException` that is not an :class:`Exception` (those are logged,
        these propagate): the call then never runs, and its permit is returned as neither
        first, so a half-open probe slot is free at once, not after ``probe_timeout``."""
        try:
            self._observe()
        except BaseException:
            self._record(permit, IGNORED, 0.0)
            raise

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._name!r} state={self._core.state}>"

    # ----------------------------------------------------------------------------------------
    # Outcomes

    def _classify(self, exc: BaseException) -> int:
        """The outcome of a call that raised ``exc`` (see the module documentation)."""
        if not isinstance(exc, Exception) or isinstance(exc, self._excluded):
            return IGNORED
        if isinstance(exc, self._expected):
            if isinstance(exc, CircuitOpenError) and exc.name == self._name:
                return IGNORED  # its own rejection of a call made inside its own call
            return FAILURE
        return IGNORED

    def _reject(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A rejected call: the fallback's answer, or :class:`CircuitOpenError`."""
        if self._listeners:
            self._observe()
        fallback = self._fallback
        if fallback is None:
            raise CircuitOpenError(self._name, self._core.retry_after())
        return fallback(*args, **kwargs)

    # ----------------------------------------------------------------------------------------
    # Decorator

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Guard ``func`` (sync or ``async def``); see the class documentation."""
        if not callable(func):
            raise TypeError(f"CircuitBreaker decorates a callable, got {type(func).__name__}")
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                "CircuitBreaker cannot guard a generator function (a generator's outcome is "
                "known only when it is exhausted): use `with breaker:` inside it"
            )
        wrapper = self._wrap(func, is_async(func))
        return cast(Callable[P, R], functools.wraps(func)(wrapper))

    def _wrap(self, func: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        make, defaults = wrapper_factory(func, is_async, self._timed, self._timeout is not None)
        return make(
            func,
            self._acquire,
            self._record,
            self._classify,
            self._reject,
            self._listeners,
            self._observe,
            self._admitted,
            self._defer,
            self._now,
            self._timeout,
            *defaults,
        )

    # ----------------------------------------------------------------------------------------
    # Outcomes that come later than the call: a sync call that returned a coroutine, a future
    # or a generator (``type(result) in DEFERRED``)

    def _defer(
        self, result: Any, permit: int, start: float, what: str = "the guarded function"
    ) -> Any:
        """What a guarded sync call whose result is in ``DEFERRED`` returns: a coroutine that
        awaits a coroutine, the same future (counted when done), or :class:`TypeError` for a
        generator."""
        kind = type(result)
        if kind is CoroutineType:
            return self._guarded_coroutine(result, permit, start)
        if kind in GENERATORS:
            self._refuse(result, permit, start, what)
        cast(asyncio.Future[Any], result).add_done_callback(
            functools.partial(self._future_done, permit, start)
        )
        return result

    async def _guarded_coroutine(
        self, coro: Coroutine[Any, Any, T], permit: int, start: float
    ) -> T:
        """Await ``coro`` (bounded by ``timeout``) and count its outcome then. Its permit was
        taken when the sync function was called; a coroutine never awaited is never counted
        (half-open, its probe slot frees after ``probe_timeout``)."""
        timeout = self._timeout
        try:
            if timeout is None:
                result = await coro
            else:
                result = await _wait_for(coro, timeout)
        except BaseException as exc:
            outcome = FAILURE if timeout is not None and timed_out(exc) else self._classify(exc)
            self._finish(permit, outcome, start)
            raise
        self._finish(permit, SUCCESS, start)
        return result

    def _future_done(self, permit: int, start: float, future: asyncio.Future[Any]) -> None:
        """A returned future's done callback: its outcome, timed like a sync call's."""
        if future.cancelled():
            outcome = IGNORED
        else:
            exc = future.exception()
            outcome = SUCCESS if exc is None else self._classify(exc)
        self._finish_uncut(permit, outcome, start)

    def _refuse(self, result: Any, permit: int, start: float, what: str) -> NoReturn:
        """A generator (or async generator) returned by a guarded sync call: its outcome is
        known only when it is exhausted, so the call counts as neither and is refused."""
        if type(result) is GeneratorType:
            result.close()
        self._finish(permit, IGNORED, start)
        kind = "an async generator" if type(result) is AsyncGeneratorType else "a generator"
        raise TypeError(
            f"{what} returned {kind}, whose outcome is known only when it is exhausted: "
            "CircuitBreaker cannot guard it; use `with breaker:` / `async with breaker:` inside it"
        )

    # ----------------------------------------------------------------------------------------
    # call / acall

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` through the breaker. ``fn`` must be sync: a call that returns
        a coroutine (or a generator) raises :class:`TypeError` (use :meth:`acall`); one
        that returns an asyncio future is counted when the future is done."""
        permit = self._acquire()
        if permit < 0:
            return cast(R, self._reject(args, kwargs))
        if self._listeners:
            self._admitted(permit)
        start = self._now() if self._measured else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_uncut(permit, self._classify(exc), start)
            raise
        if type(result) in DEFERRED:
            if type(result) is CoroutineType:
                cast(Coroutine[Any, Any, Any], result).close()
                self._finish(permit, IGNORED, start)
                raise TypeError(
                    f"{fn!r} returned a coroutine, which breaker.call() cannot wait for: "
                    "use `await breaker.acall(...)`"
                )
            return cast(R, self._defer(result, permit, start, repr(fn)))
        self._finish_uncut(permit, SUCCESS, start)
        return result

    @overload
    async def acall(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...
    @overload
    async def acall(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``call``, awaitable: ``fn(*args, **kwargs)`` through the breaker, awaited if it returns
        an awaitable (with ``timeout``, if set); a sync ``fn`` is simply called (and timed
        against ``timeout``).
        A returned generator or async generator raises :class:`TypeError`."""
        permit = self._acquire()
        if permit < 0:
            result = self._reject(args, kwargs)
            if _isawaitable(result):
                result = await result
            return result
        if self._listeners:
            self._admitted(permit)
        timeout = self._timeout
        start = self._now() if self._measured else 0.0
        awaited = False
        try:
            result = fn(*args, **kwargs)
            if _isawaitable(result):
                awaited = True
                if timeout is None:
                    result = await result
                else:
                    result = await _wait_for(result, timeout)
        except BaseException as exc:
            if not awaited:
                self._finish_uncut(permit, self._classify(exc), start)
                raise
            outcome = FAILURE if timeout is not None and timed_out(exc) else self._classify(exc)
            self._finish(permit, outcome, start)
            raise
        if awaited:
            self._finish(permit, SUCCESS, start)
        elif type(result) in GENERATORS:
            self._refuse(result, permit, start, repr(fn))
        else:
            self._finish_uncut(permit, SUCCESS, start)
        return result

    @overload
    def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]: ...
    @overload
    def call_async(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]: ...
    def call_async(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Coroutine[Any, Any, Any]:
        """Deprecated: the former name of :meth:`acall` (seawall names the awaitable twin of a
        method ``x`` ``ax``). Warns when called, and returns ``acall``'s coroutine."""
        warnings.warn(
            "CircuitBreaker.call_async is deprecated: use CircuitBreaker.acall",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.acall(fn, *args, **kwargs)

    def _finish(self, permit: int, outcome: int, start: float) -> None:
        self._record(permit, outcome, self._now() - start if self._timed else 0.0)
        if self._listeners:
            self._observe()

    def _finish_uncut(self, permit: int, outcome: int, start: float) -> None:
        """:meth:`_finish` for what the breaker could not cut off at its ``timeout`` (a sync
        call, a ``with`` block, a future): one that lasted at least ``timeout`` is a failure."""
        timeout = self._timeout
        if self._measured:
            duration = self._now() - start
            if timeout is not None and duration >= timeout:
                outcome = FAILURE
        else:
            duration = 0.0
        self._record(permit, outcome, duration)
        if self._listeners:
            self._observe()

    # ----------------------------------------------------------------------------------------
    # with / async with

    def __enter__(self) -> CircuitBreaker:
        permit = self._acquire()
        if permit < 0:
            if self._listeners:
                self._observe()
            raise CircuitOpenError(self._name, self._core.retry_after())
        if self._listeners:
            self._admitted(permit)
        _held.set(_Hold(self, permit, self._now() if self._measured else 0.0, _held.get()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        hold = self._release()
        outcome = SUCCESS if exc is None else self._classify(exc)
        self._finish_uncut(hold.permit, outcome, hold.start)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _release(self) -> _Hold:
        """Take this breaker's innermost held permit off the current context's stack."""
        top = _held.get()
        if top is not None and top.breaker is self:
            _held.set(top.outer)
            return top
        # Blocks closed out of order (interleaved generators, hand-called __exit__): unlink it.
        above: list[_Hold] = []
        node = top
        while node is not None and node.breaker is not self:
            above.append(node)
            node = node.outer
        if node is None:
            raise RuntimeError(f"circuit breaker {self._name!r}: __exit__ without __enter__")
        rest = node.outer
        for h in reversed(above):
            rest = _Hold(h.breaker, h.permit, h.start, rest)
        _held.set(rest)
        return node


class BreakerRegistry:
    """Every live :class:`CircuitBreaker` by name (:data:`seawall.breakers`).

    ``breakers["db"]`` / ``breakers.get("db")``, ``len(breakers)``, ``"db" in breakers``;
    iterating yields the breakers in name order; ``all()`` maps names to breakers and
    ``stats()`` names to their statistics. Breakers are held weakly: one that is no longer
    referenced anywhere else drops out (and frees its name).
    """

    __slots__ = ("_by_name", "_lock")

    def __init__(self) -> None:
        self._by_name: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )
        self._lock = threading.Lock()

    def _register(self, breaker: CircuitBreaker, replace: bool) -> None:
        with self._lock:
            existing = self._by_name.get(breaker.name)
            if existing is not None and existing is not breaker and not replace:
                raise ValueError(
                    f"a circuit breaker named {breaker.name!r} already exists; "
                    "pass replace=True to replace it"
                )
            self._by_name[breaker.name] = breaker

    def get(self, name: str) -> CircuitBreaker | None:
        """The breaker called ``name``, or ``None``."""
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> CircuitBreaker:
        breaker = self._by_name.get(name)
        if breaker is None:
            raise KeyError(name)
        return breaker

    def __contains__(self, item: object) -> bool:
        """A name, or a breaker (is it the one registered under its name?)."""
        if isinstance(item, CircuitBreaker):
            return self._by_name.get(item.name) is item
        return isinstance(item, str) and self._by_name.get(item) is not None

    def all(self) -> dict[str, CircuitBreaker]:
        """Names to breakers, in name order (a snapshot)."""
        with self._lock:
            items = list(self._by_name.items())
        return dict(sorted(items))

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self.all().values())

    def __len__(self) -> int:
        return len(self._by_name)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Names to :meth:`CircuitBreaker.stats`, in name order."""
        return {name: breaker.stats() for name, breaker in self.all().items()}

    def __repr__(self) -> str:
        return f"<BreakerRegistry {sorted(self.all())!r}>"


#: The registry of every live circuit breaker.
breakers: BreakerRegistry = BreakerRegistry()
