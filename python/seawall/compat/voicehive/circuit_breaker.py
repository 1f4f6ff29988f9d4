"""Drop-in for the VoiceHive service's ``circuit_breaker`` module (seed 003, section 3.3; B15, B17).

A thin shell over :class:`seawall.CircuitBreaker`: the state machine (closed / open / half-open,
probe slots, backoff with jitter) is native and decides each call in one crossing, with no lock
held while the call runs. Fixed against the service (defect 14): half-open admits
``half_open_max_calls`` probes (default 1), not every caller; with a Redis store the state is
shared through seawall's atomic sync, not read-modify-written; re-openings back off with jitter;
the timeout always counts as a failure, whatever ``expected_exception`` says; the decorator's
breaker is listed in ``seawall.breakers`` and on the wrapper (``wrapper.circuit_breaker``).

The shell keeps only what the service reports and seawall does not: the successes in a row and
the times of the last success and failure (updated after the native outcome is recorded).
Sync functions passed to :meth:`CircuitBreaker.call` run in a worker thread under the timeout, as
the service's did; a thread that times out is not stopped (no thread can be, safely).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal, TypeVar, cast

import seawall
from seawall._time import now
from seawall.compat.voicehive._redis_url import store_url
from seawall.errors import CircuitOpenError

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerManager",
    "CircuitBreakerOpenError",
    "CircuitBreakerStats",
    "CircuitBreakerTimeoutError",
    "CircuitState",
    "circuit_breaker",
]

F = TypeVar("F", bound=Callable[..., Any])


class CircuitState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreakerConfig:
    """The service's defaults, plus seawall's recovery settings (B15): the first opening lasts
    ``recovery_timeout`` ± ``jitter``; only re-openings after a failed probe back off, by
    ``backoff_multiplier`` up to ``max_recovery_timeout``. ``timeout`` (seconds; 0 or ``None``:
    none) bounds each call and always counts as a failure."""

    failure_threshold: int = 5
    recovery_timeout: float = 60
    expected_exception: tuple[type[BaseException], ...] = (Exception,)
    success_threshold: int = 3
    timeout: float | None = 30.0
    fallback_function: Callable[..., Any] | None = None
    name: str | None = None
    half_open_max_calls: int = 1
    backoff_multiplier: float = 2.0
    max_recovery_timeout: float = 600.0
    jitter: float = 0.1


@dataclass
class CircuitBreakerStats:
    """A breaker's statistics (B17: aware UTC datetimes; ``next_attempt_time`` is when the open
    state ends, jitter included). ``total_requests`` counts refused calls too."""

    state: CircuitState
    failure_count: int
    success_count: int
    last_failure_time: datetime | None
    last_success_time: datetime | None
    total_requests: int
    total_failures: int
    total_successes: int
    next_attempt_time: datetime | None = field(default=None)

    def model_dump(self, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """A dict, ``state`` as its value; ``mode="json"``: datetimes as ISO 8601 strings."""
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        if mode == "json":
            for key, value in out.items():
                if isinstance(value, datetime):
                    out[key] = value.isoformat()
        return out

    def dict(self) -> dict[str, Any]:
        """``model_dump()`` (pydantic v1's name, which the service's router called)."""
        return self.model_dump()


class CircuitBreakerOpenError(CircuitOpenError):
    """A call refused by an open breaker; catchable as ``seawall.CircuitOpenError`` too."""

    circuit_name: str
    next_attempt_time: datetime

    def __init__(self, circuit_name: str, retry_after: float, next_attempt_time: datetime) -> None:
        super().__init__(circuit_name, retry_after)
        self.circuit_name = circuit_name
        self.next_attempt_time = next_attempt_time


class CircuitBreakerTimeoutError(TimeoutError):
    """A call outlasted the breaker's ``timeout`` (counted as a failure)."""


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


async def _bounded(coro: Any, timeout: float | None, name: str) -> Any:
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        raise CircuitBreakerTimeoutError(
            f"circuit breaker {name!r}: call timed out after {timeout} s"
        )
    return task.result()


class CircuitBreaker:
    """``CircuitBreaker(CircuitBreakerConfig(name="pms_connector"), redis_client=None)``.

    ``redis_client``: ``None`` (this process), a Redis URL or a ``redis.asyncio.Redis``: every
    process whose breaker has this name on that Redis shares one state. Breakers with one name
    may coexist in a process (the last made is the one in ``seawall.breakers``).
    """

    def __init__(
        self, config: CircuitBreakerConfig, redis_client: Any = None, *, clock: Any = None
    ) -> None:
        if not isinstance(config, CircuitBreakerConfig):
            raise TypeError(f"config must be a CircuitBreakerConfig, got {type(config).__name__}")
        self.name: str = config.name or "circuit_breaker"
        self.config = config
        self._clock = clock
        timeout = config.timeout
        if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
            raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
        self._timeout = float(timeout) if timeout else None
        expected = tuple(config.expected_exception)
        self._expected = (*expected, CircuitBreakerTimeoutError)
        self._breaker = seawall.CircuitBreaker(
            self.name,
            failure_threshold=config.failure_threshold,
            success_threshold=config.success_threshold,
            recovery_timeout=config.recovery_timeout,
            half_open_max_calls=config.half_open_max_calls,
            backoff_multiplier=config.backoff_multiplier,
            max_recovery_timeout=config.max_recovery_timeout,
            jitter=config.jitter,
            expected_exceptions=self._expected,
            clock=clock,
            replace=True,
            store=store_url(redis_client),
        )
        self._success_count = 0
        self._last_failure: datetime | None = None
        self._last_success: datetime | None = None

    @property
    def breaker(self) -> seawall.CircuitBreaker:
        """The ``seawall.CircuitBreaker`` underneath."""
        return self._breaker

    @property
    def state(self) -> CircuitState:
        return CircuitState(self._breaker.state)

    def _refused(self, e: CircuitOpenError, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        fallback = self.config.fallback_function
        if fallback is not None:
            return fallback(*args, **kwargs)
        at = _utc(now(self._clock) + min(e.retry_after, 10.0**9))
        raise CircuitBreakerOpenError(self.name, e.retry_after, at) from None

    def _succeeded(self) -> None:
        self._success_count += 1
        self._last_success = _utc(now(self._clock))

    def _failed(self, e: BaseException) -> None:
        if isinstance(e, self._expected):
            self._success_count = 0
            self._last_failure = _utc(now(self._clock))

    async def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Runs ``func(*args, **kwargs)`` (sync ones in a thread) through the breaker. Its
        exception propagates; a refused call raises :class:`CircuitBreakerOpenError`, or
        returns ``fallback_function(*args, **kwargs)`` (awaited when awaitable)."""
        if inspect.iscoroutinefunction(func):

            def start() -> Any:
                return _bounded(func(*args, **kwargs), self._timeout, self.name)

        else:

            def start() -> Any:
                return _bounded(asyncio.to_thread(func, *args, **kwargs), self._timeout, self.name)

        try:
            result = await self._breaker.acall(start)
        except CircuitOpenError as e:
            if e.name != self.name:
                self._failed(e)
                raise
            answer = self._refused(e, args, kwargs)
            return await answer if inspect.isawaitable(answer) else answer
        except BaseException as e:
            self._failed(e)
            raise
        self._succeeded()
        return result

    def call_sync(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call`` for sync code, on the calling thread (a call that outlasts ``timeout``
        counts as a failure when it ends; its result passes through)."""
        try:
            result = self._breaker.call(func, *args, **kwargs)
        except CircuitOpenError as e:
            if e.name != self.name:
                self._failed(e)
                raise
            return self._refused(e, args, kwargs)
        except BaseException as e:
            self._failed(e)
            raise
        self._succeeded()
        return result

    async def get_stats(self) -> CircuitBreakerStats:
        s = self._breaker.stats()
        state = CircuitState(s["state"])
        retry = self._breaker.retry_after
        at = now(self._clock)
        return CircuitBreakerStats(
            state=state,
            failure_count=int(s["consecutive_failures"]),
            success_count=self._success_count,
            last_failure_time=self._last_failure,
            last_success_time=self._last_success,
            total_requests=int(s["calls"]) + int(s["rejections"]),
            total_failures=int(s["failures"]),
            total_successes=int(s["successes"]),
            next_attempt_time=_utc(at + min(retry, 10.0**9))
            if state is CircuitState.OPEN
            else None,
        )

    async def reset(self) -> None:
        """Closed, counters in a row cleared (the totals are kept)."""
        self._breaker.reset()
        self._success_count = 0


class CircuitBreakerManager:
    """The breakers of a service by name (``get_or_create_breaker``)."""

    def __init__(self, redis_client: Any = None, *, clock: Any = None) -> None:
        self.redis_client = redis_client
        self.clock = clock
        self.breakers: dict[str, CircuitBreaker] = {}

    def get_or_create_breaker(
        self, name: str, config: CircuitBreakerConfig | None = None
    ) -> CircuitBreaker:
        """The breaker ``name``, made with ``config`` (named ``name``) the first time."""
        found = self.breakers.get(name)
        if found is not None:
            return found
        config = dataclasses.replace(config or CircuitBreakerConfig(), name=name)
        breaker = CircuitBreaker(config, self.redis_client, clock=self.clock)
        self.breakers[name] = breaker
        return breaker

    async def get_all_stats(self) -> dict[str, CircuitBreakerStats]:
        return {name: await b.get_stats() for name, b in self.breakers.items()}

    async def reset_all(self) -> None:
        for breaker in self.breakers.values():
            await breaker.reset()


def circuit_breaker(
    name: str,
    failure_threshold: int = 5,
    recovery_timeout: float = 60,
    expected_exception: tuple[type[BaseException], ...] = (Exception,),
    timeout: float = 30.0,
    fallback_function: Callable[..., Any] | None = None,
    redis_client: Any = None,
) -> Callable[[F], F]:
    """Guards a function with a breaker named ``name`` (listed in ``seawall.breakers``, and on
    the wrapper as ``wrapper.circuit_breaker``). An ``async def`` is awaited through
    :meth:`CircuitBreaker.call`; a plain function runs on the caller's thread."""
    breaker = CircuitBreaker(
        CircuitBreakerConfig(
            name=name,
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            expected_exception=expected_exception,
            timeout=timeout,
            fallback_function=fallback_function,
        ),
        redis_client,
    )

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await breaker.call(func, *args, **kwargs)

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return breaker.call_sync(func, *args, **kwargs)

            wrapper = sync_wrapper
        wrapper.circuit_breaker = breaker
        return cast(F, wrapper)

    return decorate
