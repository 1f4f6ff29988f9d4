"""Drop-in for the VoiceHive service's ``rate_limit_middleware`` module (seed 003, section 3.2).

A pure ASGI middleware (not ``BaseHTTPMiddleware``: streaming and SSE pass through untouched) on
:class:`~seawall.compat.voicehive.rate_limiter.RateLimiter`. Fixed against the service:

* a refused request **is refused**: a 429 with the service's error body, ``Retry-After`` and
  ``X-RateLimit-*`` headers (the service only added headers and called the app: defect 2);
* internal callers bypass limits only with a configured service token, compared in constant time;
  header names alone never bypass (defect 1, B5);
* ``X-Forwarded-For`` is read only from ``trusted_proxies`` (defect 3); bearer tokens and API
  keys are hashed into ids (defect 13), and ``identify_client`` replaces the classification (B4);
* no Redis means memory budgets, never no limits (defect 4, B13).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from seawall._send import send_with_headers
from seawall.compat.voicehive._client_identity import Identifier
from seawall.compat.voicehive._service_rules import service_rules
from seawall.compat.voicehive.rate_limiter import (
    RateLimitConfig,
    RateLimiter,
    RateLimitResult,
    RateLimitRule,
)
from seawall.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "RateLimitExceededError",
    "RateLimitMiddleware",
    "create_rate_limit_rules",
    "rate_limit_exception_handler",
]

#: The service's excluded paths, matched exactly (B20); ``/resilience/*`` is not excluded.
DEFAULT_EXCLUDED_PATHS: tuple[str, ...] = (
    "/healthz",
    "/health",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/redoc",
    "/_internal",
)

IdentifyClient = Callable[[Request], "tuple[str, str] | Awaitable[tuple[str, str]]"]


def create_rate_limit_rules() -> list[dict[str, Any]]:
    """The service's rules (the default resilience config's ``rate_limiting_rules``), fresh."""
    return service_rules()


def _body(result: RateLimitResult) -> dict[str, Any]:
    """B18: the service's exception-handler body."""
    return {
        "error": {
            "code": "RATE_LIMIT_EXCEEDED",
            "message": "Rate limit exceeded",
            "retry_after": result.retry_after,
            "limit": result.limit,
            "reset_time": int(result.reset_time.timestamp()),
        }
    }


def _headers(result: RateLimitResult) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": str(result.limit),
        "X-RateLimit-Remaining": str(result.remaining),
        "X-RateLimit-Reset": str(int(result.reset_time.timestamp())),
        "X-RateLimit-Type": result.limit_type,
    }
    if result.retry_after is not None:
        headers["Retry-After"] = str(result.retry_after)
    return headers


class RateLimitExceededError(HTTPException):
    """A refusal as an exception (429), for code that checks limits itself."""

    def __init__(self, result: RateLimitResult, detail: str = "Rate limit exceeded") -> None:
        super().__init__(status_code=429, detail=detail, headers=_headers(result))
        self.result = result


async def rate_limit_exception_handler(
    request: Request, exc: RateLimitExceededError
) -> JSONResponse:
    """``app.add_exception_handler(RateLimitExceededError, rate_limit_exception_handler)``."""
    return JSONResponse(_body(exc.result), status_code=429, headers=_headers(exc.result))


class RateLimitMiddleware:
    """``app.add_middleware(RateLimitMiddleware, redis_url=..., rules=...)``.

    ``rules``: ``None`` is the service's rules (:func:`create_rate_limit_rules`), ``[]`` none.
    ``default_config``: for requests no rule matches. ``limiter``: a ``RateLimiter`` to spend
    (the rules and default config given here are added to it; then ``redis_url`` must be
    ``None``). ``internal_service_tokens``: service name → secret token; a request whose
    ``service_token_header`` carries one is internal (B5). ``internal_service_headers`` only name
    the service, and are never believed. ``excluded_paths``: exact paths never limited (B20).
    ``trusted_proxies``: IPs / CIDRs whose ``X-Forwarded-For`` is read. ``identify_client``:
    ``(request) -> (client_id, client_type)``, sync or async, replacing the classification (B4).
    """

    def __init__(
        self,
        app: ASGIApp,
        redis_url: str | None = None,
        default_config: RateLimitConfig | None = None,
        rules: Sequence[RateLimitRule | Mapping[str, Any]] | None = None,
        *,
        internal_service_tokens: Mapping[str, str] | None = None,
        internal_service_headers: Sequence[str] = ("X-Internal-Service", "X-Kubernetes-Service"),
        service_token_header: str = "X-Service-Token",
        excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        trusted_proxies: Iterable[str] = (),
        identify_client: IdentifyClient | None = None,
        limiter: RateLimiter | None = None,
        clock: Any = None,
    ) -> None:
        if limiter is not None:
            if redis_url is not None:
                raise ValueError("pass either limiter= or redis_url=, not both")
            if not isinstance(limiter, RateLimiter):
                raise TypeError(f"limiter must be a RateLimiter, got {type(limiter).__name__}")
        else:
            limiter = RateLimiter(redis_url, clock=clock)
        if default_config is not None:
            limiter.default_config = default_config
        for rule in create_rate_limit_rules() if rules is None else rules:
            limiter.add_rule(rule)
        if identify_client is not None and not callable(identify_client):
            raise TypeError("identify_client must be callable or None")
        if isinstance(excluded_paths, str):
            raise TypeError("excluded_paths must be a list of paths, not one str")
        self.app = app
        self.limiter = limiter
        self.internal_service_headers = tuple(internal_service_headers)
        self.excluded_paths = frozenset(excluded_paths)
        self.identify_client = identify_client
        self._identifier = Identifier(
            internal_service_tokens=internal_service_tokens,
            service_token_header=service_token_header,
            trusted_proxies=trusted_proxies,
        )

    async def _identify(self, scope: Scope, receive: Receive) -> tuple[str, str]:
        if self.identify_client is None:
            return self._identifier.identify(scope)
        found = self.identify_client(Request(scope, receive))
        if inspect.isawaitable(found):
            found = await found
        client_id, client_type = found
        return str(client_id), str(getattr(client_type, "value", client_type))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        client_id, client_type = await self._identify(scope, receive)
        result = await self.limiter.check_rate_limit(
            client_id, scope["path"], scope.get("method", "GET"), client_type
        )
        if result.limit_type == "bypass_internal":
            await self.app(scope, receive, send)
            return
        headers = [(k.lower().encode(), v.encode()) for k, v in _headers(result).items()]
        if not result.allowed:
            body = json.dumps(_body(result)).encode()
            headers.append((b"content-type", b"application/json"))
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        await self.app(scope, receive, send_with_headers(send, headers))
