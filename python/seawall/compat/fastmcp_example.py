"""Seed 004 (FastMCP + Starlette example), ``RateLimiterService``, on seawall's native sliding log.

Same constructor, same ``check_and_record(client_id, limit=None, window=None) -> (allowed, info)``
and the same admissions as the original's list of timestamps per client: one log per client,
pruned by the window of each call. The original rebuilt that list on every call, O(limit) time;
here each call costs amortised O(1) whatever the limit, and the log never holds more entries than
the largest limit used. A denied request is logged at DEBUG, not WARNING: under a flood, a log
record per denial costs more than the decision and fills the disk.

``RateLimitMiddleware(app, limiter=None, limit=20, window=60)`` is the original's HTTP middleware,
as pure ASGI instead of ``BaseHTTPMiddleware``: each client's requests are recorded in the
service under ``http_{ip}`` (the peer address, never a proxy header).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

from seawall import _seawall
from seawall._args import check_at_least_one, check_int
from seawall._send import send_with_headers
from seawall.types import ASGIApp, Receive, Scope, Send

__all__ = ["RateLimitMiddleware", "RateLimiterService", "rate_limit_mcp_tool"]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("seawall.compat.fastmcp_example")


class RateLimiterService:
    """Sliding-window limits per client: ``default_limit`` per ``default_window`` seconds."""

    def __init__(
        self,
        default_limit: int = 10,
        default_window: int = 60,
        *,
        max_clients: int = 1_000_000,
        clock: Any = None,
    ) -> None:
        check_int("default_limit", default_limit, minimum=1)
        if not isinstance(default_window, (int, float)) or not default_window > 0:
            raise ValueError(
                f"default_window must be a positive number of seconds, got {default_window!r}"
            )
        self.default_limit = default_limit
        self.default_window = default_window
        self._log = _seawall.SlidingLogService(max_keys=max_clients, clock=clock)
        logger.info("RateLimiterService initialized: %d req/%ss", default_limit, default_window)

    def check_and_record(
        self, client_id: str, limit: int | None = None, window: float | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Admit one request for ``client_id`` if fewer than ``limit`` were admitted in the last
        ``window`` seconds, and record it if so.

        ``info`` holds ``limit``, ``window``, ``remaining``, ``reset_time`` (epoch seconds when the
        window is clear again) and ``retry_after`` (whole seconds, rounded up; 0 when allowed).
        """
        allowed, info = self._log.check_and_record(
            client_id,
            self.default_limit if limit is None else limit,
            self.default_window if window is None else window,
        )
        if not allowed:
            # DEBUG, not the original's WARNING: one log record per denied request is what an
            # attacker would like most (each costs microseconds and a line of output).
            logger.debug("Rate limit exceeded for client '%s'", client_id)
        return allowed, info

    def reset(self, client_id: str) -> bool:
        """Forget ``client_id``'s log; ``False`` if none was held."""
        return self._log.reset(client_id)

    def cleanup(self) -> int:
        """Drop every client whose log is empty (lossless); returns how many."""
        return self._log.cleanup()

    def __len__(self) -> int:
        return len(self._log)


class RateLimitMiddleware:
    """``limit`` HTTP requests per ``window`` seconds per client IP, on a ``RateLimiterService``.

    ``app.add_middleware(RateLimitMiddleware, limiter=rate_limiter, limit=20, window=60)``.
    Without ``limiter`` the middleware makes its own service. Admitted responses carry
    ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (epoch seconds,
    the service's ``reset_time``); a refused request gets a 429 JSON body
    ``{"error": "Rate limit exceeded", "retry_after": <s>, "limit": ..., "window": ...}`` with
    ``Retry-After``, and the app is not called. Other ASGI scopes pass straight through.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiterService | None = None,
        limit: int = 20,
        window: int = 60,
    ) -> None:
        check_at_least_one("limit", limit)
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        self.app = app
        self.limiter = limiter if limiter is not None else RateLimiterService()
        self.limit = limit
        self.window = window
        logger.info("RateLimitMiddleware initialized: %d req/%ss for HTTP", limit, window)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        client_id = f"http_{client[0] if client else 'unknown'}"
        allowed, info = self.limiter.check_and_record(client_id, self.limit, self.window)
        headers = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(info["remaining"]).encode()),
            (b"x-ratelimit-reset", str(math.ceil(info["reset_time"])).encode()),
        ]
        if allowed:
            await self.app(scope, receive, send_with_headers(send, headers))
            return
        body = json.dumps(
            {
                "error": "Rate limit exceeded",
                "retry_after": info["retry_after"],
                "limit": self.limit,
                "window": self.window,
            }
        ).encode()
        headers += [
            (b"retry-after", str(info["retry_after"]).encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_default_service: RateLimiterService | None = None


def _service() -> RateLimiterService:
    global _default_service
    if _default_service is None:
        _default_service = RateLimiterService()
    return _default_service


def rate_limit_mcp_tool(
    limit: int, window: int, *, limiter: RateLimiterService | None = None
) -> Callable[[F], F]:
    """Seed 004's tool decorator: ``limit`` calls per ``window`` seconds per MCP session.

    Each session is recorded as ``mcp_session_{id}`` on ``limiter`` (default: the module's
    shared :class:`RateLimiterService`), ``id`` being :func:`seawall.mcp.session_identity`: the
    session the server issued on handshake-era connections; where it issued none (2026-07-28
    connections, ``stateless_http``), the authenticated principal, else the client address, else
    the stdio or in-memory connection: never a value the client writes (the seed's
    ``ctx.session_id`` is new on every such request, or the client's own header). A
    refused call returns ``{"success": False, "error": "Rate limit exceeded", "rate_limited":
    True, "retry_after": <s>}``. Unlike the original it keeps the tool's signature (so its
    schema) and works without a ``ctx`` parameter, sync or async. Write it below
    ``@mcp.tool()``, as the seed does (see :mod:`seawall.mcp` for the other order).
    """
    from seawall.mcp import rate_limit_tool, session_identity

    def decorator(func: F) -> F:
        service = limiter if limiter is not None else _service()
        adapter = _ServiceAdapter(service, limit, window, prefix=f"{func.__name__}:key:")
        return rate_limit_tool(
            # Not ``ctx.session_id``: on 2026-07-28 connections and stateless HTTP it is new on
            # every request (or the client's own Mcp-Session-Id header).
            key=lambda ctx, args: f"mcp_session_{session_identity(ctx)}",
            limiter=adapter,
        )(func)

    return decorator


class _ServiceAdapter:
    """``Limiter.hit`` over a ``RateLimiterService`` (seawall.mcp namespaces keys per tool)."""

    def __init__(
        self, service: RateLimiterService, limit: int, window: int, *, prefix: str
    ) -> None:
        self.service, self.limit, self.window, self.prefix = service, limit, window, prefix

    def hit(self, key: str) -> _Decision:
        client_id = key.removeprefix(self.prefix)
        allowed, info = self.service.check_and_record(client_id, self.limit, self.window)
        return _Decision(allowed, float(info["retry_after"]), self.limit)


class _Decision:
    __slots__ = ("allowed", "limit", "retry_after")

    def __init__(self, allowed: bool, retry_after: float, limit: int) -> None:
        self.allowed, self.retry_after, self.limit = allowed, retry_after, limit
