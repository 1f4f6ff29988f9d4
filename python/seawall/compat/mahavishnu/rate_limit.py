"""Seed 001 (Mahavishnu core), ``mahavishnu/core/rate_limit.py``, on seawall's ``Limiter``.

Same names and defaults: ``RateLimitConfig``, ``RateLimitInfo`` and
``RateLimiter(per_minute=60, per_hour=1000, per_day=10000, burst_size=10)`` with
``await is_allowed(key) -> (bool, RateLimitInfo)``. The four limits of the original are decided
together in one native call, all or nothing:

* per minute: an exact sliding window log (at most ``per_minute`` entries per key);
* per hour and per day: sliding window counters (two counters per key instead of up to
  ``per_day`` timestamps; see ``seawall.Limiter`` for their error bound);
* the burst: a token bucket of ``burst_size`` refilled at ``per_minute`` per minute.

Violations are counted per key for repeat offenders; ``cleanup()`` (or the task
``start_cleanup()`` runs) drops keys whose limits are all back to fresh, losing nothing.

``store=`` (keyword only, default ``None``: this process's memory; on ``RateLimiter``,
``RateLimitMiddleware`` and ``rate_limit``) moves the four limits to Redis, shared by every worker
and host that names it: ``RateLimiter(store="redis://...")``,
with ``key_prefix``, ``on_error``, the timeouts, ``log_interval`` and the breaker options of
:class:`seawall.RedisLimiter` (a ``ValueError`` with the memory store). The same keys then get
the same answers as in memory; ``is_allowed`` awaits Redis without blocking the event loop,
``check`` (sync) blocks on it.

``RateLimitMiddleware(app, config=None, limiter=None)`` is the original's Starlette middleware as
pure ASGI on :class:`seawall.RateLimitMiddleware`: the same four limits per client, exemptions
and switch. Fixed: the client is the peer address, never ``X-Forwarded-For`` / ``X-Real-IP``
unless the peer is in ``trusted_proxies`` (the original believed any client's), and the user id
(and so the key and the ``exempt_user_ids`` check) comes from a header only when
``user_id_header`` names one (the original read ``X-User-ID`` from anyone, so a client could
claim an exempt id or a fresh key per request). ``rate_limit(...)`` limits an async function;
the original skipped functions called without a ``Request``, here they share one budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, cast

from seawall import Decision, Limit, Limiter, RedisLimiter
from seawall._args import check_at_least_one
from seawall._stores import build_limiter, is_redis, redis_options
from seawall._time import now, whole_seconds
from seawall.asgi import RateLimitMiddleware as _AsgiRateLimitMiddleware
from seawall.errors import SeawallError
from seawall.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = [
    "RateLimitConfig",
    "RateLimitError",
    "RateLimitInfo",
    "RateLimitMiddleware",
    "RateLimiter",
    "rate_limit",
]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("seawall.compat.mahavishnu.rate_limit")


@dataclass
class RateLimitConfig:
    """Limits per client, exemptions and the global switch."""

    requests_per_minute: int = 60
    requests_per_hour: int = 1000
    requests_per_day: int = 10000
    burst_size: int = 10
    exempt_ips: set[str] = field(default_factory=set)
    exempt_user_ids: set[str] = field(default_factory=set)
    enabled: bool = True


@dataclass
class RateLimitInfo:
    """The outcome of one check. ``retry_after`` is whole seconds (rounded up) when limited."""

    limited: bool = False
    limit: int = 0
    remaining: int = 0
    reset_after: float = 0.0
    retry_after: int | None = None
    reset_time: float = field(default=0.0)

    @classmethod
    def from_decision(cls, d: Decision) -> RateLimitInfo:
        return cls(
            limited=d.limited,
            limit=d.limit,
            remaining=d.remaining,
            reset_after=d.reset_after,
            retry_after=None if d.allowed else whole_seconds(d.retry_after),
            reset_time=time.time() + d.reset_after,
        )


def _tiers(config: RateLimitConfig) -> list[Limit]:
    """The original's four limits per client, each with the algorithm that fits it."""
    for name in ("requests_per_minute", "requests_per_hour", "requests_per_day", "burst_size"):
        check_at_least_one(name, getattr(config, name))
    minute_limit = f"{config.requests_per_minute}/minute"
    return [
        Limit(minute_limit, "sliding_window_log"),
        Limit(f"{config.requests_per_hour}/hour", "sliding_window_counter"),
        Limit(f"{config.requests_per_day}/day", "sliding_window_counter"),
        Limit(minute_limit, "token_bucket", burst=config.burst_size),
    ]


class RateLimiter:
    """Per-minute, per-hour and per-day sliding limits plus a token-bucket burst, per key."""

    def __init__(
        self,
        per_minute: int = 60,
        per_hour: int = 1000,
        per_day: int = 10000,
        burst_size: int = 10,
        *,
        config: RateLimitConfig | None = None,
        max_keys: int = 1_000_000,
        clock: Any = None,
        store: str | None = None,
        key_prefix: str | None = None,
        on_error: str | None = None,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        log_interval: float | None = None,
        breaker_failures: int | None = None,
        breaker_recovery: float | None = None,
    ) -> None:
        """``store`` and the Redis options: see the module docstring. ``max_keys`` bounds the
        memory store, or with Redis the ``on_error="local"`` fallback."""
        options = redis_options(locals())
        if config is None:
            config = RateLimitConfig(
                requests_per_minute=per_minute,
                requests_per_hour=per_hour,
                requests_per_day=per_day,
                burst_size=burst_size,
            )
        self.config = config
        self._limiter: Limiter | RedisLimiter = build_limiter(
            "seawall.compat.mahavishnu.rate_limit.RateLimiter",
            _tiers(config),
            store=store,
            algorithm="gcra",
            max_keys=max_keys,
            clock=clock,
            options=options,
        )
        # Only Redis waits: a memory decision is taken without a coroutine.
        self._ahit = self._limiter.ahit if is_redis(self._limiter) else None
        self._violations: dict[str, int] = {}
        self._cleanup_task: asyncio.Task[None] | None = None

    @property
    def limiter(self) -> Limiter | RedisLimiter:
        """The ``seawall.Limiter`` underneath (a ``seawall.RedisLimiter`` with a Redis store)."""
        return self._limiter

    def _exempt(self, key: str) -> bool:
        return (
            not self.config.enabled
            or key in self.config.exempt_ips
            or key in self.config.exempt_user_ids
        )

    def check(self, key: str) -> tuple[bool, RateLimitInfo]:
        """``is_allowed``, for code that is not async (with a Redis store it blocks on Redis)."""
        if self._exempt(key):
            return True, RateLimitInfo(limited=False)
        return self._account(key, self._limiter.hit(key))

    async def is_allowed(self, key: str) -> tuple[bool, RateLimitInfo]:
        """Whether ``key`` may make a request now; counts it if so."""
        if self._ahit is None or self._exempt(key):
            return self.check(key)
        return self._account(key, await self._ahit(key))

    def _account(self, key: str, decision: Decision) -> tuple[bool, RateLimitInfo]:
        if not decision.allowed:
            self._violations[key] = self._violations.get(key, 0) + 1
            # DEBUG, not WARNING: a record per denied request is an amplifier under attack.
            logger.debug("Rate limit exceeded for %s", key)
        return decision.allowed, RateLimitInfo.from_decision(decision)

    def get_violations(self, key: str) -> int:
        """How often ``key`` was limited (since it was last cleaned up)."""
        return self._violations.get(key, 0)

    def get_repeat_offenders(self, min_violations: int = 5) -> dict[str, int]:
        """Keys limited at least ``min_violations`` times, most first."""
        offenders = [(k, v) for k, v in self._violations.items() if v >= min_violations]
        return dict(sorted(offenders, key=lambda kv: -kv[1]))

    def cleanup(self) -> int:
        """Drop keys back to fresh (lossless) and their violation counts; returns how many.

        With a Redis store, Redis drops each key's state itself when it is fresh again, so
        nothing is held here to drop: ``0``, and the violation counts are kept."""
        if isinstance(self._limiter, RedisLimiter):
            return 0
        limiter = self._limiter
        removed = limiter.cleanup()
        if removed:
            held = {k for k in self._violations if limiter.key_stats(k) is not None}
            self._violations = {k: v for k, v in self._violations.items() if k in held}
        return removed

    async def start_cleanup(self, interval: float = 60.0) -> None:
        """Run ``cleanup()`` every ``interval`` seconds in the background (idempotent)."""
        if self._cleanup_task is not None and not self._cleanup_task.done():
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    self.cleanup()
                except Exception:
                    logger.exception("Error in rate limiter cleanup")

        self._cleanup_task = asyncio.create_task(loop())

    async def stop_cleanup(self) -> None:
        """Stop the background cleanup."""
        task, self._cleanup_task = self._cleanup_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reset(self, key: str) -> bool:
        """Forget ``key``'s usage and violations."""
        self._violations.pop(key, None)
        return self._limiter.reset(key)

    def get_stats(self) -> dict[str, Any]:
        """Totals for monitoring. With a Redis store the request counts are this process's
        decisions, and ``active_keys`` is ``None`` (Redis holds the keys, shared)."""
        if isinstance(self._limiter, RedisLimiter):
            redis_stats = self._limiter.stats()
            total, limited, keys = redis_stats["decisions"], redis_stats["limited"], None
        else:
            stats = self._limiter.stats()
            total, limited, keys = stats["hits"], stats["limited"], stats["keys"]
        return {
            "total_requests": total,
            "limited_requests": limited,
            "active_keys": keys,
            "total_violations": sum(self._violations.values()),
            "repeat_offenders": len(self.get_repeat_offenders()),
            "limits": {
                "per_minute": self.config.requests_per_minute,
                "per_hour": self.config.requests_per_hour,
                "per_day": self.config.requests_per_day,
                "burst_size": self.config.burst_size,
            },
        }


class RateLimitError(SeawallError):
    """The original's exception, ``RateLimitError(message, retry_after=None)``, under
    :class:`seawall.SeawallError`; ``limit`` and ``key`` say which budget refused."""

    def __init__(
        self, message: str, retry_after: int | None = None, *, limit: int = 0, key: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.limit = limit
        self.key = key

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (self.message, self.retry_after, self.limit, self.key))


def _rebuild_error(message: str, retry_after: int | None, limit: int, key: str) -> RateLimitError:
    return RateLimitError(message, retry_after, limit=limit, key=key)


class RateLimitMiddleware:
    """The original's Starlette middleware, pure ASGI: ``app.add_middleware(RateLimitMiddleware,
    config=RateLimitConfig(...))``.

    Every HTTP request spends from its client's four limits (``config``, or ``limiter.config``
    when only a ``limiter`` is given; the middleware keeps its own state). The client is the peer
    address, or the ``user_id_header`` value when that names a header set by your own auth layer
    (never by the client). Behind ``trusted_proxies``, the client address is read from the one
    header they write, ``proxy_header`` (``"X-Forwarded-For"``, ``"Forwarded"`` or
    ``"X-Real-IP"``; see :class:`seawall.RateLimitMiddleware`). ``config.exempt_ips`` (IPs or
    CIDRs) and ``config.exempt_user_ids`` are never limited; ``config.enabled = False`` switches
    the middleware off at once. The exemption sets are read when the middleware is built.

    Responses carry ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
    (seconds from now); a refusal is 429 with ``Retry-After`` and the original's body,
    ``{"error": "Rate limit exceeded", "retry_after": <s>, "reset_time": <epoch s>}``.

    ``store`` and the Redis options: as for :class:`seawall.RateLimitMiddleware` (a request's
    four limits in one Redis script call; while Redis cannot answer, ``on_error="deny"`` is a
    503). The middleware keeps its own budgets, so a ``limiter`` on Redis needs ``store=`` too
    (else a ``ValueError``: the middleware would count in memory, per worker).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: RateLimitConfig | None = None,
        limiter: RateLimiter | None = None,
        *,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "X-Forwarded-For",
        user_id_header: str | None = None,
        key_func: Callable[[Request], str | Awaitable[str | None] | None] | None = None,
        max_keys: int = 1_000_000,
        clock: Any = None,
        store: str | None = None,
        key_prefix: str | None = None,
        on_error: Literal["allow", "deny", "local"] | None = None,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        log_interval: float | None = None,
        breaker_failures: int | None = None,
        breaker_recovery: float | None = None,
    ) -> None:
        options = redis_options(locals())
        if limiter is not None and store is None and is_redis(limiter.limiter):
            raise ValueError(
                "RateLimitMiddleware: limiter= keeps its limits in Redis, but the middleware "
                "keeps budgets of its own (only the limiter's config is read): pass "
                "store=<the same Redis URL> too, or it would count in memory, per worker"
            )
        if config is None:
            config = limiter.config if limiter is not None else RateLimitConfig()
        self.app = app
        self.config = config
        self._clock = clock
        self._limited = _AsgiRateLimitMiddleware(
            app,
            limits=_tiers(config),
            key="ip" if user_id_header is None else f"header:{user_id_header}",
            key_func=key_func,
            trusted_proxies=trusted_proxies,
            proxy_header=proxy_header,
            exempt_ips=sorted(config.exempt_ips),
            exempt_clients=sorted(config.exempt_user_ids),
            error_body=self._error_body,
            max_keys=max_keys,
            clock=clock,
            store=store,
            **options,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.config.enabled:
            await self._limited(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _error_body(self, retry_after: int) -> dict[str, Any]:
        return {
            "error": "Rate limit exceeded",
            "retry_after": retry_after,
            "reset_time": now(self._clock) + retry_after,
        }


def rate_limit(
    requests_per_minute: int = 60,
    requests_per_hour: int = 1000,
    burst_size: int = 10,
    key_func: Callable[[Request], str] | None = None,
    *,
    clock: Any = None,
    store: str | None = None,
    key_prefix: str | None = None,
    on_error: str | None = None,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
    log_interval: float | None = None,
    breaker_failures: int | None = None,
    breaker_recovery: float | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Limit an async function: the original's decorator.

    The key is ``key_func(request)`` for the first Starlette ``Request`` among the arguments, or
    that request's peer address; a call without a ``Request`` spends the function's one shared
    budget. A refusal raises :class:`RateLimitError` with ``retry_after`` in whole seconds.
    ``store`` and the Redis options: as for :class:`RateLimiter` (the decision is awaited,
    never blocking the event loop).
    """
    options = redis_options(locals())

    def decorator(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        limiter = RateLimiter(
            per_minute=requests_per_minute,
            per_hour=requests_per_hour,
            burst_size=burst_size,
            clock=clock,
            store=store,
            **options,
        )
        name = getattr(func, "__name__", "function")
        shared_key = f"function:{getattr(func, '__qualname__', name)}"

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            request = _find_request(args, kwargs)
            if request is None:
                key = shared_key
            elif key_func is not None:
                key = key_func(request)
            else:
                key = request.client.host if request.client else "unknown"
            allowed, info = await limiter.is_allowed(key)
            if not allowed:
                raise RateLimitError(
                    f"Rate limit exceeded for {name}",
                    retry_after=info.retry_after,
                    limit=info.limit,
                    key=key,
                )
            return await func(*args, **kwargs)

        return cast("Callable[P, Awaitable[R]]", wrapper)

    return decorator


def _find_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    try:
        from starlette.requests import Request
    except ImportError:  # no Starlette, so no Request can be among them
        return None
    for value in (*args, *kwargs.values()):
        if isinstance(value, Request):
            return value
    return None
