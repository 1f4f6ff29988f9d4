"""``seawall.rate_limit``: a rate limit on calls of a function, sync or async.

The key says whose budget a call spends: nobody's in particular (one budget for the function), a
context variable's value (set per request by a middleware, as seed 000's ``current_client_id``),
or a function of the call's arguments. A refused call raises :class:`seawall.RateLimitExceeded`,
or returns what ``on_limit`` returns. ``store=`` puts the budgets in Redis, shared by every
worker and host; ``limiter=`` uses a limiter already made.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, cast

from seawall._args import check_int, check_str
from seawall._stores import DefaultLimits, is_redis, limiter_for, redis_options
from seawall.errors import RateLimitExceeded
from seawall.types import Limits

if TYPE_CHECKING:
    from seawall._limiter import Limiter
    from seawall._redis import RedisLimiter

__all__ = ["rate_limit"]

# The default limits (told apart from the same string passed beside ``limiter=``).
_DEFAULT_LIMITS = DefaultLimits("60/minute")

P = ParamSpec("P")
R = TypeVar("R")

Key = None | contextvars.ContextVar[Any] | Callable[..., str]
OnLimit = Literal["raise"] | Callable[[RateLimitExceeded], Any]

_ANONYMOUS = "unknown"  # the key of a call whose context variable holds nothing (seed 000's)


def rate_limit(
    limits: Limits = _DEFAULT_LIMITS,
    *,
    key: Key = None,
    algorithm: str = "gcra",
    on_limit: OnLimit = "raise",
    max_keys: int = 1_000_000,
    clock: Any = None,
    store: str | None = None,
    limiter: Limiter | RedisLimiter | None = None,
    key_prefix: str | None = None,
    on_error: str | None = None,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
    log_interval: float | None = None,
    breaker_failures: int | None = None,
    breaker_recovery: float | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Limit calls of the decorated function to ``limits`` per key.

    ``key``: ``None`` (one budget for every call), a :class:`contextvars.ContextVar` (its value,
    as a str, per call; ``"unknown"`` when unset or empty) or a callable taking the call's
    arguments and returning the key. ``on_limit``: ``"raise"`` raises
    :class:`seawall.RateLimitExceeded`; a callable receives that exception instead and its result
    (awaited, for an async function, if awaitable) is returned in place of the call's.

    The limiter is made once per ``rate_limit(...)``: a decorator object applied to several
    functions gives them one shared budget; ``@rate_limit(...)`` on each gives each its own.
    Async functions stay coroutine functions; signatures are kept (``functools.wraps``).

    ``store``: where the budgets live, as for ``seawall.Limiter(..., store=...)``: ``None`` or
    ``"memory://"`` (this process), or a Redis URL (``redis://``, ``rediss://``, ``unix://``,
    ``redis+cluster://``, ``redis+sentinel://``) shared by every worker and host naming it. With
    Redis, ``key_prefix``, ``on_error`` (``"allow"``, ``"deny"``, ``"local"``), the timeouts,
    ``log_interval`` and the breaker options pass through to :class:`seawall.RedisLimiter`;
    given with the memory store they are a ``ValueError``. An async function awaits the Redis
    decision (``ahit``, never blocking the event loop); a sync one blocks on it (``hit``).

    ``limiter``: a ``seawall.Limiter`` or ``RedisLimiter`` already made (say one per app, so
    one Redis connection serves every decorator); ``limits``, ``algorithm``, ``max_keys``,
    ``clock``, ``store`` and the Redis options are then its own, and passing any of them too is
    a ``ValueError``.
    """
    if not (key is None or isinstance(key, contextvars.ContextVar) or callable(key)):
        raise TypeError(f"key must be None, a ContextVar or a callable, got {type(key).__name__}")
    if on_limit != "raise" and not callable(on_limit):
        raise TypeError(f"on_limit must be 'raise' or a callable, got {on_limit!r}")
    check_str("algorithm", algorithm)
    check_int("max_keys", max_keys)
    options = redis_options(locals())
    lim: Any = limiter_for(
        "seawall.rate_limit",
        limits,
        limiter=limiter,
        beside={
            "limits": not isinstance(limits, DefaultLimits),
            "algorithm": algorithm != "gcra",
            "max_keys": max_keys != 1_000_000,
            "clock": clock is not None,
        },
        store=store,
        algorithm=algorithm,
        max_keys=max_keys,
        clock=clock,
        options=options,
    )
    hit = lim.hit
    # The Redis limiter's ``ahit`` waits on seawall's I/O thread; the memory one's answers at
    # once, so calling ``hit`` directly spares a coroutine per call.
    ahit = lim.ahit if is_redis(lim) else None
    key_of = _key_function(key)

    def refused(call_key: str, retry_after: float, limit: int) -> Any:
        error = RateLimitExceeded(retry_after, limit, call_key)
        if on_limit == "raise":
            raise error
        assert callable(on_limit)
        return on_limit(error)

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        if not callable(func):
            raise TypeError(f"rate_limit decorates a function, got {type(func).__name__}")
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                call_key = key_of(args, kwargs)
                decision = hit(call_key) if ahit is None else await ahit(call_key)
                if not decision.allowed:
                    result = refused(call_key, decision.retry_after, decision.limit)
                    if inspect.isawaitable(result):
                        result = await result
                    return result
                return await func(*args, **kwargs)

            return cast("Callable[P, R]", async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            call_key = key_of(args, kwargs)
            decision = hit(call_key)
            if not decision.allowed:
                return cast("R", refused(call_key, decision.retry_after, decision.limit))
            return func(*args, **kwargs)

        return wrapper

    return decorator


def _key_function(key: Key) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
    if key is None:
        return lambda args, kwargs: "*"
    if isinstance(key, contextvars.ContextVar):
        var = key

        def from_context(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            value = var.get(None)
            return _ANONYMOUS if value is None or value == "" else str(value)

        return from_context
    func = key

    def from_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        value = func(*args, **kwargs)
        if not isinstance(value, str):
            raise TypeError(f"key must return a str, got {type(value).__name__}")
        return value

    return from_arguments
