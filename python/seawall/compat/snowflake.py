"""Seed 000 (Snowflake MCP server), ``rate_limiting/token_bucket.py`` and ``middleware.py``, on
seawall's native types.

Same names, parameters, defaults and stats keys. Fixed behaviour:

- cleanup drops only buckets that are full again (the original dropped active buckets that had
  never been rejected, handing their clients a fresh bucket), and memory is bounded by
  ``max_clients``;
- ``RateLimitMiddleware`` enforces its own ``requests_per_second`` and ``burst_size`` (the
  original consumed from the global ``client_rate_limiter`` whatever they were), never takes the
  client's key from ``X-Forwarded-For`` (anyone can send one), and answers 429 with the real wait
  in ``Retry-After`` (the original always said 60);
- ``rate_limit(requests_per_minute)`` enforces ``requests_per_minute`` (the original ignored it).

``RateLimitMiddleware`` and ``rate_limit`` take ``store=`` (keyword only, default ``None``: this
process's memory): a Redis URL shares their budgets with every worker and host that names it,
with the same answers (the same token bucket, decided by one Redis script), ``key_prefix``,
``on_error``, the timeouts, ``log_interval`` and the breaker options passing through to
:class:`seawall.RedisLimiter` (a ``ValueError`` with the memory store). Their async paths await
Redis, never blocking the event loop. ``ClientRateLimiter`` / ``TokenBucket`` (and
``client_rate_limiter``) stay in this process's memory: their API holds what Redis does not
(buckets that start below capacity, per-client configurations that keep a bucket's tokens,
fractional ``peek``, per-bucket statistics of every client held), so they take no ``store=``;
the middleware and the decorator are the shared front doors.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from seawall import (
    ClientRateLimiter,
    Limit,
    Limiter,
    RedisLimiter,
    TokenBucket,
    TokenBucketConfig,
)
from seawall._args import check_at_least_one
from seawall._keys import digest
from seawall._stores import build_limiter, is_redis, redis_options
from seawall._time import now, whole_seconds
from seawall.decorators import rate_limit as _rate_limit
from seawall.errors import RateLimitExceeded

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "ClientRateLimiter",
    "RateLimitMiddleware",
    "TokenBucket",
    "TokenBucketConfig",
    "client_rate_limiter",
    "current_client_id",
    "rate_limit",
]

logger = logging.getLogger("seawall.compat.snowflake")

P = ParamSpec("P")
R = TypeVar("R")

# Global client rate limiter, with the original's defaults.
client_rate_limiter = ClientRateLimiter(
    TokenBucketConfig(
        capacity=100,  # 100 requests burst
        refill_rate=10.0,  # 10 requests per second
        initial_tokens=50,  # start with half capacity
    )
)

# The client of the request being handled (the original's ``utils.request_context``).
# ``RateLimitMiddleware`` sets it for the handlers it calls; ``rate_limit`` reads it.
current_client_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_client_id", default=None
)

_MAX_CLIENT_ID = 256  # longer client-chosen ids are replaced by their sha256


class RateLimitMiddleware:
    """Per-client token buckets for FastAPI's ``@app.middleware("http")``.

    ``app.middleware("http")(RateLimitMiddleware(requests_per_second=10.0, burst_size=100))``.
    Each client has a bucket of ``burst_size`` requests (starting full) refilled at
    ``requests_per_second``. The client is ``key_func(request)`` (sync or async), by default the
    original's order: ``params._client_id`` of a JSON body already parsed, the ``X-Client-ID``
    header, the ``client_id`` query parameter, then the peer address — never ``X-Forwarded-For``.
    Behind a proxy, let the server resolve the peer (uvicorn's ``--forwarded-allow-ips``) or use
    :class:`seawall.RateLimitMiddleware` with ``trusted_proxies``.

    Responses carry ``X-RateLimit-Limit`` (``burst_size``), ``X-RateLimit-Remaining`` and
    ``X-RateLimit-Reset`` (epoch seconds when the bucket is full again, as the original's was an
    epoch time); a refusal is the original's 429 JSON with the real ``retry_after``.
    ``current_client_id`` holds the client while the handler runs.

    ``store``: ``None`` (memory) or a Redis URL, with the Redis options (see the module
    docstring); ``max_clients`` bounds the memory store, or with Redis the ``on_error="local"``
    fallback.
    """

    def __init__(
        self,
        requests_per_second: float = 10.0,
        burst_size: int = 100,
        key_func: Callable[[Request], str | Awaitable[str]] | None = None,
        *,
        max_clients: int = 1_000_000,
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
        options = redis_options(locals())
        check_at_least_one("burst_size", burst_size)
        if (
            isinstance(requests_per_second, bool)
            or not isinstance(requests_per_second, (int, float))
            or not 0 < requests_per_second < math.inf
        ):
            raise ValueError(
                f"requests_per_second must be a positive number, got {requests_per_second!r}"
            )
        self.requests_per_second = requests_per_second
        self.burst_size = burst_size
        self.key_func = key_func or self._default_key_func
        self._clock = clock
        rate = Fraction(requests_per_second).limit_denominator(1_000_000)
        self.limiter: Limiter | RedisLimiter = build_limiter(
            "seawall.compat.snowflake.RateLimitMiddleware",
            Limit(f"{rate.numerator}/{rate.denominator} seconds", "token_bucket", burst=burst_size),
            store=store,
            algorithm="token_bucket",
            max_keys=max_clients,
            clock=clock,
            options=options,
        )
        # Only Redis waits: a memory decision is taken without a coroutine.
        self._ahit = self.limiter.ahit if is_redis(self.limiter) else None

    def _default_key_func(self, request: Request) -> str:
        """The original's order, without ``X-Forwarded-For``."""
        client_id: Any = None
        parsed = getattr(request, "_json", None)  # a body some earlier code already parsed
        if isinstance(parsed, dict):
            params = parsed.get("params")
            if isinstance(params, dict):
                client_id = params.get("_client_id")
        if not client_id:
            client_id = request.headers.get("X-Client-ID")
        if not client_id:
            client_id = request.query_params.get("client_id")
        if not client_id:
            client_id = request.client.host if request.client else None
        key = str(client_id) if client_id else "unknown"
        if len(key) > _MAX_CLIENT_ID:
            key = digest(key)
        return key

    async def __call__(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Process request with rate limiting."""
        from starlette.responses import JSONResponse

        client_id = self.key_func(request)
        if inspect.isawaitable(client_id):
            client_id = await client_id
        decision = (
            self.limiter.hit(client_id) if self._ahit is None else await self._ahit(client_id)
        )
        if decision.fallback:
            return await self._unavailable(request, call_next, decision)
        reset = str(math.ceil(now(self._clock) + decision.reset_after))
        if not decision.allowed:
            retry_after = whole_seconds(decision.retry_after)
            # DEBUG, not the original's WARNING: a record per refusal amplifies a flood.
            logger.debug("Rate limit exceeded for client %s", client_id)
            return JSONResponse(
                status_code=429,
                content={
                    "error": {
                        "code": 429,
                        "message": "Rate limit exceeded",
                        "retry_after": retry_after,
                    }
                },
                headers={
                    "Retry-After": str(retry_after),
                    "X-RateLimit-Limit": str(self.burst_size),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset,
                },
            )
        token = current_client_id.set(client_id)
        try:
            response = await call_next(request)
        finally:
            current_client_id.reset(token)
        response.headers["X-RateLimit-Limit"] = str(self.burst_size)
        response.headers["X-RateLimit-Remaining"] = str(decision.remaining)
        response.headers["X-RateLimit-Reset"] = reset
        return response

    async def _unavailable(self, request: Any, call_next: Any, decision: Any) -> Response:
        """Redis could not decide (its ``on_error`` did): no budget stands behind the numbers,
        so an admitted request gets no rate-limit header; a refused one gets a 503 with
        ``Retry-After`` under ``"deny"`` (the client did nothing wrong), or a 429 with only
        ``Retry-After`` under ``"local"`` (this process's own copy of the limit refused it)."""
        from starlette.responses import JSONResponse

        if decision.allowed:
            return await call_next(request)  # type: ignore[no-any-return]
        retry_after = whole_seconds(decision.retry_after)
        code = 429 if getattr(self.limiter, "on_error", None) == "local" else 503
        return JSONResponse(
            status_code=code,
            content={
                "error": {
                    "code": code,
                    "message": "Rate limit exceeded"
                    if code == 429
                    else "Rate limit store unavailable",
                    "retry_after": retry_after,
                }
            },
            headers={"Retry-After": str(retry_after)},
        )


def rate_limit(
    requests_per_minute: int = 60,
    *,
    store: str | None = None,
    key_prefix: str | None = None,
    on_error: str | None = None,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
    log_interval: float | None = None,
    breaker_failures: int | None = None,
    breaker_recovery: float | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Limit a handler to ``requests_per_minute`` per client (``current_client_id``, or
    ``"unknown"``); a refusal raises FastAPI's ``HTTPException(429)``, with ``Retry-After``.
    ``store`` and the Redis options: as for :func:`seawall.rate_limit` (an async handler
    awaits Redis)."""
    check_at_least_one("requests_per_minute", requests_per_minute)
    return _rate_limit(
        f"{requests_per_minute}/minute",
        key=current_client_id,
        on_limit=_http_429,
        store=store,
        **redis_options(locals()),
    )


def _http_429(error: RateLimitExceeded) -> Any:
    from fastapi import HTTPException

    logger.debug("Rate limit exceeded for client %s", error.key)
    raise HTTPException(
        status_code=429,
        detail="Rate limit exceeded for this operation",
        headers={"Retry-After": str(error.retry_after_seconds)},
    )
