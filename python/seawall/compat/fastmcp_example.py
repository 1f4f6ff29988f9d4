# This file is longer than 450 lines because it is the drop-in of one seed module, whose public
# names (the service, its HTTP middleware, the tool decorator and the module-level helpers) must
# all be importable from here, on both stores.
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

``store=`` (keyword only, default ``None``: this process's memory) puts the logs in Redis, shared
by every worker and host that names it: ``RateLimiterService(store="redis://...")``, with
``key_prefix``, ``on_error``, the timeouts, ``log_interval`` and the breaker options of
:class:`seawall.RedisLimiter` (a ``ValueError`` with the memory store). On Redis each
``(limit, window)`` pair keeps its own log per client (Redis names a log by its limit), where
memory keeps one log per client for every pair: the same admissions whenever a client is checked
with one pair (the middleware; a tool), different when one client id is checked with several
(calls under one pair do not count against another). Windows are then whole seconds.
``check_and_record`` (sync, the seed's) blocks on Redis; ``acheck_and_record`` awaits it, and the
middleware and the tool decorator use it, so the event loop never waits.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

from seawall import _seawall
from seawall._args import check_at_least_one, check_int
from seawall._redis import RedisLimiter
from seawall._send import send_with_headers
from seawall._stores import build_limiter, redis_options, store_options
from seawall._time import now
from seawall._workers import warn_if_memory_workers
from seawall.types import ASGIApp, Receive, Scope, Send

__all__ = ["RateLimitMiddleware", "RateLimiterService", "rate_limit_mcp_tool"]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("seawall.compat.fastmcp_example")


_OWNER = "seawall.compat.fastmcp_example.RateLimiterService"


class RateLimiterService:
    """Sliding-window limits per client: ``default_limit`` per ``default_window`` seconds.

    ``store``: ``None`` (memory) or a Redis URL with the Redis options (see the module
    docstring); ``max_clients`` bounds the memory logs, or with Redis each pair's
    ``on_error="local"`` fallback.
    """

    def __init__(
        self,
        default_limit: int = 10,
        default_window: int = 60,
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
        check_int("default_limit", default_limit, minimum=1)
        if not isinstance(default_window, (int, float)) or not default_window > 0:
            raise ValueError(
                f"default_window must be a positive number of seconds, got {default_window!r}"
            )
        self.default_limit = default_limit
        self.default_window = default_window
        self._clock = clock
        # What a refusal made while Redis cannot decide is: a local limit (429) or not (503).
        self._local_fallback = on_error == "local"
        # With Redis: one RedisLimiter per (limit, window) pair used, made on first use.
        self._pairs: dict[tuple[int, int], RedisLimiter] | None = None
        self._redis: dict[str, Any] = {}
        self._given: dict[str, Any] = {}
        given = store_options(_OWNER, store, options)  # None: the memory store
        if given is None:
            self._log: _seawall.SlidingLogService | None = _seawall.SlidingLogService(
                max_keys=max_clients, clock=clock
            )
            warn_if_memory_workers(_OWNER)
        else:
            self._log = None
            self._redis = {
                "store": store,
                "max_keys": max_clients,
                "clock": clock,
                "options": options,
            }
            self._given = given
            self._pairs = {}
            # Made now, so that a bad store URL or option is refused here, named.
            self._pair(default_limit, _whole_window("default_window", default_window))
        logger.info("RateLimiterService initialized: %d req/%ss", default_limit, default_window)

    @property
    def store(self) -> str | None:
        """The Redis store's URL (password hidden), or ``None`` for memory."""
        if self._pairs is None:
            return None
        return next(iter(self._pairs.values())).store

    def _pair(self, limit: int, window: int) -> RedisLimiter:
        assert self._pairs is not None
        lim = self._pairs.get((limit, window))
        if lim is None:
            built = build_limiter(
                _OWNER, _log_limit(limit, window), algorithm="sliding_window_log", **self._redis
            )
            assert isinstance(built, RedisLimiter)
            lim = self._pairs[(limit, window)] = built
        return lim

    def _redis_pair(
        self, limit: int | None, window: float | None
    ) -> tuple[RedisLimiter, int, float]:
        limit = self.default_limit if limit is None else limit
        window = self.default_window if window is None else window
        check_at_least_one("limit", limit)
        return self._pair(limit, _whole_window("window", window)), limit, window

    def check_and_record(
        self, client_id: str, limit: int | None = None, window: float | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Admit one request for ``client_id`` if fewer than ``limit`` were admitted in the last
        ``window`` seconds, and record it if so.

        ``info`` holds ``limit``, ``window``, ``remaining``, ``reset_time`` (epoch seconds when the
        window is clear again) and ``retry_after`` (whole seconds, rounded up; 0 when allowed).
        With a Redis store this blocks on Redis (``acheck_and_record`` awaits it).
        """
        if self._log is not None:
            allowed, info = self._log.check_and_record(
                client_id,
                self.default_limit if limit is None else limit,
                self.default_window if window is None else window,
            )
        else:
            lim, limit, window = self._redis_pair(limit, window)
            allowed, info = self._info(lim.hit(client_id), limit, window)
        if not allowed:
            # DEBUG, not the original's WARNING: one log record per denied request is what an
            # attacker would like most (each costs microseconds and a line of output).
            logger.debug("Rate limit exceeded for client '%s'", client_id)
        return allowed, info

    async def acheck_and_record(
        self, client_id: str, limit: int | None = None, window: float | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """``check_and_record``, awaitable: with a Redis store the event loop does not wait
        for Redis. A subclass's own ``check_and_record`` is called as it is."""
        allowed, info, _ = await self._acheck(client_id, limit, window)
        return allowed, info

    async def _acheck(
        self, client_id: str, limit: int | None, window: float | None
    ) -> tuple[bool, dict[str, Any], bool]:
        """``acheck_and_record`` and whether Redis's ``on_error`` made the decision."""
        if self._log is not None or type(self).check_and_record is not _CHECK_AND_RECORD:
            return (*self.check_and_record(client_id, limit, window), False)
        lim, limit, window = self._redis_pair(limit, window)
        decision = await lim.ahit(client_id)
        allowed, info = self._info(decision, limit, window)
        if not allowed:
            logger.debug("Rate limit exceeded for client '%s'", client_id)
        return allowed, info, decision.fallback

    def _info(
        self, decision: _seawall.Decision, limit: int, window: float
    ) -> tuple[bool, dict[str, Any]]:
        retry = decision.retry_after
        return decision.allowed, {
            "limit": limit,
            "window": window,
            "remaining": decision.remaining,
            # Redis decides in whole µs: rounded to them, an epoch second reads as the memory
            # store's (an exact 1060.0, not 1060.0000000002, whose ceil would be 1061).
            "reset_time": round(now(self._clock) + decision.reset_after, 6),
            "retry_after": 0 if decision.allowed else math.ceil(retry),
        }

    def reset(self, client_id: str) -> bool:
        """Forget ``client_id``'s log; ``False`` if none was held. With Redis: its log under
        every ``(limit, window)`` pair this service has used (blocks on Redis; ``OSError``
        when Redis fails)."""
        if self._log is not None:
            return self._log.reset(client_id)
        assert self._pairs is not None
        return any([lim.reset(client_id) for lim in self._pairs.values()])

    def cleanup(self) -> int:
        """Drop every client whose log is empty (lossless); returns how many. With Redis,
        Redis drops each log itself when it empties: nothing is held here, ``0``."""
        return 0 if self._log is None else self._log.cleanup()

    def __len__(self) -> int:
        """Clients whose logs this process holds (``0`` with Redis, which holds them)."""
        return 0 if self._log is None else len(self._log)

    def _tool_limiter(self, limit: int, window: int, prefix: str) -> Any:
        """What ``rate_limit_mcp_tool`` decides with: ``hit(key)`` on this service's logs, the
        tool's ``prefix`` taken off the key (its calls are recorded under the session alone)."""
        if self._log is not None or type(self).check_and_record is not _CHECK_AND_RECORD:
            return _ServiceAdapter(self, limit, window, prefix=prefix)
        check_at_least_one("limit", limit)
        built = _SessionLimiter(
            _log_limit(limit, _whole_window("window", window)),
            store=self._redis["store"],
            algorithm="sliding_window_log",
            max_local_keys=self._redis["max_keys"],
            clock=self._redis["clock"],
            **self._given,
        )
        built.strip = prefix
        return built


_CHECK_AND_RECORD = RateLimiterService.check_and_record


def _whole_window(name: str, window: Any) -> int:
    """A Redis log's window: a whole number of seconds (a Redis limit's period is)."""
    if (
        isinstance(window, bool)
        or not isinstance(window, (int, float))
        or not window >= 1
        or window != int(window)
    ):
        raise ValueError(
            f"{name} must be a whole number of seconds, at least 1, with a Redis store=; "
            f"got {window!r}"
        )
    return int(window)


def _log_limit(limit: int, window: int) -> _seawall.Limit:
    return _seawall.Limit(f"{limit}/{window} seconds", "sliding_window_log")


class _SessionLimiter(RedisLimiter):
    """A Redis log pair for one tool: the key the MCP decorator builds (``<tool>:key:<id>``)
    is recorded as ``<id>``, the client id the service's own calls use."""

    __slots__ = ("strip",)
    strip: str

    def hit(self, key: str, cost: int = 1) -> _seawall.Decision:
        return self._logged(key, super().hit(key.removeprefix(self.strip), cost))

    async def ahit(self, key: str, cost: int = 1) -> _seawall.Decision:
        return self._logged(key, await super().ahit(key.removeprefix(self.strip), cost))

    def _logged(self, key: str, decision: _seawall.Decision) -> _seawall.Decision:
        if not decision.allowed:
            logger.debug("Rate limit exceeded for client '%s'", key.removeprefix(self.strip))
        return decision


class RateLimitMiddleware:
    """``limit`` HTTP requests per ``window`` seconds per client IP, on a ``RateLimiterService``.

    ``app.add_middleware(RateLimitMiddleware, limiter=rate_limiter, limit=20, window=60)``.
    Without ``limiter`` the middleware makes its own service. Admitted responses carry
    ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (epoch seconds,
    the service's ``reset_time``); a refused request gets a 429 JSON body
    ``{"error": "Rate limit exceeded", "retry_after": <s>, "limit": ..., "window": ...}`` with
    ``Retry-After``, and the app is not called. Other ASGI scopes pass straight through.

    ``store`` (and the Redis options): the store of the service the middleware makes when no
    ``limiter`` is given (see :class:`RateLimiterService`); beside ``limiter`` they would be
    ignored, so they are a ``ValueError``. With a Redis-backed service each request awaits
    Redis (``acheck_and_record``), never blocking the event loop.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiterService | None = None,
        limit: int = 20,
        window: int = 60,
        *,
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
        check_at_least_one("limit", limit)
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        self.app = app
        if limiter is not None:
            _refuse_beside("RateLimitMiddleware", store, options)
            self.limiter = limiter
        else:
            self.limiter = RateLimiterService(store=store, **options)
        # A Redis-backed service is awaited; a memory one answers at once, without a coroutine.
        self._awaits = isinstance(self.limiter, RateLimiterService) and self.limiter.store
        self.limit = limit
        self.window = window
        logger.info("RateLimitMiddleware initialized: %d req/%ss for HTTP", limit, window)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        client_id = f"http_{client[0] if client else 'unknown'}"
        fallback = False
        if self._awaits:
            allowed, info, fallback = await self.limiter._acheck(client_id, self.limit, self.window)
        else:
            allowed, info = self.limiter.check_and_record(client_id, self.limit, self.window)
        if fallback:
            # Redis could not decide: no budget stands behind the numbers (see _unavailable).
            status = 429 if self.limiter._local_fallback else 503
            await _unavailable(scope, receive, send, self.app, allowed, info["retry_after"], status)
            return
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


async def _unavailable(
    scope: Scope,
    receive: Receive,
    send: Send,
    app: ASGIApp,
    allowed: bool,
    retry_after: int,
    status: int,
) -> None:
    """What a client sees while Redis cannot decide: what is admitted gets no rate-limit
    header (no budget stands behind it); a refusal is a 503 with ``Retry-After`` under
    ``on_error="deny"`` (the client did nothing wrong), a 429 with only ``Retry-After`` under
    ``"local"`` (this process's own copy of the limit refused it)."""
    if allowed:
        await app(scope, receive, send)
        return
    message = "Rate limit exceeded" if status == 429 else "Rate limit store unavailable"
    body = json.dumps({"error": message, "retry_after": retry_after})
    headers = [
        (b"retry-after", str(max(1, retry_after)).encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


_default_service: RateLimiterService | None = None


def _service() -> RateLimiterService:
    global _default_service
    if _default_service is None:
        _default_service = RateLimiterService()
    return _default_service


def rate_limit_mcp_tool(
    limit: int,
    window: int,
    *,
    limiter: RateLimiterService | None = None,
    store: str | None = None,
    key_prefix: str | None = None,
    on_error: str | None = None,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
    log_interval: float | None = None,
    breaker_failures: int | None = None,
    breaker_recovery: float | None = None,
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

    ``store`` (and the Redis options): a Redis-backed service of this decorator's own instead
    of the shared memory one (see :class:`RateLimiterService`; decorators naming the same
    Redis and ``key_prefix`` share the logs); beside ``limiter`` a ``ValueError``. An async
    tool then awaits Redis; a sync one blocks on it.
    """
    from seawall.mcp import rate_limit_tool, session_identity

    options = redis_options(locals())
    if limiter is not None:
        _refuse_beside("rate_limit_mcp_tool", store, options)
    elif store is not None or any(v is not None for v in options.values()):
        limiter = RateLimiterService(store=store, **options)

    def decorator(func: F) -> F:
        service = limiter if limiter is not None else _service()
        prefix = f"{func.__name__}:key:"
        tool_limiter = getattr(service, "_tool_limiter", None)
        adapter = (
            tool_limiter(limit, window, prefix)
            if tool_limiter is not None
            else _ServiceAdapter(service, limit, window, prefix=prefix)  # a look-alike service
        )
        return rate_limit_tool(
            # Not ``ctx.session_id``: on 2026-07-28 connections and stateless HTTP it is new on
            # every request (or the client's own Mcp-Session-Id header).
            key=lambda ctx, args: f"mcp_session_{session_identity(ctx)}",
            limiter=adapter,
        )(func)

    return decorator


def _refuse_beside(owner: str, store: str | None, options: dict[str, Any]) -> None:
    """``limiter=`` is a service already made: a store or Redis option beside it would be
    ignored, so it is refused, named."""
    given = sorted(name for name, value in options.items() if value is not None)
    if store is not None:
        given.insert(0, "store")
    if given:
        raise ValueError(
            f"{owner}: limiter= is a RateLimiterService already made, so {', '.join(given)} "
            "would be ignored; pass them to RateLimiterService(...), or pass store= instead "
            "of limiter="
        )


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
