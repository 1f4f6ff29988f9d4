"""``seawall.fastapi.limit``: a rate limit as a FastAPI dependency, for one endpoint or a router.

``@app.get("/search", dependencies=[Depends(limit("10/minute"))])``. The client is found as the
middleware finds it (the same native ``HttpLimiter``: trusted proxies, IPv6 prefixes), so a
dependency and :class:`seawall.RateLimitMiddleware` never disagree on who a client is. A refused
request raises ``HTTPException(429)`` with ``Retry-After`` and the ``X-RateLimit-*`` headers; an
admitted one gets the ``X-RateLimit-*`` headers on its response.

This module imports FastAPI; ``import seawall`` does not. (No ``from __future__ import
annotations`` here: FastAPI reads the dependency's annotations at run time.)
"""

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import HTTPException, Request, Response

from seawall import _seawall
from seawall._args import check_limits, check_optional_callable
from seawall._http_limiter import http_limiter
from seawall._redis import bridge_for
from seawall._stores import redis_options
from seawall.types import Limits

__all__ = ["RateLimitDependency", "limit"]

# Not passed on to HTTPException: FastAPI renders its own body, with its own length and type.
_BODY_HEADERS = (b"content-length", b"content-type")


def limit(
    limits: Limits,
    *,
    key_func: Callable[[Request], str | Awaitable[str | None] | None] | None = None,
    algorithm: str = "gcra",
    trusted_proxies: Iterable[str] = (),
    proxy_header: str = "X-Forwarded-For",
    ipv6_prefix: int = 64,
    max_key_length: int = 256,
    exempt_ips: Iterable[str] = (),
    headers: bool | str = True,
    detail: Any = "Rate limit exceeded",
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
) -> "RateLimitDependency":
    """A dependency admitting ``limits`` per client: ``Depends(limit("10/minute"))``.

    The key is the client IP (``trusted_proxies``: IPs / CIDRs whose ``proxy_header`` is
    believed, as for :class:`seawall.RateLimitMiddleware`: ``"X-Forwarded-For"`` by default,
    ``"Forwarded"``, ``"X-Real-IP"`` or any header name, and only that one is read; IPv6 clients
    grouped by ``ipv6_prefix``), or what ``key_func(request)`` returns (sync or async; ``None``
    falls back to the IP), kept as ``"fn:<value>"`` so that it never spends an IP's budget.
    ``headers``: ``True`` for ``X-RateLimit-*``, ``False`` for none on admitted responses, or a
    mode of the middleware (``"draft"``, ``"both"``).
    ``detail``: the ``HTTPException`` detail of a refusal.
    ``store``: ``None`` (this process's memory) or a Redis URL with the same options as
    :class:`seawall.RateLimitMiddleware` (``key_prefix``, ``on_error``, the timeouts, the
    breaker, ``log_interval``): every worker then shares the budget, one script call per
    request. While Redis cannot answer, ``on_error="deny"`` raises ``HTTPException(503)`` with
    ``Retry-After``; ``"allow"`` and ``"local"`` add no rate-limit header to what they admit.

    Each call of ``limit(...)`` is one budget: reuse the returned dependency on several endpoints
    to share it. Headers on admitted responses reach the client when the endpoint returns data
    (FastAPI merges them); an endpoint returning its own ``Response`` sends only its own.
    """
    options = redis_options(locals())
    check_optional_callable("key_func", key_func)
    if headers is True or headers is False:
        mode = "x-ratelimit" if headers else "none"
    elif isinstance(headers, str):
        mode = headers
    else:
        raise TypeError(f"headers must be a bool or a str, got {type(headers).__name__}")
    native = http_limiter(
        limits=check_limits("limits", limits),  # required here: the dependency has no rules
        algorithm=algorithm,
        key="ip",
        trusted_proxies=trusted_proxies,
        proxy_header=proxy_header,
        ipv6_prefix=ipv6_prefix,
        max_key_length=max_key_length,
        exempt_ips=exempt_ips,
        headers=mode,
        max_keys=max_keys,
        clock=clock,
        owner="seawall.fastapi.limit",
        store=store,
        options=options,
    )
    return RateLimitDependency(native, key_func, detail)


class RateLimitDependency:
    """What :func:`limit` returns: a FastAPI dependency over one native ``HttpLimiter``
    (``.limiter``: its ``key_for`` and ``reset`` are there for tests and admin tools)."""

    __slots__ = ("_check", "_remote", "_submit", "detail", "key_func", "limiter")

    def __init__(
        self,
        limiter: _seawall.HttpLimiter,
        key_func: Callable[[Request], str | Awaitable[str | None] | None] | None,
        detail: Any,
    ) -> None:
        self.limiter: _seawall.HttpLimiter = limiter
        self.key_func: Callable[[Request], str | Awaitable[str | None] | None] | None = key_func
        self.detail: Any = detail
        self._check = limiter.check
        self._submit = limiter._submit
        self._remote = limiter.is_async

    async def __call__(self, request: Request, response: Response) -> None:
        key = None
        if self.key_func is not None:
            value = self.key_func(request)
            if inspect.isawaitable(value):
                value = await value
            if value is not None and not isinstance(value, str):
                raise TypeError(f"key_func must return a str or None, got {type(value).__name__}")
            key = value or None
        if self._remote:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            result = self._submit(bridge_for(loop), future, request.scope, key, None)
            if result is future:
                result = await future
        else:
            result = self._check(request.scope, key)
        if result is None:
            return
        allowed, rendered, _, status = result
        if allowed:
            for name, field in rendered:
                response.headers.append(name.decode("latin-1"), field.decode("latin-1"))
            return
        raise HTTPException(
            status_code=status,
            detail=self.detail if status == 429 else "Rate limit store unavailable",
            headers={
                name.decode("latin-1"): field.decode("latin-1")
                for name, field in rendered
                if name not in _BODY_HEADERS
            },
        )
